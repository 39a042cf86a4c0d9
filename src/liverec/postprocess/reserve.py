"""A fileName reserved in its stream folder for as long as the file is being made."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from liverec.catalog import Catalog

log = logging.getLogger(__name__)


@contextmanager
def reserved_file(
    catalog: Catalog,
    app_id: str,
    entry_point: str,
    stream_name: str,
    file_name: str,
    kind: str,
) -> Iterator[None]:
    """Reserve `file_name` (a clip or snapshot `kind`) in the stream folder on entry
    (ConflictError when it is taken), and release it again if the block fails, so that a
    failed request does not use the name up."""
    catalog.reserve_file(app_id, entry_point, stream_name, file_name, kind)
    try:
        yield
    except BaseException:
        try:
            catalog.release_file(app_id, entry_point, stream_name, file_name)
        except Exception:
            log.exception(
                "could not release %s name record/%s/%s/%s",
                kind,
                entry_point,
                stream_name,
                file_name,
            )
        raise
