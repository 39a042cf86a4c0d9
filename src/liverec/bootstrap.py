"""First start: the catalog's schema, a default project, its `live` entry point and an API
credential; and this node's persistent ID.

Each step is checked on every start, so a first start that was interrupted half-way is
completed by the next one instead of leaving a catalog without them. The secret is printed
once, on stdout, and never logged: only its encrypted and hashed forms are kept."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import Engine

from liverec.catalog import DEFAULT_ENTRY_POINT, Catalog, SecretBox, make_engine, migrate
from liverec.config import Settings
from liverec.errors import ConflictError, NotFoundError, SchemaError

log = logging.getLogger(__name__)

_FIRST_START = ("app_id", "customer_id", "customer_secret", "secret_key", "data_dir")


def migrate_apart(engine: Engine, settings: Settings | None = None) -> None:
    """Migrate the catalog in a short-lived process of its own (`python -m
    liverec.bootstrap`, its arguments on stdin, not in argv where `ps` shows them):
    Alembic, Mako and the migration scripts then never load into the server, which would
    keep them (~10 MB of RSS) for its whole life. With `settings`, that process also does
    the rest of a first start (`bootstrap`), so sealing the new credential does not load
    cryptography's Fernet into the server either; what it prints (the secret, shown once)
    goes to our stdout, never to a log."""
    done = subprocess.run(
        [sys.executable, "-m", "liverec.bootstrap"],
        input=json.dumps(
            {
                "url": engine.url.render_as_string(hide_password=False),
                # What a first start reads of the settings (bootstrap, SecretBox).
                "first_start": None
                if settings is None
                else {name: str(getattr(settings, name)) for name in _FIRST_START},
            }
        ).encode(),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip()
        raise SchemaError(f"migrating the catalog failed: {stderr[-2000:]}")
    if done.stdout:
        sys.stdout.write(done.stdout.decode("utf-8", "replace"))
        sys.stdout.flush()


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


def _apart() -> None:
    """migrate_apart's process."""
    args = json.loads(sys.stdin.buffer.read())
    engine = make_engine(args["url"])
    migrate(engine)
    if args["first_start"] is not None:
        fields = dict(args["first_start"])
        settings = Settings(**{**fields, "data_dir": Path(fields["data_dir"])})
        bootstrap(Catalog(engine, SecretBox.from_settings(settings)), settings)


if __name__ == "__main__":
    _apart()
