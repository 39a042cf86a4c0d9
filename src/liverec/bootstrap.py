"""First start: a default project, its `live` entry point and an API credential; and this
node's persistent ID.

Each step is checked on every start, so a first start that was interrupted half-way is
completed by the next one instead of leaving a catalog without them. The secret is printed
once, on stdout, and never logged: only its encrypted and hashed forms are kept."""

from __future__ import annotations

import contextlib
import logging
import secrets
import uuid
from pathlib import Path

from liverec.catalog import DEFAULT_ENTRY_POINT, Catalog
from liverec.config import Settings
from liverec.errors import ConflictError, NotFoundError

log = logging.getLogger(__name__)


def bootstrap(catalog: Catalog, settings: Settings) -> None:
    """Create what an empty catalog lacks (see the module's docstring)."""
    projects = catalog.list_projects()
    if not projects:
        app_id = settings.app_id or secrets.token_hex(16)
        try:
            catalog.create_project(app_id, name="default", is_default=True)
            print(f"liverec: created project {app_id}", flush=True)
        except ConflictError:
            log.info("another node bootstrapped the catalog first")
        projects = catalog.list_projects()
    default = next((p for p in projects if p.is_default), projects[0])
    try:
        catalog.get_entry_point(default.app_id, DEFAULT_ENTRY_POINT)
    except NotFoundError:
        with contextlib.suppress(ConflictError):
            catalog.create_entry_point(default.app_id, DEFAULT_ENTRY_POINT, record_enabled=True)
            print(
                f"liverec: created entry point {DEFAULT_ENTRY_POINT!r} in {default.app_id}",
                flush=True,
            )
    if catalog.list_credentials():
        return
    try:
        cred, secret = catalog.create_credential(
            settings.customer_id or None, settings.customer_secret or None, [default.app_id]
        )
    except ConflictError:
        return  # another node made it
    print(f"liverec: customer ID: {cred.customer_id}", flush=True)
    if not settings.customer_secret:
        print(f"liverec: customer secret (shown once): {secret}", flush=True)


def persistent_node_id(data_dir: Path) -> str:
    """This node's ID, kept in the data dir so that a restart after a crash knows its own
    open recordings."""
    path = data_dir / "node-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        node_id = uuid.uuid4().hex
        path.write_text(node_id + "\n")
        return node_id
