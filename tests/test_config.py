"""Settings: the TLS pair, the public URLs, and where the SQLite catalog is."""

from __future__ import annotations

from pathlib import Path

import pytest

from liverec.config import check_tls_files, is_wildcard, load_settings
from liverec.errors import ConfigError
from support.tls import make_cert


def test_tls_is_off_by_default() -> None:
    settings = load_settings({}, env={})
    assert not settings.tls and settings.tls_cert == settings.tls_key == ""


def test_tls_from_command_line_env_and_file(tmp_path: Path) -> None:
    toml = tmp_path / "liverec.toml"
    toml.write_text('[liverec]\ntls-cert = "file.crt"\ntls-key = "file.key"\n')
    from_file = load_settings({"config": str(toml)}, env={})
    assert (from_file.tls_cert, from_file.tls_key) == ("file.crt", "file.key") and from_file.tls
    env = {"LIVEREC_CONFIG": str(toml), "LIVEREC_TLS_CERT": "env.crt"}
    assert load_settings({}, env=env).tls_cert == "env.crt"
    assert load_settings({"tls_cert": "cli.crt"}, env=env).tls_cert == "cli.crt"


@pytest.mark.parametrize(
    ("cli", "env"),
    [
        ({"tls_cert": "a.crt"}, {}),
        ({"tls_key": "a.key"}, {}),
        ({}, {"LIVEREC_TLS_CERT": "a.crt"}),
        ({"tls_key": "a.key"}, {"LIVEREC_TLS_CERT": ""}),  # empty is unset
    ],
)
def test_tls_needs_both_cert_and_key(cli: dict[str, str], env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"both --tls-cert and --tls-key"):
        load_settings(cli, env=env)


def test_matching_pair_passes(tmp_path: Path) -> None:
    pair = make_cert(tmp_path)
    check_tls_files(str(pair.cert), str(pair.key))
    # One file holding the certificate and then the key works too.
    both = tmp_path / "both.pem"
    both.write_bytes(pair.cert.read_bytes() + pair.key.read_bytes())
    check_tls_files(str(both), str(both))


def test_tls_file_errors_name_the_file(tmp_path: Path) -> None:
    pair = make_cert(tmp_path)
    other = make_cert(tmp_path, "other")
    locked = make_cert(tmp_path, "locked", key_password=b"pw")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    missing = tmp_path / "missing.pem"
    cases = [
        (missing, pair.key, rf"cannot read TLS certificate file {missing}: No such file"),
        (pair.cert, missing, rf"cannot read TLS key file {missing}: No such file"),
        (tmp_path, pair.key, r"cannot read TLS certificate file .*: Is a directory"),
        (junk, pair.key, rf"TLS certificate {junk} holds no PEM certificate"),
        (pair.key, pair.cert, r"holds no PEM certificate"),  # swapped
        (pair.cert, junk, rf"TLS key {junk} holds no PEM private key"),
        (pair.cert, other.key, rf"TLS key {other.key} does not match the certificate"),
        (locked.cert, locked.key, rf"TLS key {locked.key} is encrypted"),
    ]
    for cert, key, message in cases:
        with pytest.raises(ConfigError, match=message):
            check_tls_files(str(cert), str(key))


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://rec.example.com", "https://rec.example.com"),
        ("https://rec.example.com/", "https://rec.example.com"),
        ("HTTPS://rec.example.com:8443/liverec/", "https://rec.example.com:8443/liverec"),
        ("http://example.com/a/b", "http://example.com/a/b"),
        ("http://[2001:db8::1]:8080/", "http://[2001:db8::1]:8080"),
        ("  https://rec.example.com  ", "https://rec.example.com"),
    ],
)
def test_public_url_is_normalised(given: str, kept: str) -> None:
    assert load_settings({"public_url": given}, env={}).public_url == kept
    assert load_settings({}, env={"LIVEREC_PUBLIC_URL": given}).public_url == kept


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("rec.example.com", r"must start with http:// or https://"),
        ("ftp://rec.example.com", r"must start with http:// or https://"),
        ("https://", r"must name a host"),
        ("https:///liverec", r"must name a host"),
        ("https://user:pw@rec.example.com", r"must not carry a user or password"),
        ("https://rec.example.com/?a=1", r"must not have a query or fragment"),
        ("https://rec.example.com/?", r"must not have a query or fragment"),
        ("https://rec.example.com/#top", r"must not have a query or fragment"),
        ("https://rec.example.com:99999", r"is not a valid URL"),
        ("https://rec.example.com/a b", r"must not contain spaces"),
    ],
)
def test_bad_public_url_is_refused(given: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"--public-url " + message):
        load_settings({"public_url": given}, env={})


