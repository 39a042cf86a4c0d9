"""Settings, built once and passed down.

Precedence, highest first: command-line options, `LIVEREC_<NAME>` environment variables,
the TOML config file (`--config` / `LIVEREC_CONFIG`), then the embedded defaults."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from liverec.errors import ConfigError

REGIONS = ("na", "eu", "ap", "cn")
CATALOG_FILE = "catalog.db"  # the default SQLite catalog, in the data dir
MAX_WORKERS = 64  # ingest worker processes (a node ID each: `{node_id}-w{i}`)


def parse_hostport(value: str, default_port: int) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `HOST` -> (host, port); IPv6 as `[::1]:PORT`."""
    value = value.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep:
            raise ConfigError(f"bad address {value!r}")
        port_s = rest.removeprefix(":") if rest else str(default_port)
    elif value.count(":") == 1:
        host, port_s = value.split(":")
    else:
        host, port_s = value, str(default_port)
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(f"bad port in {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"port out of range in {value!r}")
    return host or "0.0.0.0", port  # noqa: S104 - listening on all interfaces is the default


def is_wildcard(host: str) -> bool:
    """True for an address that means every interface (`0.0.0.0`, `::`): one can listen
    on it but not connect to it, so no URL handed to a client may carry it."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def public_base_url(name: str, value: str, schemes: tuple[str, ...], *, path: bool) -> str:
    """`value` checked as the base URL clients reach liverec at, normalised: scheme and
    host required, scheme lower-cased, no user, query or fragment, no trailing slash (the
    API appends `/files/...`). A path prefix (`https://example.com/liverec`) is kept when
    `path` is true, refused otherwise. ConfigError, naming the setting, if it is not one."""
    text = value.strip()
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ConfigError(f"{name} must not contain spaces or control characters: {value!r}")
    wanted = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or too big
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL: {value!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise ConfigError(f"{name} must start with {wanted}: {value!r}")
    if not parts.hostname:
        raise ConfigError(f"{name} must name a host: {value!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{name} must not carry a user or password: {value!r}")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ConfigError(f"{name} must not have a query or fragment: {value!r}")
    prefix = parts.path.rstrip("/")
    if prefix and not path:
        raise ConfigError(f"{name} must not have a path: {value!r}")
    return urlunsplit((scheme, parts.netloc, prefix, "", ""))


def check_tls_files(cert_file: str, key_file: str) -> None:
    """Raise ConfigError unless `cert_file` holds a PEM certificate (a chain: the server's
    own first) and `key_file` the unencrypted PEM private key that matches it.

    These are the checks OpenSSL makes when the HTTPS server loads the pair, made first and
    one by one so that a wrong file is one line that names it, not a traceback from inside
    the server; `serve` makes them before it touches the data dir or the catalog. An
    encrypted key is refused rather than prompted for: a service has no terminal."""
    # Only with TLS: cryptography's X.509 and key parsers are ~1.5 MB of RSS.
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    cert_pem = _read_tls_file(cert_file, "certificate")
    key_pem = _read_tls_file(key_file, "key")
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise ConfigError(f"TLS certificate {cert_file} holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError(
            f"TLS key {key_file} is encrypted: give an unencrypted key (readable by liverec's "
            "user only)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"TLS key {key_file} holds no PEM private key") from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ConfigError(f"TLS key {key_file} does not match the certificate in {cert_file}")
    # Then OpenSSL itself, which will serve with them: anything it still refuses. A password
    # callback that refuses, so that OpenSSL never prompts on a terminal.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_password)
    except OSError as exc:
        raise ConfigError(f"TLS certificate {cert_file} and key {key_file}: {exc}") from None


def _no_password() -> str:
    raise ConfigError("the TLS key is encrypted: give an unencrypted key")


def _read_tls_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read TLS {what} file {path}: {exc.strerror or exc}") from None


def parse_cors_origins(value: str) -> tuple[str, ...]:
    """`*` -> ("*",); else each comma-separated origin checked and normalised
    (`scheme://host[:port]`, lower-case, no path). ConfigError names a bad one."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items or items == ["*"]:
        return ("*",)
    origins = []
    for item in items:
        origin = public_base_url("cors_origins", item, ("http", "https"), path=False)
        origins.append(origin.lower())
    return tuple(origins)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./liverec-data")
    http: str = "0.0.0.0:8080"
    rtmp: str = "0.0.0.0:1935"
    database_url: str = ""  # empty: sqlite file in data_dir
    storage_url: str = ""  # empty: file:// in data_dir
    # While the store fails, the recorder's segments and playlists wait in a spool on local
    # disk ({data_dir}/spool/storage) of at most this many bytes, uploaded in order when it
    # answers; only past it are segments dropped (storage/spool.py).
    storage_spool_max_bytes: int = 2 * 1024**3
    # What a catalogued segment survives (storage/local.py): `full`, a power cut too (every
    # segment, playlist and SQLite commit fsynced); `off`, a crash or kill -9 (no fsync).
    fsync: str = "full"
    # Seconds an object-store call may take, retries included, before it fails as a
    # timeout (the API answers 504 naming the storage; the recorder spools).
    storage_timeout: float = 10.0
    secret_key: str = ""  # empty: kept in data_dir/secret.key, apart from the catalog
    region: str = "na"
    app_id: str = ""
    customer_id: str = ""
    customer_secret: str = ""
    node_id: str = ""  # empty: random per process
    log_level: str = "INFO"
    # Scale-out: an open recording's lease; a node that stops renewing it (killed) has its
    # recordings closed by another node once it expires.
    lease_seconds: float = 30.0
    # S3 storage: answer file downloads with a redirect to a presigned URL instead of
    # streaming them through this node.
    s3_redirect: bool = False
    # S3 storage: the endpoint of an S3-compatible server (MinIO, Ceph); empty: AWS.
    s3_endpoint_url: str = ""
    # RTMP limits: every network input is bounded.
    rtmp_idle_timeout: float = 15.0  # seconds a connection may take to start publishing
    rtmp_read_timeout: float = 30.0  # seconds without any byte from a publisher
    # Publishers' sockets are read in batches this many seconds apart (0: on every
    # readiness event): fewer, larger reads cost a fraction of the CPU (rtmp/batching.py).
    rtmp_read_interval: float = 0.1
    rtmp_max_connections: int = 1000
    rtmp_max_message_size: int = 8 * 1024 * 1024
    rtmp_handshake_timeout: float = 5.0  # seconds from accept to handshake and `connect` done
    rtmp_max_pending_per_ip: int = 16  # connections of one address not (yet) publishing
    # Slots of rtmp_max_connections that connections not publishing cannot fill: a new
    # connection in one must publish within rtmp_handshake_timeout (rtmp/connection.py Limits).
    rtmp_reserved_connections: int = 100
    # MP4 record files: a recording's MP4 is cut into slices of at most this much media or
    # these many bytes (a new slice starts at the first keyframe segment that would pass
    # either; outputs/mp4.py).
    mp4_slice_seconds: float = 3600.0
    mp4_slice_bytes: int = 2 * 1024**3
    # Periodic snapshots: scaled down to at most this width (aspect kept) when the source
    # is wider; 0: the source's own size.
    snapshot_max_width: int = 0
    # HTTPS: a PEM certificate (chain) and its unencrypted key, both or neither; empty:
    # plain HTTP. One server, one port: the API and the file URLs alike.
    tls_cert: str = ""
    tls_key: str = ""
    # The base URL clients reach the HTTP API at (a proxy's or load balancer's, path prefix
    # kept), for every signed `url` the API returns; empty: the request's own base URL.
    # Normalised by load_settings: no trailing slash.
    public_url: str = ""
    # `rtmp://HOST[:PORT]` publishers reach this node at, for the push URLs the admin
    # commands print; empty: from `rtmp` (and `public_url`'s host for a wildcard address).
    public_rtmp_url: str = ""
    # Callbacks (events/delivery.py): the time a try may take, how long a notice that keeps
    # failing is retried before it is given up (a dead notice), the longest wait between
    # tries.
    callback_timeout: float = 10.0
    callback_retry_hours: float = 24.0
    callback_max_backoff: float = 300.0
    # The publish webhook (events/webhook.py): the time it has to answer, whether a webhook
    # that does not answer lets the publish go ahead, how long an answer is kept.
    webhook_timeout: float = 3.0
    webhook_fail_open: bool = False
    webhook_cache_seconds: float = 5.0
    # This node's address as callbacks report it (nodeIp, the webhook's cdnIp); empty: the
    # RTMP listen address, else the address of the interface of the default route.
    node_ip: str = ""
    # Logs (logs.py): "text" lines, or "json", one object per line.
    log_format: str = "text"
    # Metrics (metrics.py): a label per live stream (a series per stream name: off by
    # default); a token /metrics wants as `Authorization: Bearer` (empty: none).
    metrics_stream_labels: bool = False
    metrics_token: str = ""
    # Local storage: /readyz fails below this many bytes free on its disk (0: no minimum).
    storage_min_free: int = 0
    # Retention (retention.py): a cap on the recorded bytes in this region's storage (0:
    # none; with storage_min_free on local disk, the oldest media goes first when either is
    # passed), and the seconds between two sweeps.
    storage_max_bytes: int = 0
    retention_interval: float = 60.0
    # HTTP limits (api/connlimits.py): open connections in all and from one address (more
    # are closed at once), seconds a request line and headers may take to arrive, seconds
    # an idle keep-alive connection is kept.
    http_max_connections: int = 4096
    http_max_per_ip: int = 256
    http_header_timeout: float = 10.0
    http_keepalive_timeout: float = 5.0
    # Failed credentials and signed links (api/guard.py): this many failures within
    # auth_fail_window seconds from one address, or on one customer ID, lock the address
    # (or the customer ID, for the addresses that failed on it) out for auth_lockout
    # seconds, doubling per further lockout up to auth_lockout_max (429, Retry-After).
    auth_max_failures_per_ip: int = 20
    auth_max_failures_per_customer: int = 50
    auth_fail_window: float = 60.0
    auth_lockout: float = 1.0
    auth_lockout_max: float = 300.0
    # HMAC signatures remembered to refuse a replay within the Date window (per node;
    # 0: no replay check).
    hmac_replay_cache: int = 100_000
    # Seconds a signed link the API hands out works (files, time-shift playlists and the
    # segment links inside them, re-signed on each playlist request).
    link_lifetime: float = 3600.0
    # Origins a browser page may call the API, /files and /play from, comma-separated: `*`
    # any (no credentials), or `https://a.example,https://b.example` (those only, and their
    # pages may send credentials: cookies, Authorization).
    cors_origins: str = "*"
    # Ingest worker processes (`serve --workers N`): 1, one process does everything; N > 1,
    # the process keeps the API and N workers share the RTMP port, each a node of its own
    # (workers.py).
    workers: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def http_addr(self) -> tuple[str, int]:
        return parse_hostport(self.http, 8080)

    @property
    def rtmp_addr(self) -> tuple[str, int]:
        return parse_hostport(self.rtmp, 1935)

    @property
    def tls(self) -> bool:
        """HTTPS instead of HTTP (load_settings ensures the key comes with the cert)."""
        return bool(self.tls_cert)

    @property
    def sqlite_path(self) -> Path | None:
        """The catalog's SQLite file (`sqlite:///PATH`, by default in the data dir), None
        when the catalog is not SQLite or the URL names no file."""
        if not self.database_url:
            return (self.data_dir / CATALOG_FILE).resolve()
        scheme, sep, rest = self.database_url.partition("://")
        if not sep or scheme.split("+")[0].lower() != "sqlite":
            return None
        # sqlite:///PATH is an empty host, then the path (absolute: sqlite:////PATH).
        path = rest.partition("?")[0]
        return Path(path[1:]) if path.startswith("/") and len(path) > 1 else None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / CATALOG_FILE).resolve()}"

    @property
    def effective_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir / "storage").resolve().as_uri()


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "extra"}


