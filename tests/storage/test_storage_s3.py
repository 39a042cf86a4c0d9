"""S3Store specifics, against real servers on loopback: moto's S3 server in a subprocess,
and for failures a stopped server, a silent socket and a small HTTP server that answers 503.
(The behaviour every store shares is in test_storage_contract.py.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from liverec.config import load_settings
from liverec.errors import ConfigError, StorageError
from liverec.storage import BlobStore, ObjectNotFoundError, open_store
from liverec.storage.s3 import S3Store, StorageTimeoutError
from support.s3server import TEST_AWS_ENV, UNSET_AWS_ENV, S3Server, create_bucket

BUCKET = "media"


@pytest.fixture(scope="module", autouse=True)
def aws_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name in UNSET_AWS_ENV:
            mp.delenv(name, raising=False)
        for name, value in TEST_AWS_ENV.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def server(aws_env: None) -> Iterator[S3Server]:
    with S3Server() as s3:
        create_bucket(s3.endpoint_url, BUCKET)
        yield s3


@pytest.fixture(scope="module")
def raw(server: S3Server) -> Iterator[Any]:
    """A plain boto3 client, to see what S3Store really stored."""
    client = server.client()
    yield client
    client.close()


def test_keys_live_under_the_prefix_with_their_content_type(server: S3Server, raw: Any) -> None:
    store = S3Store(BUCKET, "/tenant/one/", endpoint_url=server.endpoint_url)
    assert isinstance(store, BlobStore)
    assert store.prefix == "tenant/one/"
    store.put("na/app/a.m3u8", b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    head = raw.head_object(Bucket=BUCKET, Key="tenant/one/na/app/a.m3u8")
    assert head["ContentType"] == "application/vnd.apple.mpegurl"
    assert head["ContentLength"] == 8
    # A sibling prefix that merely starts the same is not part of this store.
    raw.put_object(Bucket=BUCKET, Key="tenant/oneX/b", Body=b"x")
    raw.put_object(Bucket=BUCKET, Key="tenant/one/na/app/c", Body=b"y")
    assert store.list("") == ["na/app/a.m3u8", "na/app/c"]
    assert store.get("na/app/c") == b"y"

    bare = S3Store(BUCKET, endpoint_url=server.endpoint_url)
    assert bare.prefix == ""
    assert bare.get("tenant/one/na/app/a.m3u8") == b"#EXTM3U\n"
    assert "tenant/oneX/b" in bare.list("tenant/")
    store.close()
    bare.close()


def test_list_follows_every_page(server: S3Server) -> None:
    store = S3Store(BUCKET, "paged", endpoint_url=server.endpoint_url)
    store.list_page_size = 2
    keys = [f"seg/{i:03d}.ts" for i in range(7)]
    for key in reversed(keys):
        store.put(key, b"x", "video/mp2t")
    store.put("other/x", b"x", "x")
    assert store.list("seg/") == keys
    assert store.list("") == [*sorted(["other/x"]), *keys]
    store.close()


def test_concurrent_puts_from_threads(server: S3Server) -> None:
    store = S3Store(BUCKET, "threads", endpoint_url=server.endpoint_url)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(8):
                store.put(f"t{n}/{i}", bytes([n, i]), "x")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list("")) == 48
    assert store.get("t5/7") == bytes([5, 7])
    store.close()


def test_presigned_get(server: S3Server) -> None:
    store = S3Store(BUCKET, "signed", endpoint_url=server.endpoint_url)
    data = bytes(range(256)) * 10
    store.put("a/seg 1.ts", data, "video/mp2t")
    url = store.presigned_get("a/seg 1.ts", expires=120)
    assert url.startswith(f"{server.endpoint_url}/{BUCKET}/signed/a/seg%201.ts?")
    assert "X-Amz-Expires=120" in url and "X-Amz-Signature=" in url
    response = httpx.get(url)  # no credentials: the URL is the authorisation
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "video/mp2t"
    ranged = httpx.get(url, headers={"Range": "bytes=10-19"})  # players seek with Range
    assert ranged.status_code == 206
    assert ranged.content == data[10:20]
    # moto ignores response-content-type, so check that the signed URL asks for it.
    typed = store.presigned_get("a/seg 1.ts", content_type="application/octet-stream")
    assert "response-content-type=application%2Foctet-stream" in typed
    store.close()


def test_a_missing_bucket_is_a_storage_error_not_a_missing_object(server: S3Server) -> None:
    store = S3Store("no-such-bucket", endpoint_url=server.endpoint_url, retries=0)
    with pytest.raises(StorageError) as put_info:
        store.put("k", b"x", "x")
    with pytest.raises(StorageError) as get_info:
        store.get("k")
    with pytest.raises(StorageError) as list_info:
        store.list("")
    for info in (put_info, get_info, list_info):
        assert not isinstance(info.value, ObjectNotFoundError)
        assert "NoSuchBucket" in str(info.value)
        assert info.value.__cause__ is not None  # the boto error, chained
    store.close()


def test_put_against_a_stopped_server_fails_within_bounded_time() -> None:
    with S3Server() as s3:
        create_bucket(s3.endpoint_url, BUCKET)
        store = S3Store(BUCKET, endpoint_url=s3.endpoint_url, retries=1, timeout=1.0)
        store.put("before", b"1", "x")
    # Stopped: connections are refused; one retry after a backoff of at most 1 s.
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.put("after", b"2", "x")
    assert time.monotonic() - started < 5
    assert not isinstance(info.value, StorageTimeoutError)
    assert "Could not connect" in str(info.value)
    with pytest.raises(StorageError):
        store.get("before")
    store.close()


def test_a_server_that_never_answers_is_a_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never replies
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = S3Store(BUCKET, endpoint_url=endpoint, retries=0, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StorageTimeoutError) as info:
            store.put("k", b"x", "x")  # (botocore first waits 1 s for "100 Continue")
        assert isinstance(info.value, StorageError)
        with pytest.raises(StorageTimeoutError):
            store.get("k")
        assert time.monotonic() - started < 4
        store.close()


class _FlakyS3(BaseHTTPRequestHandler):
    """Answers the first `failures` PUTs with 503 SlowDown, then 200 like S3."""

    protocol_version = "HTTP/1.1"  # so that botocore's "Expect: 100-continue" is answered
    server: _FlakyServer

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.bodies.append(body)
        if len(self.server.bodies) <= self.server.failures:
            error = b"<Error><Code>SlowDown</Code><Message>busy</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return
        self.send_response(200)
        self.send_header("ETag", '"0"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _FlakyServer(ThreadingHTTPServer):
    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _FlakyS3)
        self.failures = failures
        self.bodies: list[bytes] = []


@pytest.fixture
def flaky() -> Iterator[_FlakyServer]:
    http = _FlakyServer(failures=1)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield http
    http.shutdown()
    http.server_close()
    thread.join()


def test_a_failed_put_is_retried(flaky: _FlakyServer) -> None:
    store = S3Store(BUCKET, endpoint_url=f"http://127.0.0.1:{flaky.server_port}", retries=2)
    store.put("k", b"segment", "video/mp2t")
    assert flaky.bodies == [b"segment", b"segment"]  # the 503, then the whole body again
    store.close()


def test_no_retries_means_one_attempt(flaky: _FlakyServer) -> None:
    store = S3Store(BUCKET, endpoint_url=f"http://127.0.0.1:{flaky.server_port}", retries=0)
    with pytest.raises(StorageError, match="SlowDown"):
        store.put("k", b"segment", "video/mp2t")
    assert flaky.bodies == [b"segment"]
    store.close()


def test_client_settings() -> None:
    store = S3Store(BUCKET, endpoint_url="http://127.0.0.1:9", retries=3, timeout=2.5)
    config = store.client.meta.config
    # "retries" counts the attempts after the first, as botocore's max_attempts does.
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert (config.connect_timeout, config.read_timeout) == (2.5, 2.5)
    assert config.s3 == {"addressing_style": "path"}
    aws = S3Store(BUCKET, region_name="eu-west-3")  # AWS itself: its default addressing
    assert aws.client.meta.region_name == "eu-west-3"
    assert not (aws.client.meta.config.s3 or {}).get("addressing_style")
    store.close()
    aws.close()


@pytest.mark.parametrize(
    ("bucket", "prefix"),
    [("", ""), ("a", ""), ("bad/name", ""), ("ok-bucket", "a//b"), ("ok-bucket", "../x")],
)
def test_bad_bucket_or_prefix(bucket: str, prefix: str) -> None:
    with pytest.raises(ConfigError):
        S3Store(bucket, prefix)


def test_open_store_s3(
    server: S3Server, raw: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The endpoint is a setting: LIVEREC_S3_ENDPOINT_URL, or s3_endpoint_url in the TOML.
    settings = load_settings(env={"LIVEREC_S3_ENDPOINT_URL": server.endpoint_url})
    assert settings.s3_endpoint_url == server.endpoint_url
    toml = tmp_path / "liverec.toml"
    toml.write_text(f'[liverec]\ns3_endpoint_url = "{server.endpoint_url}"\n')
    assert load_settings(env={"LIVEREC_CONFIG": str(toml)}).s3_endpoint_url == server.endpoint_url
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    store = open_store(f"s3://{BUCKET}/from%20url/", endpoint_url=settings.s3_endpoint_url)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == (BUCKET, "from url/")
    assert store.client.meta.region_name == "eu-central-1"
    store.put("x", b"1", "x")
    assert raw.get_object(Bucket=BUCKET, Key="from url/x")["Body"].read() == b"1"
    store.close()

    monkeypatch.delenv("AWS_REGION")
    plain = open_store(f"s3://{BUCKET}", endpoint_url=server.endpoint_url)
    assert isinstance(plain, S3Store)
    assert plain.prefix == ""
    assert plain.client.meta.region_name == TEST_AWS_ENV["AWS_DEFAULT_REGION"]
    plain.close()


@pytest.mark.parametrize(
    "url",
    ["s3://", "s3:///prefix", "s3://user:pw@bucket/x", "s3://bucket/x?region=y", "s3://a/x"],
)
def test_open_store_refuses_bad_s3_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)
