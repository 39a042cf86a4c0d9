"""A fileName reserved in its stream folder for as long as the file is being made."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from liverec.layout import StreamRef

log = logging.getLogger(__name__)


class FileNames(Protocol):
    """The stream folder's namespace of file names, as the catalog keeps it."""

    def reserve_file(self, stream: StreamRef, file_name: str, kind: str) -> None: ...

    def release_file(self, stream: StreamRef, file_name: str) -> None: ...


@contextmanager
def reserved_file(names: FileNames, stream: StreamRef, file_name: str, kind: str) -> Iterator[None]:
    """Reserve `file_name` (a clip or snapshot `kind`) in the stream folder on entry
    (ConflictError when it is taken), and release it again if the block fails, so that a
    failed request does not use the name up."""
    names.reserve_file(stream, file_name, kind)
    try:
        yield
    except BaseException:
        try:
            names.release_file(stream, file_name)
        except Exception:
            log.exception("could not release %s name %s", kind, stream.file(file_name))
        raise