def test_public_rtmp_url() -> None:
    def rtmp(value: str) -> str:
        return load_settings({"public_rtmp_url": value}, env={}).public_rtmp_url

    assert rtmp("rtmp://live.example.com") == "rtmp://live.example.com"
    assert rtmp("RTMP://live.example.com:1936/") == "rtmp://live.example.com:1936"
    assert rtmp("rtmps://live.example.com:443") == "rtmps://live.example.com:443"
    # A path would be taken for the entry point by publishers: refused.
    with pytest.raises(ConfigError, match=r"--public-rtmp-url must not have a path"):
        rtmp("rtmp://live.example.com/live")
    with pytest.raises(ConfigError, match=r"--public-rtmp-url must start with rtmp://"):
        rtmp("https://live.example.com")


def test_wildcard_hosts() -> None:
    assert is_wildcard("0.0.0.0") and is_wildcard("::") and is_wildcard("0:0::0")
    assert not is_wildcard("127.0.0.1") and not is_wildcard("::1")
    assert not is_wildcard("rec.example.com") and not is_wildcard("")


def test_sqlite_path(tmp_path: Path) -> None:
    def path(**cli: str) -> Path | None:
        return load_settings(cli, env={}).sqlite_path

    assert path(data_dir=str(tmp_path)) == tmp_path / "catalog.db"
    assert path(database_url="sqlite:////srv/liverec/catalog.db") == Path("/srv/liverec/catalog.db")
    assert path(database_url="sqlite:///rel/catalog.db?timeout=5") == Path("rel/catalog.db")
    assert path(database_url="postgresql+psycopg://u@db/liverec") is None


def test_snapshot_max_width_from_the_environment_and_bad_values() -> None:
    assert load_settings({}, env={"LIVEREC_SNAPSHOT_MAX_WIDTH": "640"}).snapshot_max_width == 640
    assert load_settings({}, env={}).snapshot_max_width == 0  # the source's size
    for bad in ("-2", "641"):
        with pytest.raises(ConfigError, match="snapshot_max_width must be 0 or a positive even"):
            load_settings({}, env={"LIVEREC_SNAPSHOT_MAX_WIDTH": bad})


def test_fsync_is_full_by_default_and_off_by_env_or_file(tmp_path: Path) -> None:
    assert load_settings({}, env={}).fsync == "full"
    assert load_settings({}, env={"LIVEREC_FSYNC": "off"}).fsync == "off"
    toml = tmp_path / "liverec.toml"
    toml.write_text('fsync = "off"\n')
    assert load_settings({"config": str(toml)}, env={}).fsync == "off"


@pytest.mark.parametrize("value", ["normal", "FULL", "no", "1"])
def test_fsync_takes_only_full_or_off(value: str) -> None:
    with pytest.raises(ConfigError, match="fsync must be full or off"):
        load_settings({}, env={"LIVEREC_FSYNC": value})


def test_rtmp_read_interval_is_checked() -> None:
    assert load_settings(env={}).rtmp_read_interval == 0.1
    assert load_settings(env={"LIVEREC_RTMP_READ_INTERVAL": "0"}).rtmp_read_interval == 0
    for bad in ("-0.1", "1.5", "soon"):
        with pytest.raises(ConfigError, match="rtmp_read_interval"):
            load_settings(env={"LIVEREC_RTMP_READ_INTERVAL": bad})
