"""Time-shift playlists (api/play.py) in-process on create_app, a real catalog and store:
VOD across recordings, EVENT growing and ending, credentials, signed links and their
lifetime, bad input; CORS on errors and preflights of /files and /play; /docs served from
the package."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from api.conftest import (
    APP,
    CUSTOMER,
    OTHER_CUSTOMER,
    OTHER_SECRET,
    SECRET,
    T0,
    FakeClock,
    assert_error,
    basic,
    client_for,
)
from liverec.api.app import create_app
from liverec.api.context import ApiContext
from liverec.catalog import Catalog
from liverec.config import load_settings, parse_cors_origins
from liverec.errors import ConfigError
from liverec.layout import StreamRef
from liverec.media import m3u8
from liverec.media.m3u8 import format_time
from liverec.storage import LocalStore

AUTH = basic(CUSTOMER, SECRET)
STREAM = StreamRef(APP, "na", "live", "cam1")
PLAY = f"/play/{APP}/na/live/cam1.m3u8"
ORIGIN = "https://player.example"


def record(
    catalog: Catalog,
    store: LocalStore,
    session: str,
    start: datetime,
    durations: list[float],
    *,
    close: bool = True,
) -> int:
    """A recording of cam1 with segments of these durations back to back, each segment's
    bytes in the store."""
    path = STREAM.recording(session, start)
    rec = catalog.create_recording(
        STREAM,
        session_id=session,
        playlist_key=path.playlist,
        start_time=start,
        node_id="n1",
        lease_seconds=30,
    )
    t = start
    for seq, duration in enumerate(durations):
        add(catalog, store, rec.id, session, start, seq, t, duration)
        t += timedelta(seconds=duration)
    if close:
        catalog.close_recording(rec.id)
    return rec.id


def add(
    catalog: Catalog,
    store: LocalStore,
    rec_id: int,
    session: str,
    rec_start: datetime,
    seq: int,
    t: datetime,
    duration: float,
    discontinuity: bool = False,
) -> None:
    name = STREAM.recording(session, rec_start).segment(seq)
    store.put(STREAM.key(name), f"segment {session} {seq}".encode(), "video/mp2t")
    catalog.add_segment(
        rec_id,
        seq=seq,
        key=name,
        start_time=t,
        duration=duration,
        size=16,
        discontinuity=discontinuity,
    )


@pytest.fixture
async def client(ctx: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(ctx)) as c:
        yield c


@pytest.fixture
def two_recordings(catalog: Catalog, store: LocalStore, clock: FakeClock) -> None:
    """12:00:00-12:00:12 (4 s x 3), a 20 s gap, 12:00:32-12:00:40 (4 s x 2)."""
    record(catalog, store, "a", T0, [4.0, 4.0, 4.0])
    record(catalog, store, "b", T0 + timedelta(seconds=32), [4.0, 4.0])
    clock.advance(3600)


def q(start: datetime, end: datetime | None = None) -> dict[str, str]:
    params = {"start": format_time(start)}
    if end is not None:
        params["end"] = format_time(end)
    return params


async def test_vod_across_two_recordings_with_a_gap(
    client: httpx.AsyncClient, two_recordings: None, clock: FakeClock
) -> None:
    span = q(T0 + timedelta(seconds=5), T0 + timedelta(seconds=35))
    resp = await client.get(PLAY, params=span, headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == m3u8.PLAYLIST_TYPE
    text = resp.text
    pl = m3u8.parse(text)
    assert pl.playlist_type == "VOD" and pl.endlist and pl.media_sequence == 0
    assert pl.target_duration == 4
    names = [s.uri.rsplit("/", 1)[1] for s in pl.segments]
    assert names == [
        "a_20261123120000000_1.ts",
        "a_20261123120000000_2.ts",
        "b_20261123120032000_0.ts",
    ]
    assert [s.discontinuity for s in pl.segments] == [False, False, True]
    # The time is written where it does not follow from the previous entry.
    assert [s.program_date_time for s in pl.segments] == [
        T0 + timedelta(seconds=4),
        None,
        T0 + timedelta(seconds=32),
    ]
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    # Every URI is an absolute signed /files link that serves the segment.
    for seg, name in zip(pl.segments, names, strict=True):
        assert seg.uri.startswith("http://testserver/files/s/")
        got = await client.get(seg.uri)
        assert got.status_code == 200
        assert got.content == f"segment {name[0]} {name.rsplit('_', 1)[1][:-3]}".encode()


async def test_vod_segment_links_last_the_lifetime_plus_the_range(
    ctx: ApiContext, two_recordings: None, clock: FakeClock
) -> None:
    async with client_for(create_app(replace(ctx, url_ttl=120.0))) as client:
        span = (T0, T0 + timedelta(seconds=40))
        vod = m3u8.parse((await client.get(PLAY, params=q(*span), headers=AUTH)).text)
        event = m3u8.parse((await client.get(PLAY, params=q(T0), headers=AUTH)).text)
        now = int(clock().timestamp())
        assert {_expiry(s.uri) for s in vod.segments} == {now + 120 + 40}
        assert {_expiry(s.uri) for s in event.segments} == {now + 120}
        uri = event.segments[0].uri
        clock.advance(121)
        assert_error(await client.get(uri), 401, "expired")
        # Refreshing the playlist signs its links afresh.
        fresh = m3u8.parse((await client.get(PLAY, params=q(T0), headers=AUTH)).text)
        assert (await client.get(fresh.segments[0].uri)).status_code == 200


def _expiry(uri: str) -> int:
    match = re.search(r"/files/s/(\d+)/", uri)
    assert match is not None, uri
    return int(match.group(1))


async def test_event_grows_while_live_and_ends(
    client: httpx.AsyncClient, catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    catalog.create_entry_point(APP, "live")  # its 4 s segments: EXT-X-TARGETDURATION 12
    rec = record(catalog, store, "live1", T0, [4.0, 4.0], close=False)
    assert catalog.try_acquire_live(STREAM, "n1", 30)
    clock.advance(9)
    params = q(T0 + timedelta(seconds=1))
    first = await client.get(PLAY, params=params, headers=AUTH)
    assert first.status_code == 200, first.text
    pl1 = m3u8.parse(first.text)
    assert pl1.playlist_type == "EVENT" and not pl1.endlist
    assert pl1.target_duration == 12  # the recorder's bound for 4 s segments
    assert len(pl1.segments) == 2
    add(catalog, store, rec, "live1", T0, 2, T0 + timedelta(seconds=8), 4.0)
    clock.advance(4)
    pl2 = m3u8.parse((await client.get(PLAY, params=params, headers=AUTH)).text)
    assert not pl2.endlist and len(pl2.segments) == 3
    assert pl2.media_sequence == pl1.media_sequence == 0
    assert pl2.target_duration == pl1.target_duration
    assert [s.uri.rsplit("/", 1)[1] for s in pl2.segments[:2]] == [
        s.uri.rsplit("/", 1)[1] for s in pl1.segments
    ]
    # The publish ends: ENDLIST, the same entries.
    catalog.close_recording(rec)
    catalog.release_live(STREAM, "n1")
    pl3 = m3u8.parse((await client.get(PLAY, params=params, headers=AUTH)).text)
    assert pl3.endlist and pl3.playlist_type == "EVENT" and len(pl3.segments) == 3


async def test_cached_entries_follow_retention_and_new_recordings(
    client: httpx.AsyncClient, ctx: ApiContext, catalog: Catalog, two_recordings: None
) -> None:
    """The app's entry cache (playback/cache.py): the closed recordings are kept after the
    first answer; a trim of one's head shows at once, as does a recording added since."""
    span = q(T0, T0 + timedelta(seconds=60))
    first = m3u8.parse((await client.get(PLAY, params=span, headers=AUTH)).text)
    assert len(first.segments) == 5 and len(ctx.play_cache) == 2
    (rec_a,) = [r.id for r in catalog.recordings_overlapping(STREAM, T0, T0) if r.session_id == "a"]
    catalog.trim_recording(rec_a, cutoff=T0 + timedelta(seconds=4), now=T0 + timedelta(hours=2))
    record(catalog, store_of(ctx), "c", T0 + timedelta(seconds=50), [4.0])
    pl = m3u8.parse((await client.get(PLAY, params=span, headers=AUTH)).text)
    assert [s.uri.rsplit("/", 1)[1] for s in pl.segments] == [
        "a_20261123120000000_1.ts",
        "a_20261123120000000_2.ts",
        "b_20261123120032000_0.ts",
        "b_20261123120032000_1.ts",
        "c_20261123120050000_0.ts",
    ]
    assert pl.segments[0].program_date_time == T0 + timedelta(seconds=4)


