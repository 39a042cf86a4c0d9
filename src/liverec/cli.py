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
from liverec.catalog.outputs import SNAPSHOT_INTERVAL_RANGE
from liverec.catalog.secrets import KEY_FILE_NAME
from liverec.config import REGIONS, Settings, check_tls_files, is_wildcard, load_settings
from liverec.errors import ConfigError, LiverecError
from liverec.retention import format_retention, parse_retention
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
    "--log-format": "text or json (one JSON object per line) (default text)",
    "--tls-cert": "PEM certificate (chain) file: serve HTTPS instead of HTTP (with --tls-key)",
    "--tls-key": "the certificate's unencrypted PEM private key file",
    "--public-url": "base URL clients reach the API at, e.g. https://rec.example.com/liverec: "
    "the base of every signed url returned (default: the request's own)",
    "--public-rtmp-url": "rtmp://HOST[:PORT] publishers reach this node at, for printed push "
    "URLs (default: from --rtmp)",
}
WORKERS_HELP = (
    "ingest worker processes sharing the RTMP port (default 1: one process does everything). "
    "With N > 1 this process serves the API and starts N workers, each taking and recording "
    "its share of the publishes; a worker that dies is restarted"
)


def _add_settings(parser: argparse.ArgumentParser) -> None:
    for flag, help_text in SETTING_OPTIONS.items():
        parser.add_argument(flag, default=None, help=help_text)


def _settings(args: argparse.Namespace) -> Settings:
    cli = {
        flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
        for flag in SETTING_OPTIONS
    }
    cli["workers"] = getattr(args, "workers", None)  # `serve` only
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
    settings = _settings(args)
    if settings.tls:
        # First, before the data dir, the catalog or the first start's one-time secret.
        check_tls_files(settings.tls_cert, settings.tls_key)
    if settings.workers > 1:
        from liverec.workers import run_with_workers

        run_with_workers(settings)
    else:
        from liverec.service import run

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
    if args.retention is not None:
        try:
            fields["retention"] = parse_retention(args.retention)
        except ValueError as exc:
            raise LiverecError(f"--retention: {exc}") from None
    return fields


def _set_outputs(
    catalog: Catalog, app_id: str, entry_point: str, region: str, args: argparse.Namespace
) -> None:
    """Apply --hls/--mp4/--snapshots/--snapshot-interval, if given, and say what is now in
    force in `region`."""
    if args.hls is not None or args.mp4 is not None:
        out = catalog.set_record_outputs(app_id, entry_point, region, hls=args.hls, mp4=args.mp4)
        print(f"recording in {region}: hls={_on(out.hls)} mp4={_on(out.mp4)}")
    if args.snapshots is not None or args.snapshot_interval is not None:
        enabled = args.snapshots
        if enabled is None:
            enabled = catalog.snapshot_settings(app_id, entry_point, region).enabled
        shots = catalog.set_snapshot_settings(
            app_id, entry_point, region, enabled=enabled, interval=args.snapshot_interval
        )
        print(f"snapshots in {region}: {_on(shots.enabled)} every {shots.interval}s")


def _on(flag: bool) -> str:
    return "on" if flag else "off"


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
            out = catalog.record_outputs(app_id, ep.name, settings.region)
            shots = catalog.snapshot_settings(app_id, ep.name, settings.region)
            # New fields go last: scripts that split the older line keep working.
            print(
                f"{ep.name}\trecord={'on' if ep.record_enabled else 'off'}\t"
                f"target={ep.target_duration:g}s\tmax_file={ep.max_file_duration:g}s\t"
                f"auth={'yes' if ep.auth_key else 'no'}\thls={_on(out.hls)}\tmp4={_on(out.mp4)}\t"
                f"snapshots={f'{shots.interval}s' if shots.enabled else 'off'}\t"
                f"retention={format_retention(ep.retention)}"
            )
        return
    if args.action == "delete":
        catalog.delete_entry_point(app_id, args.name)
        print(f"entry point {args.name} deleted")
        return
    fields = _ep_fields(args) if args.action in ("add", "set") else {}
    interval = getattr(args, "snapshot_interval", None)
    low, high = SNAPSHOT_INTERVAL_RANGE
    if interval is not None and not low <= interval <= high:
        # Checked before anything changes: an `add` must not leave half an entry point.
        raise LiverecError(f"--snapshot-interval must be {low}-{high} seconds, not {interval}")
    if args.action == "add":
        ep = catalog.create_entry_point(app_id, args.name, **fields)
        print(f"entry point {ep.name} created in project {app_id}")
    elif args.action == "set":
        ep = catalog.update_entry_point(app_id, args.name, **fields)
        print(f"entry point {ep.name} updated")
    else:
        ep = catalog.get_entry_point(app_id, args.name)
    if "retention" in fields:
        print(f"retention: {format_retention(ep.retention)}")
    if args.action in ("add", "set"):
        _set_outputs(catalog, app_id, ep.name, settings.region, args)
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


def _event_types(text: str | None) -> list[int]:
    from liverec.events import FLS_EVENT_TYPES, SUBSCRIBABLE_EVENT_TYPES

    if not text:
        return [int(t) for t in FLS_EVENT_TYPES]
    try:
        types = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise LiverecError(f"--events takes event numbers, e.g. 1,2,101: not {text!r}") from None
    unknown = sorted(set(types) - set(SUBSCRIBABLE_EVENT_TYPES))
    if unknown:
        known = ", ".join(map(str, SUBSCRIBABLE_EVENT_TYPES))
        raise LiverecError(f"unknown event types {unknown}: use {known}")
    return types


