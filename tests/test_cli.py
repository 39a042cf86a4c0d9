"""The `liverec` command line, run as a user runs it (a subprocess): admin commands never
create a data dir or a catalog, the push URLs they print use the configured RTMP address,
and `serve` refuses bad TLS settings with one clear line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from liverec.bootstrap import bootstrap
from liverec.catalog import Catalog, SecretBox, ensure_schema, make_engine
from liverec.cli import push_url_base
from liverec.config import load_settings
from liverec.rtmp.pushauth import push_signature
from support.pg import PG_ADMIN_URL, PgServer
from support.tls import make_cert


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`liverec ARGS` in `cwd`, with no LIVEREC_* setting but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVEREC_")}
    return subprocess.run(
        [sys.executable, "-m", "liverec", *args],
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def failed(result: subprocess.CompletedProcess[str], message: str) -> None:
    """The command failed with `message` on stderr, as one `liverec:` line, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("liverec: ") and message in result.stderr, result.stderr


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir as the first `liverec serve` leaves it: catalog, secret key, the default
    project with its entry point `live` and a credential (made in-process by the same code)."""
    path = tmp_path_factory.mktemp("deployment") / "data"
    settings = load_settings({"data_dir": str(path)}, env={})
    path.mkdir()
    engine = make_engine(settings.effective_database_url)
    ensure_schema(engine)
    bootstrap(Catalog(engine, SecretBox.from_settings(settings)), settings)
    engine.dispose()
    return path


# -- admin commands need what `serve` made ----------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["projects", "list"],
        ["projects", "add", "app1"],
        ["entry-points", "list"],
        ["entry-points", "sign", "live"],
        ["credentials", "add"],
        ["migrate"],
    ],
)
def test_admin_commands_refuse_a_missing_data_dir(tmp_path: Path, command: list[str]) -> None:
    failed(run(tmp_path, *command), f"data directory {tmp_path / 'liverec-data'} does not exist")
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_admin_commands_refuse_a_data_dir_without_catalog(tmp_path: Path) -> None:
    failed(run(tmp_path, "projects", "list", "--data-dir", "typo"), "typo does not exist")
    (tmp_path / "empty").mkdir()
    for command in (["credentials", "list"], ["migrate"]):
        failed(
            run(tmp_path, *command, "--data-dir", "empty"),
            f"no catalog at {tmp_path / 'empty' / 'catalog.db'}",
        )
    assert list((tmp_path / "empty").iterdir()) == []


def test_admin_commands_never_make_a_secret_key(tmp_path: Path, data_dir: Path) -> None:
    """A new key would seal credentials no server can open: a missing key file is an error,
    unless LIVEREC_SECRET_KEY is given."""
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "catalog.db").write_bytes((data_dir / "catalog.db").read_bytes())
    failed(run(tmp_path, "projects", "list", "--data-dir", "copy"), "no secret key")
    assert not (copy / "secret.key").exists()
    key = (data_dir / "secret.key").read_text().strip()
    env = {"LIVEREC_SECRET_KEY": key}
    assert "default" in ok(run(tmp_path, "projects", "list", "--data-dir", "copy", env=env))


@pytest.fixture
def pg_url() -> Iterator[str]:
    server = PgServer(PG_ADMIN_URL)
    try:
        with server.admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    url = server.create()
    yield url
    server.drop(url)
    server.admin.dispose()


def test_postgresql_catalog_needs_no_data_dir_but_a_key(tmp_path: Path, pg_url: str) -> None:
    key = SecretBox.generate_key()
    env = {"LIVEREC_DATABASE_URL": pg_url, "LIVEREC_SECRET_KEY": key}
    # An empty database: admin commands do not create the schema; migrate does.
    failed(run(tmp_path, "projects", "list", env=env), "run `liverec migrate`")
    assert "up to date" in ok(run(tmp_path, "migrate", env={"LIVEREC_DATABASE_URL": pg_url}))
    ok(run(tmp_path, "projects", "add", "app1", "--default", env=env))
    assert ok(run(tmp_path, "projects", "list", env=env)).startswith("app1\t")
    # Without LIVEREC_SECRET_KEY the data dir's key file is needed, and not made.
    failed(
        run(tmp_path, "projects", "list", env={"LIVEREC_DATABASE_URL": pg_url}),
        "no secret key: LIVEREC_SECRET_KEY is not set",
    )
    assert list(tmp_path.iterdir()) == []


# -- push URLs --------------------------------------------------------------------------


def signed_url(output: str) -> str:
    return output.split("signed push URL: ", 1)[1].split()[0]


def check_signed(url: str, key: str, entry_point: str, stream: str) -> str:
    """The URL's `scheme://host:port`, after checking its path and FLS signature."""
    parts = urlsplit(url)
    assert parts.path == f"/{entry_point}/{stream}"
    query = parse_qs(parts.query)
    assert query["sign"] == [push_signature(key, entry_point, stream, query["ts"][0])]
    return f"{parts.scheme}://{parts.netloc}"