def store_of(ctx: ApiContext) -> LocalStore:
    assert isinstance(ctx.store, LocalStore)
    return ctx.store


async def test_event_of_a_live_stream_with_nothing_yet_is_empty_not_404(
    client: httpx.AsyncClient, catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    assert catalog.try_acquire_live(STREAM, "n1", 30)
    resp = await client.get(PLAY, params=q(T0), headers=AUTH)
    assert resp.status_code == 200
    pl = m3u8.parse(resp.text)
    assert pl.segments == [] and not pl.endlist


async def test_credentials_signed_links_and_refusals(
    client: httpx.AsyncClient, two_recordings: None, clock: FakeClock
) -> None:
    params = q(T0, T0 + timedelta(seconds=40))
    assert_error(await client.get(PLAY, params=params), 401, "unauthorized")
    wrong = basic(CUSTOMER, "wrong")
    assert_error(await client.get(PLAY, params=params, headers=wrong), 401)
    # A credential not granted the project: as if it did not exist.
    other = basic(OTHER_CUSTOMER, OTHER_SECRET)
    assert_error(await client.get(PLAY, params=params, headers=other), 404, "not_found")
    assert (await client.get(PLAY, params=params, headers=AUTH)).status_code == 200
    head = await client.head(PLAY, params=params, headers=AUTH)
    assert head.status_code == 200 and head.content == b""

    link = await client.get(f"/play/{APP}/na/live/cam1/link", params=params, headers=AUTH)
    assert link.status_code == 200, link.text
    body = link.json()
    url = body["url"]
    assert url.startswith("http://testserver/play/s/") and "/na/live/cam1.m3u8?" in url
    assert parse_qs(urlsplit(url).query) == {k: [v] for k, v in params.items()}
    assert body["expiresAt"] == format_time(clock() + timedelta(seconds=3600))
    signed = await client.get(url)  # no credentials
    assert signed.status_code == 200
    assert m3u8.parse(signed.text).endlist
    # The signature is the stream's: another stream, or a changed signature, is refused.
    assert_error(await client.get(url.replace("/cam1.m3u8", "/cam2.m3u8")), 401, "bad_signature")
    assert_error(await client.get(re.sub(r"/s/(\d+)/", r"/s/\g<1>9/", url)), 401)
    # An EVENT link lives longer than link_lifetime: its playlist is reloaded for hours.
    event = await client.get(f"/play/{APP}/na/live/cam1/link", params=q(T0), headers=AUTH)
    assert event.json()["expiresAt"] == format_time(clock() + timedelta(hours=24))
    clock.advance(3601)
    assert_error(await client.get(url), 401, "expired")
    assert (await client.get(event.json()["url"])).status_code == 200


@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        ({}, 400, None),
        ({"start": "yesterday"}, 400, "invalid_time"),
        ({"start": "2026-11-23T12:00:00"}, 400, "invalid_time"),  # no offset
        ({"start": "2026-11-23T12:00:10Z", "end": "2026-11-23T12:00:00Z"}, 400, "invalid_time"),
        ({"start": "2026-11-23T12:00:00Z", "end": "2026-12-01T12:00:00Z"}, 400, "range_too_long"),
        ({"start": "2026-11-23T14:00:00Z"}, 400, "invalid_time"),  # in the future
        ({"start": "2026-11-23T12:00:00Z", "end": "2026-11-23T14:00:00Z"}, 400, "invalid_time"),
        ({"start": "2026-11-23T11:00:00Z", "end": "2026-11-23T11:30:00Z"}, 404, "not_found"),
        ({"start": "2026-11-16T11:00:00Z"}, 400, "range_too_long"),
    ],
)
async def test_bad_input(
    client: httpx.AsyncClient,
    two_recordings: None,
    params: dict[str, str],
    status: int,
    reason: str | None,
) -> None:
    assert_error(await client.get(PLAY, params=params, headers=AUTH), status, reason)
    link = f"/play/{APP}/na/live/cam1/link"
    if status == 400:
        assert_error(await client.get(link, params=params, headers=AUTH), status, reason)


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        (f"/play/{APP}/xx/live/cam1.m3u8", 400, "invalid_region"),
        (f"/play/{APP}/na/li%20ve/cam1.m3u8", 400, "invalid_parameter"),
        (f"/play/{APP}/na/live/cam%01.m3u8", 400, "invalid_stream_name"),
        (f"/play/{APP}/na/live/nosuch.m3u8", 404, "not_found"),
        (f"/play/{APP}/na/nosuch/cam1.m3u8", 404, "not_found"),
        ("/play/nosuchapp/na/live/cam1.m3u8", 404, "not_found"),
    ],
)
async def test_bad_streams(
    client: httpx.AsyncClient, two_recordings: None, path: str, status: int, reason: str
) -> None:
    params = q(T0, T0 + timedelta(seconds=10))
    assert_error(await client.get(path, params=params, headers=AUTH), status, reason)
    event = await client.get(path, params=q(T0), headers=AUTH)
    assert_error(event, status, reason)