def _coerce(name: str, value: Any) -> Any:
    default: Any = _FIELDS[name].default
    kind: type = type(default)
    try:
        if isinstance(default, Path):
            return Path(str(value))
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is float:
            return float(value)
        if kind is int:
            return int(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} has a bad value {value!r}") from None


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from CLI values (None means not given), environment and TOML file."""
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_path = cli.pop("config", None) or env.get("LIVEREC_CONFIG")
    if config_path:
        try:
            with open(config_path, "rb") as fh:
                doc = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_path}: {exc}") from exc
        section = doc.get("liverec", doc)
        for key, value in section.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ConfigError(f"unknown setting {key!r} in {config_path}")
            values[name] = _coerce(name, value)
    for name in _FIELDS:
        env_value = env.get(f"LIVEREC_{name.upper()}")
        if env_value is not None and env_value != "":
            values[name] = _coerce(name, env_value)
    for name, value in cli.items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = _coerce(name, value)
    settings = Settings(**values)
    if settings.region not in REGIONS:
        raise ConfigError(f"region must be one of {', '.join(REGIONS)}, not {settings.region!r}")
    settings.http_addr  # noqa: B018 - validate early, with a clear error
    settings.rtmp_addr  # noqa: B018
    if not 0 <= settings.rtmp_reserved_connections < settings.rtmp_max_connections:
        raise ConfigError(
            "setting rtmp_reserved_connections must be at least 0 and less than "
            "rtmp_max_connections"
        )
    if settings.rtmp_max_pending_per_ip < 1 or settings.rtmp_handshake_timeout <= 0:
        raise ConfigError(
            "settings rtmp_max_pending_per_ip and rtmp_handshake_timeout must be positive"
        )
    if not 0 <= settings.rtmp_read_interval <= 1:
        raise ConfigError("setting rtmp_read_interval must be 0-1 seconds")
    if settings.snapshot_max_width < 0 or settings.snapshot_max_width % 2:
        raise ConfigError("setting snapshot_max_width must be 0 or a positive even number")
    if settings.mp4_slice_seconds <= 0 or settings.mp4_slice_bytes <= 0:
        raise ConfigError("settings mp4_slice_seconds and mp4_slice_bytes must be positive")
    for name in ("callback_timeout", "callback_max_backoff", "webhook_timeout"):
        if not 0 < getattr(settings, name) <= 3600:
            raise ConfigError(f"setting {name} must be more than 0 and at most 3600 seconds")
    if not 0 <= settings.callback_retry_hours <= 24 * 30:
        raise ConfigError("setting callback_retry_hours must be 0-720")
    if settings.fsync not in ("full", "off"):
        raise ConfigError(f"setting fsync must be full or off, not {settings.fsync!r}")
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"setting log_format must be text or json, not {settings.log_format!r}")
    if settings.storage_timeout <= 0:
        raise ConfigError("setting storage_timeout must be positive")
    if settings.storage_spool_max_bytes < 0:
        raise ConfigError("setting storage_spool_max_bytes must not be negative")
    if settings.storage_min_free < 0:
        raise ConfigError("setting storage_min_free must not be negative")
    if settings.storage_max_bytes < 0:
        raise ConfigError("setting storage_max_bytes must not be negative (0: no cap)")
    if not 1 <= settings.retention_interval <= 86400:
        raise ConfigError("setting retention_interval must be 1-86400 seconds")
    if not 1 <= settings.link_lifetime <= 7 * 86400:
        raise ConfigError("setting link_lifetime must be 1-604800 seconds")
    for name in ("http_max_connections", "http_max_per_ip", "auth_max_failures_per_ip"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"setting {name} must be at least 1")
    if settings.auth_max_failures_per_customer < 1 or settings.hmac_replay_cache < 0:
        raise ConfigError("auth_max_failures_per_customer >= 1, hmac_replay_cache >= 0")
    for name in ("http_header_timeout", "http_keepalive_timeout", "auth_fail_window"):
        if not 0 < getattr(settings, name) <= 3600:
            raise ConfigError(f"setting {name} must be more than 0 and at most 3600 seconds")
    if not 0 < settings.auth_lockout <= settings.auth_lockout_max <= 86400:
        raise ConfigError("settings auth_lockout and auth_lockout_max: 0 < lockout <= max")
    parse_cors_origins(settings.cors_origins)
    if not 1 <= settings.workers <= MAX_WORKERS:
        raise ConfigError(f"setting workers must be 1-{MAX_WORKERS}")
    if settings.webhook_cache_seconds < 0:
        raise ConfigError("setting webhook_cache_seconds must not be negative")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError(
            "HTTPS needs both --tls-cert and --tls-key (LIVEREC_TLS_CERT, LIVEREC_TLS_KEY); "
            "give neither for plain HTTP"
        )
    # The files themselves are checked by `serve` only (check_tls_files): admin commands,
    # which may run as another user, do not read them.
    if settings.public_url:
        settings = dataclasses.replace(
            settings,
            public_url=public_base_url(
                "--public-url", settings.public_url, ("http", "https"), path=True
            ),
        )
    if settings.public_rtmp_url:
        settings = dataclasses.replace(
            settings,
            public_rtmp_url=public_base_url(
                "--public-rtmp-url", settings.public_rtmp_url, ("rtmp", "rtmps"), path=False
            ),
        )
    return settings
