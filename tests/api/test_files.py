"""File serving over HTTP: credentials and signed links, content types, byte ranges, HEAD,
and traversal attempts, on a local store and on a store without local paths (the way an
object store is served)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.types import Message

from api.conftest import (
    APP,
    BASE_URL,
    CUSTOMER,
    HOST,
    OTHER_APP,
    OTHER_CUSTOMER,
    OTHER_SECRET,
    SECRET,
    FakeClock,
    assert_error,
    basic,
    raw_request,
)
from liverec.api.auth import hmac_authorization
from liverec.api.context import ApiContext
from liverec.api.files import CHUNK, RangeNotSatisfiableError, parse_range, serve_blob
from liverec.api.signing import sign_url
from liverec.layout import project_root
from liverec.storage import LocalStore

FOLDER = "record/live/cam1/"
PLAYLIST = FOLDER + "sess_20261123120000000.m3u8"
SEGMENTS = [FOLDER + f"sess_20261123120000000_{i}.ts" for i in range(3)]
SNAPSHOT = FOLDER + "snap.jpg"
OUTSIDE_SECRET = b"outside-the-store: must never be served"
AUTH = basic(CUSTOMER, SECRET)


class PathlessStore(LocalStore):
    """A real store that hands out no file paths, as an object store does: the API must
    fall back to size() and get_range()."""

    def local_path(self, key: str) -> Path | None:
        return None


@pytest.fixture(params=["local", "pathless"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore:
    cls = LocalStore if request.param == "local" else PathlessStore
    return cls(tmp_path / "store")


@dataclass(frozen=True)
class Files:
    playlist: bytes
    segments: list[bytes]
    snapshot: bytes


@pytest.fixture
def files(store: LocalStore, tmp_path: Path) -> Files:
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n"
        + "".join(f"#EXTINF:4.000,\n{s.rsplit('/', 1)[1]}\n" for s in SEGMENTS)
        + "#EXT-X-ENDLIST\n"
    ).encode()
    segments = [bytes([0x47]) * 188 * 10, os.urandom(CHUNK * 2 + 12345), b"\x47" * 188]
    snapshot = b"\xff\xd8\xff\xe0" + os.urandom(1000) + b"\xff\xd9"
    for app in (APP, OTHER_APP, "s"):
        store.put(project_root("na", app) + PLAYLIST, playlist, "application/vnd.apple.mpegurl")
        for name, data in zip(SEGMENTS, segments, strict=True):
            store.put(project_root("na", app) + name, data, "video/mp2t")
        store.put(project_root("na", app) + SNAPSHOT, snapshot, "image/jpeg")
    store.put(project_root("eu", APP) + PLAYLIST, playlist, "application/vnd.apple.mpegurl")
    store.put(project_root("na", APP) + FOLDER + "notes.txt", b"text", "text/plain")
    (tmp_path / "outside.txt").write_bytes(OUTSIDE_SECRET)
    root = store.root / "na" / APP / "record" / "live" / "cam1"
    (root / ".liverec-tmp-0123").write_bytes(b"half a segment")
    os.symlink(tmp_path / "outside.txt", root / "link.ts")
    return Files(playlist, segments, snapshot)


def url(name: str, app: str = APP, region: str = "na") -> str:
    return f"/files/{app}/{region}/{name}"


# --- with credentials ------------------------------------------------------------------


async def test_each_kind_of_file_is_served_with_its_type(
    client: httpx.AsyncClient, files: Files
) -> None:
    cases = [
        (PLAYLIST, files.playlist, "application/vnd.apple.mpegurl", "no-cache"),
        (SEGMENTS[0], files.segments[0], "video/mp2t", "private, max-age=86400"),
        (SEGMENTS[1], files.segments[1], "video/mp2t", "private, max-age=86400"),
        (SNAPSHOT, files.snapshot, "image/jpeg", "private, max-age=86400"),
    ]
    for name, data, content_type, cache in cases:
        resp = await client.get(url(name), headers=AUTH)
        assert resp.status_code == 200, resp.text
        assert resp.content == data
        assert resp.headers["content-type"] == content_type
        assert resp.headers["content-length"] == str(len(data))
        assert resp.headers["accept-ranges"] == "bytes"
        assert resp.headers["cache-control"] == cache


async def test_hmac_credentials_serve_files_too(
    client: httpx.AsyncClient, clock: FakeClock, files: Files
) -> None:
    headers = hmac_authorization(CUSTOMER, SECRET, "GET", url(SNAPSHOT), HOST, clock.now)
    resp = await client.get(url(SNAPSHOT), headers=headers)
    assert resp.status_code == 200 and resp.content == files.snapshot


async def test_files_need_credentials(client: httpx.AsyncClient, files: Files) -> None:
    assert_error(await client.get(url(PLAYLIST)), 401)
    assert_error(await client.get(url(PLAYLIST), headers=basic(CUSTOMER, "wrong")), 401)
    head = await client.head(url(PLAYLIST))
    assert head.status_code == 401 and "www-authenticate" in head.headers


async def test_a_credential_reaches_only_its_projects_files(
    client: httpx.AsyncClient, files: Files
) -> None:
    assert_error(await client.get(url(PLAYLIST, OTHER_APP), headers=AUTH), 404, "not_found")
    assert_error(await client.get(url(PLAYLIST, "nosuchapp"), headers=AUTH), 404, "not_found")
    other = basic(OTHER_CUSTOMER, OTHER_SECRET)
    assert (await client.get(url(PLAYLIST, OTHER_APP), headers=other)).status_code == 200


async def test_an_app_named_s_is_not_taken_for_a_signed_link(
    client: httpx.AsyncClient, files: Files
) -> None:
    resp = await client.get(url(PLAYLIST, "s"), headers=AUTH)
    assert resp.status_code == 200 and resp.content == files.playlist


@pytest.mark.parametrize(
    "name",
    [
        FOLDER + "missing.ts",
        FOLDER + "notes.txt",  # not a kind of file the API hands out
        FOLDER + ".liverec-tmp-0123",  # a store's temporary file
        "record/live/nocam/x.m3u8",
        "record/live/cam1/sess_20261123120000000",
    ],
)
async def test_files_that_are_not_there_or_not_served_are_404(
    client: httpx.AsyncClient, files: Files, name: str
) -> None:
    assert_error(await client.get(url(name), headers=AUTH), 404, "not_found")


@pytest.mark.parametrize(
    "name", ["record/live/cam1", "record/live/cam1/", "live/cam1/x.ts", "record/a/b/c/d.ts"]
)
async def test_names_not_of_a_stream_folder_are_400(
    client: httpx.AsyncClient, files: Files, name: str
) -> None:
    assert_error(await client.get(url(name), headers=AUTH), 400, "invalid_file_name")


async def test_regions(client: httpx.AsyncClient, ctx: ApiContext, files: Files) -> None:
    # eu is not the region this node records into (ctx.region is na), but every FLS region
    # is served: the FLS routes take any region, so the links they hand out must work.
    assert ctx.region == "na"
    resp = await client.get(url(PLAYLIST, region="eu"), headers=AUTH)
    assert resp.status_code == 200 and resp.content == files.playlist
    assert_error(await client.get(url(SNAPSHOT, region="eu"), headers=AUTH), 404, "not_found")
    assert_error(await client.get(url(PLAYLIST, region="ap"), headers=AUTH), 404, "not_found")
    for region in ("xx", "NA", "north-america"):
        resp = await client.get(url(PLAYLIST, region=region), headers=AUTH)
        assert_error(resp, 400, "invalid_region")


# --- byte ranges and HEAD --------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-9", (0, 10)),
        ("bytes=10-", (10, None)),
        ("bytes=-5", (-5, None)),
        ("bytes=7-7", (7, 8)),
        ("BYTES=0-4", (0, 5)),
        ("bytes=0-99999999999", (0, None)),  # cut at the end
        ("bytes=-99999999", (0, None)),  # a suffix longer than the file: all of it
    ],
)
async def test_single_ranges_are_206(
    client: httpx.AsyncClient, files: Files, header: str, span: tuple[int, int | None]
) -> None:
    data = files.snapshot
    start = span[0] % len(data) if span[0] < 0 else span[0]
    end = len(data) if span[1] is None else span[1]
    resp = await client.get(url(SNAPSHOT), headers={**AUTH, "Range": header})
    assert resp.status_code == 206, resp.text
    assert resp.content == data[start:end]
    assert resp.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
    assert resp.headers["content-length"] == str(end - start)
    assert resp.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    "header", ["bytes=0-1,4-5", "bytes=x-y", "items=0-1", "bytes=9-3", "bytes=-", "bytes 0-1"]
)
async def test_ranges_that_may_be_ignored_send_the_whole_file(
    client: httpx.AsyncClient, files: Files, header: str
) -> None:
    resp = await client.get(url(SNAPSHOT), headers={**AUTH, "Range": header})
    assert resp.status_code == 200 and resp.content == files.snapshot
    assert "content-range" not in resp.headers


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{more}", "bytes=-0"])
async def test_unsatisfiable_ranges_are_416(
    client: httpx.AsyncClient, files: Files, header: str
) -> None:
    size = len(files.snapshot)
    resp = await client.get(
        url(SNAPSHOT), headers={**AUTH, "Range": header.format(size=size, more=size + 10)}
    )
    assert_error(resp, 416, "range_not_satisfiable")
    assert resp.headers["content-range"] == f"bytes */{size}"


async def test_a_range_across_read_chunks(client: httpx.AsyncClient, files: Files) -> None:
    data = files.segments[1]
    whole = await client.get(url(SEGMENTS[1]), headers=AUTH)
    assert whole.content == data
    start, end = CHUNK - 100, 2 * CHUNK + 100
    resp = await client.get(url(SEGMENTS[1]), headers={**AUTH, "Range": f"bytes={start}-{end}"})
    assert resp.status_code == 206 and resp.content == data[start : end + 1]


async def test_head_answers_like_get_without_a_body(
    client: httpx.AsyncClient, files: Files
) -> None:
    get = await client.get(url(SEGMENTS[1]), headers=AUTH)
    head = await client.head(url(SEGMENTS[1]), headers=AUTH)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-length", "content-type", "accept-ranges", "cache-control"):
        assert head.headers[name] == get.headers[name]
    ranged = await client.head(url(SEGMENTS[1]), headers={**AUTH, "Range": "bytes=0-99"})
    assert ranged.status_code == 206 and ranged.headers["content-length"] == "100"
    missing = await client.head(url(FOLDER + "missing.ts"), headers=AUTH)
    assert missing.status_code == 404


async def test_if_range_applies_the_range_only_to_the_same_version(
    client: httpx.AsyncClient, files: Files, store: LocalStore
) -> None:
    first = await client.get(url(SNAPSHOT), headers=AUTH)
    etag = first.headers.get("etag")
    stale = await client.get(
        url(SNAPSHOT), headers={**AUTH, "Range": "bytes=0-3", "If-Range": '"another"'}
    )
    assert stale.status_code == 200 and stale.content == files.snapshot
    if isinstance(store, PathlessStore):
        assert etag is None  # no validator: an If-Range never matches
        return
    assert etag is not None
    same = await client.get(url(SNAPSHOT), headers={**AUTH, "Range": "bytes=0-3", "If-Range": etag})
    assert same.status_code == 206 and same.content == files.snapshot[:4]


def test_parse_range_edges() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 1) == (0, 1)
    assert parse_range("bytes=-1", 1) == (0, 1)
    for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
        with pytest.raises(RangeNotSatisfiableError):
            parse_range(header, 0)  # an empty file has no bytes to range over
    assert parse_range("bytes=" + "9" * 40 + "-", 10) is None  # absurd numbers: ignored


# --- signed links -----------------------------------------------------------------------


async def test_a_signed_link_works_without_credentials(
    client: httpx.AsyncClient, ctx: ApiContext, files: Files
) -> None:
    path = sign_url(ctx, APP, "na", PLAYLIST)
    resp = await client.get(path)
    assert resp.status_code == 200 and resp.content == files.playlist
    assert resp.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert resp.headers["access-control-allow-origin"] == "*"
    head = await client.head(path)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(files.playlist))


async def test_segments_resolved_relative_to_a_signed_playlist_work(
    client: httpx.AsyncClient, ctx: ApiContext, files: Files
) -> None:
    playlist_url = urljoin(BASE_URL, sign_url(ctx, APP, "na", PLAYLIST))
    text = (await client.get(playlist_url)).text
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(uris) == 3
    for uri, data in zip(uris, files.segments, strict=True):
        resp = await client.get(urljoin(playlist_url, uri))
        assert resp.status_code == 200 and resp.content == data
    ranged = await client.get(urljoin(playlist_url, uris[1]), headers={"Range": "bytes=-10"})
    assert ranged.status_code == 206 and ranged.content == files.segments[1][-10:]


async def test_an_expired_link_is_refused(
    client: httpx.AsyncClient, ctx: ApiContext, clock: FakeClock, files: Files
) -> None:
    path = sign_url(ctx, APP, "na", PLAYLIST, ttl=30)
    assert (await client.get(path)).status_code == 200
    clock.advance(31)
    assert_error(await client.get(path), 401, "expired")


async def test_a_tampered_link_is_refused(
    client: httpx.AsyncClient, ctx: ApiContext, files: Files
) -> None:
    path = sign_url(ctx, APP, "na", PLAYLIST)
    _, _, _, expires, sig, tail = path.split("/", 5)
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    variants = [
        f"/files/s/{expires}/{flipped}/{tail}",  # the signature
        f"/files/s/{int(expires) + 3600}/{sig}/{tail}",  # a longer life
        f"/files/s/{expires}/{sig}/{tail.replace('/cam1/', '/cam2/')}",  # another stream
        f"/files/s/{expires}/{sig}/{tail.replace(APP, OTHER_APP, 1)}",  # another project
    ]
    for variant in variants:
        assert_error(await client.get(variant), 401, "bad_signature")
    # A link never stands in for credentials on the plain route.
    assert_error(await client.get(url(PLAYLIST) + f"?sig={sig}"), 401)


async def test_a_signed_link_for_another_region_is_served_here_too(
    client: httpx.AsyncClient, ctx: ApiContext, files: Files
) -> None:
    resp = await client.get(sign_url(ctx, APP, "eu", PLAYLIST))
    assert resp.status_code == 200 and resp.content == files.playlist
    assert_error(await client.get(sign_url(ctx, APP, "cn", PLAYLIST)), 404, "not_found")
    # The signature covers the region: an eu link does not open the na folder.
    expires, sig, tail = sign_url(ctx, APP, "eu", PLAYLIST).split("/", 5)[3:]
    other = f"/files/s/{expires}/{sig}/{tail.replace('/eu/', '/na/', 1)}"
    assert_error(await client.get(other), 401, "bad_signature")


# --- traversal -------------------------------------------------------------------------


TRAVERSALS = [
    b"/files/app1/na/record/live/cam1/../../../../outside.txt",
    b"/files/app1/na/record/live/cam1/%2e%2e/%2e%2e/%2e%2e/%2e%2e/outside.txt",
    b"/files/app1/na/record/live/cam1/..%2F..%2F..%2F..%2Foutside.txt",
    b"/files/app1/na/record/live/cam1/..%5C..%5C..%5C..%5Coutside.txt",
    b"/files/app1/na/record\\live\\cam1\\..\\..\\outside.txt",
    b"/files/app1/na//etc/passwd",
    b"/files/app1/na/%2Fetc%2Fpasswd",
    b"/files/app1/na/record/live/cam1/link.ts",  # a symlink out of the store
    b"/files/app1/na/record/live/cam1/%00.ts",
    b"/files/..%2F..%2F/na/record/live/cam1/x.ts",
    b"/files/app1/..%2F..%2F/record/live/cam1/x.ts",
]


@pytest.mark.parametrize("raw_path", TRAVERSALS)
async def test_traversal_never_leaves_the_store(
    app: FastAPI, files: Files, raw_path: bytes
) -> None:
    resp = await raw_request(app, raw_path, AUTH)
    assert resp.status in (400, 404), (resp.status, resp.body)
    assert OUTSIDE_SECRET not in resp.body
    body = resp.json()
    assert list(body) == ["message", "reason"]


@pytest.mark.parametrize("raw_path", TRAVERSALS)
async def test_traversal_through_a_signed_prefix_never_leaves_the_store(
    app: FastAPI, ctx: ApiContext, files: Files, raw_path: bytes
) -> None:
    # Sign the folder the attempt starts from, so only the traversal can stop it.
    _, _, _, expires, sig, _ = sign_url(ctx, APP, "na", PLAYLIST).split("/", 5)
    signed = raw_path.replace(b"/files/", f"/files/s/{expires}/{sig}/".encode(), 1)
    resp = await raw_request(app, signed)
    assert resp.status in (400, 401, 404), (resp.status, resp.body)
    assert OUTSIDE_SECRET not in resp.body


async def test_a_signed_link_to_a_name_that_needs_quoting(
    client: httpx.AsyncClient, ctx: ApiContext, store: LocalStore
) -> None:
    name = FOLDER + "my clip #1 %41é.jpg"
    store.put(project_root("na", APP) + name, b"\xff\xd8 jpeg", "image/jpeg")
    resp = await client.get(sign_url(ctx, APP, "na", name))
    assert resp.status_code == 200 and resp.content == b"\xff\xd8 jpeg"


async def test_a_playlist_replaced_while_it_is_sent_is_sent_whole(
    store: LocalStore, files: Files
) -> None:
    """The file is opened before the answer starts: a live playlist rewritten meanwhile
    (an atomic rename) is sent as it was, with the length announced."""
    key = project_root("na", APP) + PLAYLIST
    scope: dict[str, object] = {"type": "http", "method": "GET", "headers": [], "path": "/"}
    response = await serve_blob(Request(scope), store, key, "application/vnd.apple.mpegurl")
    store.put(key, files.playlist + b"#EXTINF:4.000,\nmore.ts\n" * 50, "x")
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"} if sent else {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await response(
        {"type": "http", "method": "GET", "asgi": {"spec_version": "2.4"}}, receive, send
    )
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = dict(sent[0]["headers"])
    assert body == files.playlist
    assert headers[b"content-length"] == str(len(files.playlist)).encode()