async def test_cors_on_errors_and_preflights(
    client: httpx.AsyncClient, two_recordings: None, clock: FakeClock
) -> None:
    origin = {"Origin": ORIGIN}
    link = await client.get(
        f"/play/{APP}/na/live/cam1/link", params=q(T0, T0 + timedelta(seconds=40)), headers=AUTH
    )
    url = link.json()["url"]
    segment = m3u8.parse((await client.get(url)).text).segments[0].uri
    missing = re.sub(r"[^/]+\.ts$", "a_20261123120000000_99.ts", segment)
    for resp in (
        await client.get(missing, headers=origin),  # 404 of a signed link
        await client.get(re.sub(r"/s/(\d+)/", r"/s/\g<1>9/", segment), headers=origin),  # 401
        await client.get(url.replace("cam1.m3u8", "cam2.m3u8"), headers=origin),
        await client.get(PLAY, params=q(T0), headers=origin),  # 401 without credentials
        await client.get(segment, headers=origin),
        await client.get(url, headers=origin),
    ):
        assert resp.headers["access-control-allow-origin"] == "*", (resp.status_code, resp.url)
        assert "access-control-allow-credentials" not in resp.headers
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range",
    }
    for target in (segment, url, f"http://testserver{PLAY}", f"/files/{APP}/na/record/live/x.ts"):
        resp = await client.options(target, headers=preflight)
        assert resp.status_code == 204, (target, resp.status_code, resp.text)
        assert resp.headers["access-control-allow-origin"] == "*"
        assert "GET" in resp.headers["access-control-allow-methods"]
        assert "Range" in resp.headers["access-control-allow-headers"]
    clock.advance(7200)
    expired = await client.get(segment, headers=origin)
    assert_error(expired, 401, "expired")
    assert expired.headers["access-control-allow-origin"] == "*"