def cmd_callbacks(args: argparse.Namespace) -> None:
    """Callback settings, a signed test event, and the callbacks given up."""
    from liverec.catalog import DEFAULT_ENTRY_POINT
    from liverec.events import event_name, send_test

    catalog = _catalog(_settings(args))
    app_id = _default_app(catalog, args.app)
    ep = getattr(args, "entry_point", None) or None
    where = f"entry point {ep}" if ep else f"project {app_id}"
    if args.action == "set":
        secret = secrets.token_hex(16) if args.generate_secret else args.secret
        settings = catalog.set_callback_settings(
            app_id,
            ep,
            url=args.url,
            secret=secret,
            event_types=_event_types(args.events),
            enabled=not args.disable,
        )
        print(f"callbacks of {where}: {'on' if settings.enabled else 'off'} -> {settings.url}")
        if args.generate_secret:
            print(f"callback secret (shown once): {secret}")
    elif args.action == "show":
        found = catalog.list_callback_settings(app_id)
        if not found:
            print(f"no callbacks configured for project {app_id}")
        for cfg in found:
            events = ",".join(map(str, cfg.event_types))
            print(
                f"{cfg.entry_point or '(project)'}\t{'on' if cfg.enabled else 'off'}\t"
                f"{cfg.url}\tevents={events}\tsecret={'set' if cfg.secret else 'none'}"
            )
        print(f"waiting to be sent: {catalog.pending_notices(app_id)}")
    elif args.action == "delete":
        if not catalog.delete_callback_settings(app_id, ep):
            raise LiverecError(f"no callbacks configured for {where}")
        print(f"callbacks of {where} deleted")
    elif args.action == "test":
        target = catalog.callback_settings(app_id, ep)
        if target is None:
            raise LiverecError(f"no callbacks configured for {where}")
        answer, error = send_test(target, ep or DEFAULT_ENTRY_POINT, args.stream)
        if error is not None:
            raise LiverecError(f"test callback to {target.url} failed: {error}")
        assert answer is not None
        print(f"HTTP {answer.status} {answer.reason}".rstrip())
        if answer.body:
            print(answer.body.decode("utf-8", "replace"))
        if not answer.ok:
            sys.exit(1)
    elif args.action == "failed":
        for dead in catalog.dead_notices(app_id, limit=args.limit):
            print(
                f"{dead.id}\t{dead.failed_at.isoformat(timespec='seconds')}\t"
                f"{dead.event_type} {event_name(dead.event_type)}\t"
                f"{dead.entry_point}/{dead.stream_name}\t"
                f"tries={dead.attempts}\t{dead.last_error}\t{dead.payload}"
            )
    else:
        catalog.redeliver_notice(app_id, args.id)
        print(f"failed callback {args.id} queued again")


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
    serve.add_argument("--workers", default=None, metavar="N", help=WORKERS_HELP)
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
            # Recording outputs and periodic snapshots are per entry point and region
            # (--region, default this node's), as the settings API stores them.
            p.add_argument("--hls", dest="hls", action="store_true", default=None)
            p.add_argument(
                "--no-hls", dest="hls", action="store_false", help="HLS recording (default on)"
            )
            p.add_argument("--mp4", dest="mp4", action="store_true", default=None)
            p.add_argument(
                "--no-mp4", dest="mp4", action="store_false", help="MP4 record files (default off)"
            )
            p.add_argument("--snapshots", dest="snapshots", action="store_true", default=None)
            p.add_argument(
                "--no-snapshots",
                dest="snapshots",
                action="store_false",
                help="periodic snapshots of live streams (default off)",
            )
            p.add_argument(
                "--snapshot-interval", type=int, help="seconds between snapshots (default 10)"
            )
            p.add_argument(
                "--retention",
                help="keep recorded media this long: e.g. 36h, 7d, 4w; 0 or 'forever' "
                "(the default) keeps it forever",
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

    cbs = sub.add_parser("callbacks", help="FLS callbacks: settings, test, failed").add_subparsers(
        dest="action", required=True
    )
    cb_set = cbs.add_parser("set", help="where a project's (or entry point's) events go")
    cb_set.add_argument("--url", required=True, help="http(s) URL the events are POSTed to")
    cb_set.add_argument("--secret", help="the signing secret (left out: keep the stored one)")
    cb_set.add_argument("--generate-secret", action="store_true", help="make one, shown once")
    cb_set.add_argument("--events", help="event numbers, comma-separated (default 1,2,11,101,102)")
    cb_set.add_argument("--disable", action="store_true", help="keep the settings, send nothing")
    cb_show = cbs.add_parser("show", help="the project's settings (never the secret)")
    cb_del = cbs.add_parser("delete", help="remove the project's or an entry point's settings")
    cb_test = cbs.add_parser("test", help="send a signed test event, print the answer")
    cb_test.add_argument("--stream", default="test", help="streamName in the test event")
    cb_failed = cbs.add_parser("failed", help="callbacks given up, newest first")
    cb_failed.add_argument("--limit", type=int, default=100)
    cb_redeliver = cbs.add_parser("redeliver", help="send a failed callback again")
    cb_redeliver.add_argument("id", type=int)
    for p in (cb_set, cb_show, cb_del, cb_test, cb_failed, cb_redeliver):
        _add_settings(p)
        p.add_argument("--app", help="project app ID (default: the default project)")
        if p in (cb_set, cb_del, cb_test):
            p.add_argument("--entry-point", help="an entry point's own settings")
        p.set_defaults(func=cmd_callbacks)
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