def test_generated_key_is_printed_with_the_configured_rtmp_address(
    tmp_path: Path, data_dir: Path
) -> None:
    out = ok(
        run(
            tmp_path,
            *("entry-points", "add", "gen", "--generate-auth-key", "--stream", "cam1"),
            *("--data-dir", str(data_dir), "--rtmp", "127.0.0.1:19350"),
        )
    )
    key = out.split("push auth key: ", 1)[1].split()[0]
    assert check_signed(signed_url(out), key, "gen", "cam1") == "rtmp://127.0.0.1:19350"
    # The environment and a wildcard address: this machine's name, the configured port.
    out = ok(
        run(
            tmp_path,
            *("entry-points", "sign", "gen", "--data-dir", str(data_dir)),
            env={"LIVEREC_RTMP": "0.0.0.0:1936"},
        )
    )
    assert check_signed(signed_url(out), key, "gen", "stream1") == (
        f"rtmp://{socket.gethostname()}:1936"
    )
    # The public URL's host, for a wildcard address.
    out = ok(
        run(
            tmp_path,
            *("entry-points", "set", "gen", "--generate-auth-key"),
            *("--data-dir", str(data_dir), "--rtmp", "[::]:1937"),
            *("--public-url", "https://rec.example.com/liverec"),
        )
    )
    new_key = out.split("push auth key: ", 1)[1].split()[0]
    assert new_key != key
    assert check_signed(signed_url(out), new_key, "gen", "stream1") == (
        "rtmp://rec.example.com:1937"
    )


def test_push_url_with_a_port_chosen_at_start(tmp_path: Path, data_dir: Path) -> None:
    """`--rtmp HOST:0` gives no port to print: `sign` fails, a change still succeeds."""
    args = ("--data-dir", str(data_dir), "--rtmp", "127.0.0.1:0")
    ok(run(tmp_path, "entry-points", "add", "zero", "--auth-key", "k3y", *args))
    failed(run(tmp_path, "entry-points", "sign", "zero", *args), "give --public-rtmp-url")
    result = run(tmp_path, "entry-points", "set", "zero", "--no-record", *args)
    assert "entry point zero updated" in ok(result)
    assert "no signed push URL" in result.stderr and "signed push URL:" not in result.stdout
    out = ok(
        run(
            tmp_path,
            *("entry-points", "sign", "zero", *args),
            *("--public-rtmp-url", "rtmp://live.example.com:443"),
        )
    )
    assert check_signed(signed_url(out), "k3y", "zero", "stream1") == "rtmp://live.example.com:443"


@pytest.mark.parametrize(
    ("cli", "host", "base"),
    [
        ({"rtmp": "127.0.0.1:1935"}, None, "rtmp://127.0.0.1:1935"),
        ({"rtmp": "rec.local:2000"}, None, "rtmp://rec.local:2000"),
        ({"rtmp": "[::1]:1935"}, None, "rtmp://[::1]:1935"),
        ({"rtmp": ":1940"}, None, f"rtmp://{socket.gethostname()}:1940"),
        (
            {"rtmp": "0.0.0.0:1935", "public_url": "https://a.example/x"},
            None,
            "rtmp://a.example:1935",
        ),
        (
            {"rtmp": "127.0.0.1:1935", "public_url": "https://a.example"},
            None,
            "rtmp://127.0.0.1:1935",
        ),
        ({"rtmp": "0.0.0.0:1935"}, "cam.example", "rtmp://cam.example:1935"),
        ({"rtmp": "0.0.0.0:1935"}, "::1", "rtmp://[::1]:1935"),
        ({"public_rtmp_url": "rtmp://lb.example"}, None, "rtmp://lb.example"),
        ({"public_rtmp_url": "rtmps://lb.example:443/"}, None, "rtmps://lb.example:443"),
        (
            {"public_rtmp_url": "rtmp://lb.example:1936"},
            "other.example",
            "rtmp://other.example:1936",
        ),
    ],
)
def test_push_url_base(cli: dict[str, str], host: str | None, base: str) -> None:
    assert push_url_base(load_settings(cli, env={}), host) == base


# -- serve refuses bad TLS settings before it makes anything ------------------------------


def test_serve_refuses_bad_tls_settings(tmp_path: Path) -> None:
    pair = make_cert(tmp_path)
    other = make_cert(tmp_path, "other")
    serve = ("serve", "--data-dir", "data", "--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0")
    failed(
        run(tmp_path, *serve, "--tls-cert", str(pair.cert)),
        "HTTPS needs both --tls-cert and --tls-key",
    )
    failed(
        run(
            tmp_path, *serve, env={"LIVEREC_TLS_CERT": str(pair.cert), "LIVEREC_TLS_KEY": "no.key"}
        ),
        "cannot read TLS key file no.key: No such file or directory",
    )
    failed(
        run(tmp_path, *serve, "--tls-cert", str(pair.cert), "--tls-key", str(other.key)),
        f"TLS key {other.key} does not match the certificate in {pair.cert}",
    )
    assert not (tmp_path / "data").exists()