async def test_cors_with_a_list_of_origins(ctx: ApiContext, two_recordings: None) -> None:
    app = create_app(replace(ctx, cors_origins=(ORIGIN, "http://localhost:3000")))
    async with client_for(app) as client:
        params = q(T0, T0 + timedelta(seconds=40))
        ok = await client.get(PLAY, params=params, headers={**AUTH, "Origin": ORIGIN})
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert ok.headers["access-control-allow-credentials"] == "true"
        assert "Origin" in ok.headers["vary"]
        refused = await client.get(PLAY, params=params, headers={"Origin": "https://evil.example"})
        assert refused.status_code == 401
        assert "access-control-allow-origin" not in refused.headers
        pre = await client.options(
            PLAY, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
        )
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == ORIGIN
        assert pre.headers["access-control-allow-credentials"] == "true"


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


async def test_docs_are_served_from_the_package(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    parser = _Refs()
    parser.feed(page.text)
    assert len(parser.refs) >= 3, parser.refs
    for ref in parser.refs:
        url = urljoin("http://testserver/docs", ref)
        assert urlsplit(url).netloc == "testserver", ref
        asset = await client.get(url)
        assert asset.status_code == 200, ref
        assert len(asset.content) > 500
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    schema_url = re.search(r"url: '([^']+)'", page.text)
    assert schema_url is not None and schema_url.group(1) == "/openapi.json"
    schema = (await client.get("/openapi.json")).json()
    assert set(schema["components"]["securitySchemes"]) == {"basic", "hmac"}
    play = schema["paths"]["/play/{appid}/{region}/{ep}/{stream}.m3u8"]["get"]
    assert play["x-liverec-extension"] is True and "liverec extension" in play["description"]
    signed = schema["paths"]["/play/s/{expires}/{sig}/{appid}/{region}/{ep}/{stream}.m3u8"]
    assert signed["get"]["security"] == []


def test_link_lifetime_and_cors_origins_settings_are_checked() -> None:
    for env in (
        {"LIVEREC_LINK_LIFETIME": "0"},
        {"LIVEREC_LINK_LIFETIME": "700000"},
        {"LIVEREC_CORS_ORIGINS": "https://a.example/path"},
        {"LIVEREC_CORS_ORIGINS": "ftp://a.example"},
    ):
        with pytest.raises(ConfigError):
            load_settings(env=env)
    assert load_settings(env={}).link_lifetime == 3600.0
    assert load_settings(env={"LIVEREC_LINK_LIFETIME": "90"}).link_lifetime == 90.0
    assert parse_cors_origins("*") == ("*",)
    origins = load_settings(env={"LIVEREC_CORS_ORIGINS": "https://A.example:8443 , http://b"})
    assert parse_cors_origins(origins.cors_origins) == ("https://a.example:8443", "http://b")
