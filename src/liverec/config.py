"""Settings, built once and passed down.

Precedence, highest first: command-line options, `LIVEREC_<NAME>` environment variables,
the TOML config file (`--config` / `LIVEREC_CONFIG`), then the embedded defaults."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liverec.errors import ConfigError

REGIONS = ("na", "eu", "ap", "cn")


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


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./liverec-data")
    http: str = "0.0.0.0:8080"
    rtmp: str = "0.0.0.0:1935"
    database_url: str = ""  # empty: sqlite file in data_dir
    storage_url: str = ""  # empty: file:// in data_dir
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
    rtmp_max_connections: int = 1000
    rtmp_max_message_size: int = 8 * 1024 * 1024
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def http_addr(self) -> tuple[str, int]:
        return parse_hostport(self.http, 8080)

    @property
    def rtmp_addr(self) -> tuple[str, int]:
        return parse_hostport(self.rtmp, 1935)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"

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
    return settings
