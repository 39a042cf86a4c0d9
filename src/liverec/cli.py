"""`liverec serve`, `liverec migrate`, and the admin commands."""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from liverec.catalog import Catalog, SecretBox, check_schema, make_engine, migrate
from liverec.catalog.secrets import KEY_FILE_NAME
from liverec.config import REGIONS, Settings, check_tls_files, is_wildcard, load_settings
from liverec.errors import ConfigError, LiverecError
from liverec.rtmp.pushauth import signed_push_query

SETTING_OPTIONS = {
    "--config": "TOML config file (settings under [liverec] or at top level)",
    "--data-dir": "data directory (default ./liverec-data)",
    "--http": "HTTP listen address HOST:PORT (default 0.0.0.0:8080)",
    "--rtmp": "RTMP listen address HOST:PORT (default 0.0.0.0:1935)",
    "--database-url": "catalog URL: sqlite:///... (default, in the data dir) or "
    "postgresql+psycopg://...",
    "--storage-url": "media store URL: file://... (default, in the data dir)",
    "--region": f"region this node records into: {', '.join(REGIONS)} (default na)",
    "--log-level": "DEBUG, INFO, WARNING or ERROR (default INFO)",
    "--tls-cert": "PEM certificate (chain) file: serve HTTPS instead of HTTP (with --tls-key)",
    "--tls-key": "the certificate's unencrypted PEM private key file",
    "--public-url": "base URL clients reach the API at, e.g. https://rec.example.com/liverec: "
    "the base of every signed url returned (default: the request's own)",
    "--public-rtmp-url": "rtmp://HOST[:PORT] publishers reach this node at, for printed push "
    "URLs (default: from --rtmp)",
}


def _add_settings(parser: argparse.ArgumentParser) -> None:
    for flag, help_text in SETTING_OPTIONS.items():
        parser.add_argument(flag, default=None, help=help_text)


def _settings(args: argparse.Namespace) -> Settings:
    cli = {
        flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
        for flag in SETTING_OPTIONS
    }
    return load_settings(cli)


def _catalog(settings: Settings) -> Catalog:
    """The existing catalog, for the admin commands, which never create anything: run from
    the wrong directory (the data dir defaults to ./liverec-data) they would otherwise make
    an empty catalog and a new secret key there and report success on them. Only `serve`
    creates the data dir, the catalog and the key; `migrate` updates the schema."""
    _require_catalog(settings)
    box = _secret_box(settings)
    engine = make_engine(settings.effective_database_url)
    check_schema(engine)
    return Catalog(engine, box)


def _require_catalog(settings: Settings) -> None:
    """ConfigError unless the SQLite catalog file exists. A PostgreSQL catalog lives on its
    server, so it needs no data dir (an empty database is refused by its schema check)."""
    path = settings.sqlite_path
    if path is None:
        return
    if not settings.database_url and not settings.data_dir.is_dir():
        raise ConfigError(
            f"data directory {settings.data_dir.absolute()} does not exist: give the server's "
            "--data-dir (or LIVEREC_DATA_DIR); `liverec serve` creates it"
        )
    if not path.is_file():
        raise ConfigError(f"no catalog at {path}: `liverec serve` creates it on its first start")


def _secret_box(settings: Settings) -> SecretBox:
    """The key the servers seal the catalog's secrets with: LIVEREC_SECRET_KEY, else the
    data dir's key file, which must exist: a new key would seal new secrets (credentials,
    auth keys) that no server can open. So on PostgreSQL without LIVEREC_SECRET_KEY the
    data dir is still needed, for its key file."""
    if settings.secret_key:
        return SecretBox(settings.secret_key)
    path = settings.data_dir / KEY_FILE_NAME
    if not path.is_file():
        raise ConfigError(
            f"no secret key: LIVEREC_SECRET_KEY is not set and {path.absolute()} does not "
            "exist; set LIVEREC_SECRET_KEY to the servers' key or give the --data-dir of a "
            "server that holds it"
        )
    return SecretBox.from_key_file(path)


def _default_app(catalog: Catalog, app_id: str | None) -> str:
    if app_id:
        return app_id
    projects = catalog.list_projects()
    default = [p for p in projects if p.is_default] or projects
    if not default:
        raise LiverecError("no project yet: start `liverec serve` once or `projects add`")
    return default[0].app_id


