"""First start: the catalog's schema, a default project, its `live` entry point and an API
credential; and this node's persistent ID.

Each step is checked on every start, so a first start that was interrupted half-way is
completed by the next one instead of leaving a catalog without them. The secret is printed
once, on stdout, and never logged: only its encrypted and hashed forms are kept."""

from __future__ import annotations

import contextlib
import logging
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import Engine

from liverec.catalog import DEFAULT_ENTRY_POINT, Catalog, make_engine, migrate
from liverec.config import Settings
from liverec.errors import ConflictError, NotFoundError, SchemaError

log = logging.getLogger(__name__)


def migrate_apart(engine: Engine) -> None:
    """Migrate the catalog in a short-lived process of its own (`python -m
    liverec.bootstrap`, the URL on stdin, not in argv where `ps` shows it): Alembic, Mako
    and the migration scripts then never load into the server, which would keep them
    (~10 MB of RSS) for its whole life."""
    done = subprocess.run(
        [sys.executable, "-m", "liverec.bootstrap"],
        input=engine.url.render_as_string(hide_password=False),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SchemaError(f"migrating the catalog failed: {done.stderr.strip()[-2000:]}")


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


if __name__ == "__main__":  # migrate_apart's process
    migrate(make_engine(sys.stdin.read().strip()))
