"""End to end: time-shift playlists (/play) of a real `liverec serve` on real pushes, played
by PyAV (ffmpeg's HLS demuxer) and the ffmpeg CLI from the playlist URL alone."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from liverec.media import m3u8
from support.api import Frame, client, frame_times, z
from support.mediagen import make_media, read_frame_number
from support.recordings import Recorded, finished
from support.server import APP_ID, FFMPEG, LiverecProcess, push, start_push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(tmp_path_factory.mktemp("data")).start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def http(srv: LiverecProcess) -> Iterator[httpx.Client]:
    with client(srv) as c:
        yield c


@pytest.fixture(scope="module")
def recs(srv: LiverecProcess, tmp_path_factory: pytest.TempPathFactory) -> list[Recorded]:
    """Two recordings of `cam` with a gap between them: frames 0-149, then 1000-1149."""
    d = tmp_path_factory.mktemp("media")
    first = make_media(d / "a.flv", 6, fps=FPS, gop=25)
    second = make_media(d / "b.flv", 6, fps=FPS, gop=25, start_number=1000)
    assert push(srv.url(stream="cam"), first).returncode == 0
    finished(srv.stream_dir("cam"), 1)
    time.sleep(2)  # a gap
    assert push(srv.url(stream="cam"), second).returncode == 0
    return finished(srv.stream_dir("cam"), 2)


def play_path(stream: str) -> str:
    return f"/play/{APP_ID}/na/live/{stream}.m3u8"


def signed_url(http: httpx.Client, stream: str, params: dict[str, str]) -> str:
    resp = http.get(f"/play/{APP_ID}/na/live/{stream}/link", params=params)
    assert resp.status_code == 200, resp.text
    url = resp.json()["url"]
    assert isinstance(url, str)
    return url


def decoded(url: str) -> list[int]:
    """Frame numbers PyAV decodes from the playlist at `url` (no credentials)."""
    options = {"protocol_whitelist": "http,https,tcp,tls,crypto"}
    container: Any = av.open(url, options=options, format="hls")
    with container:
        return [read_frame_number(frame) for frame in container.decode(video=0)]


def test_vod_across_two_recordings(
    http: httpx.Client, srv: LiverecProcess, recs: list[Recorded]
) -> None:
    frames: list[list[Frame]] = [frame_times(r) for r in recs]
    start = frames[0][30].wall
    end = frames[1][100].wall
    params = {"start": z(start), "end": z(end)}
    resp = http.get(play_path("cam"), params=params)
    assert resp.status_code == 200, resp.text
    pl = m3u8.parse(resp.text)
    assert pl.playlist_type == "VOD" and pl.endlist
    assert [s.discontinuity for s in pl.segments].count(True) == 1
    cross = next(i for i, s in enumerate(pl.segments) if s.discontinuity)
    assert pl.segments[0].program_date_time is not None
    assert pl.segments[cross].program_date_time == recs[1].start
    # The times match the recordings' own playlists, segment for segment.
    own = {s.uri: s.program_date_time for r in recs for s in r.playlist.segments}
    t = pl.segments[0].program_date_time
    for seg in pl.segments:
        t = seg.program_date_time or t
        assert own[seg.uri.rsplit("/", 1)[1]] == t
        t += timedelta(seconds=seg.duration)
    # Played from the URL alone: the pushed frames of the segments holding the range.
    url = signed_url(http, "cam", params)
    got = decoded(url)
    first, last = got[0], got[-1]
    assert first <= 30 < 150 and 1100 <= last < 1150
    assert got == list(range(first, 150)) + list(range(1000, last + 1))
    played = subprocess.run(
        [FFMPEG, "-v", "error", "-i", url, "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert played.returncode == 0, played.stderr
    # Without credentials: refused; the signed link works without them.
    assert (
        httpx.get(f"http://127.0.0.1:{srv.http_port}{play_path('cam')}", params=params).status_code
        == 401
    )
    assert httpx.get(url).status_code == 200


def test_event_grows_while_live_then_ends(
    http: httpx.Client, srv: LiverecProcess, tmp_path: Path
) -> None:
    media = make_media(tmp_path / "live.flv", 14, fps=FPS, gop=25)
    started = datetime.now(UTC) - timedelta(seconds=1)
    pusher = start_push(srv.url(stream="ev"), media)
    try:
        params = {"start": z(started)}
        url = signed_url(http, "ev", params)
        seen: list[m3u8.MediaPlaylist] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            resp = httpx.get(url)
            if resp.status_code == 200:
                pl = m3u8.parse(resp.text)
                grew = not seen or len(pl.segments) > len(seen[-1].segments)
                # The last refresh may add only ENDLIST to what the previous one had.
                if pl.segments and (grew or pl.endlist != seen[-1].endlist):
                    seen.append(pl)
                if pl.endlist:
                    break
            time.sleep(0.5)
        assert pusher.wait(timeout=60) == 0
    finally:
        if pusher.poll() is None:
            pusher.kill()
            pusher.wait()
    assert len(seen) >= 3, [len(p.segments) for p in seen]
    live = [p for p in seen if not p.endlist]
    assert len(live) >= 2, "the playlist grew while the push was live, without ENDLIST"
    for p in seen:
        assert p.playlist_type == "EVENT" and p.media_sequence == 0
        assert p.target_duration == seen[0].target_duration
        names = [s.uri.rsplit("/", 1)[1] for s in p.segments]
        assert names[: len(live[0].segments)] == [s.uri.rsplit("/", 1)[1] for s in live[0].segments]
    assert seen[-1].endlist
    got = decoded(url)
    assert got == list(range(14 * FPS))


def test_link_lifetime_and_cors_origins_settings(tmp_path: Path) -> None:
    env = {
        "LIVEREC_LINK_LIFETIME": "30",
        "LIVEREC_CORS_ORIGINS": "https://player.example, http://localhost:3000",
    }
    proc = LiverecProcess(tmp_path / "data", env=env).start()
    try:
        with client(proc) as http:
            now = datetime.now(UTC)
            params = {"start": z(now - timedelta(minutes=5)), "end": z(now - timedelta(minutes=1))}
            resp = http.get(
                f"/play/{APP_ID}/na/live/cam/link",
                params=params,
                headers={"Origin": "https://player.example"},
            )
            assert resp.status_code == 200, resp.text
            expires = m3u8.parse_time(resp.json()["expiresAt"])
            assert timedelta(seconds=28) <= expires - now <= timedelta(seconds=33)
            assert resp.headers["access-control-allow-origin"] == "https://player.example"
            assert resp.headers["access-control-allow-credentials"] == "true"
            other = http.get(
                f"/play/{APP_ID}/na/live/cam/link",
                params=params,
                headers={"Origin": "https://elsewhere.example"},
            )
            assert "access-control-allow-origin" not in other.headers
    finally:
        proc.terminate()