def cmd_serve(args: argparse.Namespace) -> None:
    from liverec.service import run

    settings = _settings(args)
    if settings.tls:
        # First, before the data dir, the catalog or the first start's one-time secret.
        check_tls_files(settings.tls_cert, settings.tls_key)
    run(settings)


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings(args)
    # SQLite: only an existing catalog (`serve` makes one, at head). PostgreSQL: an empty
    # database too, which is how a cluster is set up.
    _require_catalog(settings)
    migrate(make_engine(settings.effective_database_url))
    print("catalog schema is up to date")


def cmd_projects(args: argparse.Namespace) -> None:
    catalog = _catalog(_settings(args))
    if args.action == "add":
        project = catalog.create_project(args.app_id, name=args.name or "", is_default=args.default)
        for domain in args.domain or []:
            catalog.add_push_domain(project.app_id, domain)
        catalog.create_entry_point(project.app_id, "live", record_enabled=True)
        print(f"project {project.app_id} created with entry point 'live'")
    else:
        for p in catalog.list_projects():
            print(f"{p.app_id}\t{p.name}\t{'default' if p.is_default else ''}")


def _ep_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if args.generate_auth_key:
        fields["auth_key"] = secrets.token_hex(16)
    elif args.auth_key is not None:
        fields["auth_key"] = args.auth_key or None
    if args.record is not None:
        fields["record_enabled"] = args.record
    if args.target_duration is not None:
        fields["target_duration"] = args.target_duration
    if args.max_file_duration is not None:
        fields["max_file_duration"] = args.max_file_duration
    return fields


def push_url_base(settings: Settings, host: str | None = None) -> str:
    """`rtmp://HOST[:PORT]`, where publishers reach this deployment, for the push URLs the
    admin commands print: `public_rtmp_url` when set (a load balancer's address), else the
    `rtmp` listen address. A wildcard listen host (0.0.0.0, ::) reaches nothing, so it
    becomes `public_url`'s host, else this machine's name. `host` (the commands' --host)
    replaces the host however it was found."""
    if settings.public_rtmp_url:
        parts = urlsplit(settings.public_rtmp_url)
        scheme, found, port = parts.scheme, parts.hostname or "", parts.port
    else:
        scheme, (found, port) = "rtmp", settings.rtmp_addr
        if port == 0:
            raise ConfigError(
                f"the RTMP port is chosen at start (--rtmp {settings.rtmp}): give "
                "--public-rtmp-url for the push URL"
            )
        if is_wildcard(found):
            public = urlsplit(settings.public_url).hostname if settings.public_url else None
            found = public or socket.gethostname()
    host = host or found
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


def _print_signed(base: str, ep: str, key: str, stream: str, expires_in: int) -> None:
    query = signed_push_query(key, ep, stream, int(time.time()) + expires_in)
    print(f"signed push URL: {base}/{ep}/{stream}?{query}")


def cmd_entry_points(args: argparse.Namespace) -> None:
    settings = _settings(args)
    # `sign` exists to print a push URL: a setting that makes one impossible fails it
    # before anything else.
    base = push_url_base(settings, args.host) if args.action == "sign" else None
    catalog = _catalog(settings)
    app_id = _default_app(catalog, args.app)
    if args.action == "list":
        for ep in catalog.list_entry_points(app_id):
            print(
                f"{ep.name}\trecord={'on' if ep.record_enabled else 'off'}\t"
                f"target={ep.target_duration:g}s\tmax_file={ep.max_file_duration:g}s\t"
                f"auth={'yes' if ep.auth_key else 'no'}"
            )
        return
    if args.action == "delete":
        catalog.delete_entry_point(app_id, args.name)
        print(f"entry point {args.name} deleted")
        return
    fields = _ep_fields(args) if args.action in ("add", "set") else {}
    if args.action == "add":
        ep = catalog.create_entry_point(app_id, args.name, **fields)
        print(f"entry point {ep.name} created in project {app_id}")
    elif args.action == "set":
        ep = catalog.update_entry_point(app_id, args.name, **fields)
        print(f"entry point {ep.name} updated")
    else:
        ep = catalog.get_entry_point(app_id, args.name)
    if ep.auth_key:
        if args.action != "sign":
            print(f"push auth key: {ep.auth_key}")
        if base is None:
            try:
                base = push_url_base(settings, args.host)
            except ConfigError as exc:
                # The change is made and the key shown: say why there is no URL, and succeed.
                print(f"liverec: no signed push URL: {exc}", file=sys.stderr)
                return
        _print_signed(base, ep.name, ep.auth_key, args.stream, args.expires)
    elif args.action == "sign":
        raise LiverecError(f"entry point {ep.name} has no auth key: pushes need no signature")


def cmd_credentials(args: argparse.Namespace) -> None:
    catalog = _catalog(_settings(args))
    if args.action == "add":
        apps = args.app or [_default_app(catalog, None)]
        cred, secret = catalog.create_credential(args.customer_id, None, apps)
        print(f"customer ID: {cred.customer_id}")
        print(f"customer secret (shown once): {secret}")
    elif args.action == "list":
        for c in catalog.list_credentials():
            state = "revoked" if c.revoked else "active"
            print(f"{c.customer_id}\t{state}\t{','.join(c.app_ids)}")
    else:
        catalog.revoke_credential(args.customer_id)
        print(f"credential {args.customer_id} revoked")


def cmd_openapi(args: argparse.Namespace) -> None:
    from liverec.api.app import openapi_json

    text = openapi_json()
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liverec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the RTMP and HTTP servers")
    _add_settings(serve)
    serve.set_defaults(func=cmd_serve)
    mig = sub.add_parser("migrate", help="bring the catalog schema up to date")
    _add_settings(mig)
    mig.set_defaults(func=cmd_migrate)

    oapi = sub.add_parser("openapi", help="print the HTTP API's OpenAPI schema")
    oapi.add_argument("--output", help="write it to this file")
    oapi.set_defaults(func=cmd_openapi)

    projects = sub.add_parser("projects", help="manage projects").add_subparsers(
        dest="action", required=True
    )
    p_add = projects.add_parser("add", help="add a project")
    p_add.add_argument("app_id")
    p_add.add_argument("--name")
    p_add.add_argument("--domain", action="append", help="push domain (tcUrl host) it takes")
    p_add.add_argument("--default", action="store_true", help="takes pushes for any host")
    p_list = projects.add_parser("list", help="list projects")
    for p in (p_add, p_list):
        _add_settings(p)
        p.set_defaults(func=cmd_projects)

    eps = sub.add_parser("entry-points", help="manage entry points").add_subparsers(
        dest="action", required=True
    )
    for action in ("add", "set", "list", "delete", "sign"):
        p = eps.add_parser(action, help=f"{action} entry point(s)")
        _add_settings(p)
        p.add_argument("--app", help="project app ID (default: the default project)")
        if action != "list":
            p.add_argument("name")
        if action in ("add", "set"):
            p.add_argument("--auth-key", help="push auth key ('' removes it)")
            p.add_argument("--generate-auth-key", action="store_true")
            p.add_argument("--record", dest="record", action="store_true", default=None)
            p.add_argument("--no-record", dest="record", action="store_false")
            p.add_argument("--target-duration", type=float, help="segment seconds (default 4)")
            p.add_argument(
                "--max-file-duration",
                type=float,
                help="seconds before a push continues in a new recording (default 21600)",
            )
        if action in ("add", "set", "sign"):
            p.add_argument("--stream", default="stream1", help="stream name for the signed URL")
            p.add_argument("--expires", type=int, default=3600, help="signed URL lifetime, s")
            p.add_argument(
                "--host",
                help="host for the signed URL (default: from --public-rtmp-url, --rtmp or "
                "--public-url, else this machine's name)",
            )
        p.set_defaults(func=cmd_entry_points)

    creds = sub.add_parser("credentials", help="manage API credentials").add_subparsers(
        dest="action", required=True
    )
    c_add = creds.add_parser("add", help="add a credential (secret shown once)")
    c_add.add_argument("--customer-id")
    c_add.add_argument("--app", action="append", help="project it may reach (repeatable)")
    c_list = creds.add_parser("list", help="list credentials (never secrets)")
    c_rev = creds.add_parser("revoke", help="revoke a credential")
    c_rev.add_argument("customer_id")
    for p in (c_add, c_list, c_rev):
        _add_settings(p)
        p.set_defaults(func=cmd_credentials)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except LiverecError as exc:
        print(f"liverec: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
