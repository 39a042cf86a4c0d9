"""End to end: real ffmpeg pushes into a real `liverec serve`, recordings decoded back."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support.mediagen import make_media
from support.recordings import finished, liverec_cli, recordings
from support.rtmpclient import RtmpPublisher, publish_file
from support.server import FFMPEG, LiverecProcess, push, start_push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    out = {
        "av6": make_media(d / "av6.flv", 6, fps=FPS, gop=25),
        "av9": make_media(d / "av9.flv", 9, fps=FPS, gop=25),
        "audio": make_media(d / "audio.flv", 5, video=False),
        "video": make_media(d / "video.flv", 5, fps=FPS, gop=25, audio=False),
        "av3": make_media(d / "av3.flv", 3, fps=FPS, gop=25),
    }
    # Codecs liverec refuses: Sorenson (FLV1) video, MP3 audio.
    for name, args in (
        ("flv1", ["-c:v", "flv", "-c:a", "copy"]),
        ("mp3", ["-c:v", "copy", "-c:a", "libmp3lame"]),
    ):
        path = d / f"{name}.flv"
        subprocess.run(
            [FFMPEG, "-loglevel", "error", "-i", str(out["av3"]), *args, str(path)],
            check=True,
            timeout=60,
        )
        out[name] = path
    return out


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    data = tmp_path_factory.mktemp("data")
    proc = LiverecProcess(data, env={"LIVEREC_RTMP_IDLE_TIMEOUT": "2"}).start()
    liverec_cli(
        data, "entry-points", "add", "short", "--target-duration", "1", "--max-file-duration", "3"
    )
    liverec_cli(data, "entry-points", "add", "secure", "--auth-key", "k3y")
    yield proc
    proc.terminate()


def run_parallel(*jobs: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int, job: Callable[[], Any]) -> None:
        try:
            results[i] = job()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    if errors:
        raise errors[0]
    return results


def test_push_is_recorded_frame_for_frame(srv: LiverecProcess, media: dict[str, Path]) -> None:
    before = datetime.now(UTC)
    result = push(srv.url(stream="cam1"), media["av6"])
    assert result.returncode == 0, result.stderr
    [rec] = finished(srv.stream_dir("cam1"))
    # FLS naming: {sessionid}_{sessiondate}.m3u8, sessiondate UTC yyyyMMddHHmmssSSS.
    session_id, _, session_date = rec.path.stem.partition("_")
    assert session_id and len(session_date) == 17 and session_date.isdigit()
    assert datetime.strptime(session_date[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC) == (
        rec.start.replace(microsecond=0)
    )
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in rec.text and rec.text.rstrip().endswith("#EXT-X-ENDLIST")
    assert rec.text.count("#EXT-X-PROGRAM-DATE-TIME") == len(rec.playlist.segments) >= 2
    assert rec.frames() == list(range(6 * FPS))
    assert rec.duration == pytest.approx(6.0, abs=0.1)
    assert rec.audio_seconds() == pytest.approx(6.0, abs=0.15)
    # Anchored at the first media packet: after we started pushing, within a second.
    assert before <= rec.start <= before + timedelta(seconds=1.5)
    for seg in rec.playlist.segments[:-1]:
        assert seg.duration == pytest.approx(4.0, abs=0.05)  # cut at keyframes, 4 s default
    for a, b in zip(rec.playlist.segments, rec.playlist.segments[1:], strict=False):
        assert a.program_date_time is not None and b.program_date_time is not None
        gap = (b.program_date_time - a.program_date_time).total_seconds()
        assert gap == pytest.approx(a.duration, abs=0.002)


def test_fast_pushes_keep_their_last_frames(
    srv: LiverecProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Pushed faster than the server reads (as a busy server is behind real-time pushes),
    the end of a push still arrives: ffmpeg closes right after its last write, and an
    acknowledgement it had not read turned that close into a reset that threw away the
    media in flight (pushes at N = 200 lost their last seconds; here, most of these did)."""
    d = tmp_path_factory.mktemp("fast")
    fast = make_media(
        d / "fast.flv", 20, fps=FPS, gop=50, width=1280, height=720, bitrate=3_000_000
    )
    names = [f"fast{i}" for i in range(3)]
    results = run_parallel(
        *[lambda n=n: push(srv.url(stream=n), fast, realtime=False) for n in names]
    )
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    for name in names:
        recs = finished(srv.stream_dir(name))
        assert [n for rec in recs for n in rec.frames()] == list(range(20 * FPS)), name


def test_streams_at_once_audio_only_video_only(srv: LiverecProcess, media: dict[str, Path]) -> None:
    results = run_parallel(
        lambda: push(srv.url(stream="both"), media["av6"]),
        lambda: push(srv.url(stream="aonly"), media["audio"]),
        lambda: push(srv.url(stream="vonly"), media["video"]),
    )
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    [both] = finished(srv.stream_dir("both"))
    assert both.frames() == list(range(6 * FPS))
    [aonly] = finished(srv.stream_dir("aonly"))
    assert aonly.audio_seconds() == pytest.approx(5.0, abs=0.15)
    assert aonly.video_streams() == 0
    [vonly] = finished(srv.stream_dir("vonly"))
    assert vonly.frames() == list(range(5 * FPS))


def test_live_playlist_is_an_event_playlist(srv: LiverecProcess, media: dict[str, Path]) -> None:
    proc = start_push(srv.url(stream="live1"), media["av9"])
    try:
        folder = srv.stream_dir("live1")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not list(folder.glob("*.m3u8")):
            time.sleep(0.2)
        [live] = recordings(folder)
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in live.text
        assert "#EXT-X-ENDLIST" not in live.text
        assert "#EXT-X-PROGRAM-DATE-TIME" in live.text
    finally:
        assert proc.wait(60) == 0
    [done] = finished(srv.stream_dir("live1"))
    assert done.text.rstrip().endswith("#EXT-X-ENDLIST")
    assert done.frames() == list(range(9 * FPS))


def test_refusals_record_nothing(srv: LiverecProcess, media: dict[str, Path]) -> None:
    def status(app: str, stream: str) -> str:
        pub = RtmpPublisher("127.0.0.1", srv.rtmp_port)
        try:
            code = pub.connect_and_publish(app, stream)
            # Refused: the server closes the connection.
            pub.sock.settimeout(5)
            with pytest.raises((ConnectionError, OSError)):
                while True:
                    if not pub.sock.recv(65536):
                        raise ConnectionError("closed")
            return code
        finally:
            pub.close()

    assert status("nope", "cam1") == "NetStream.Publish.BadName"
    assert status("live", "a" * 129) == "NetStream.Publish.BadName"
    assert status("live", "..") == "NetStream.Publish.BadName"
    assert status("secure", "cam1") == "NetStream.Publish.Unauthorized"
    # ffmpeg, as a user runs it, fails on a refused push.
    result = push(srv.url(entry_point="nope", stream="cam9"), media["av3"])
    assert result.returncode != 0
    for codec in ("flv1", "mp3"):
        result = push(srv.url(stream=f"codec_{codec}"), media[codec])
        assert not list(srv.stream_dir(f"codec_{codec}").glob("*")), codec
    assert not (srv.storage / "record" / "nope").exists()
    assert not list(srv.stream_dir("cam1", "secure").glob("*"))
    srv.wait_for_log("publish refused: .*codec")


def test_push_authentication(srv: LiverecProcess, media: dict[str, Path]) -> None:
    from liverec.rtmp.pushauth import push_signature, signed_push_query

    future = int(time.time()) + 600
    past = int(time.time()) - 10
    wrong = f"ts={future}&sign={push_signature('other', 'secure', 'cam1', str(future))}"
    expired = signed_push_query("k3y", "secure", "cam1", past)
    for query in ("", wrong, expired, f"ts={future}&sign=" + "0" * 32):
        result = push(srv.url("secure", "cam1", query), media["av3"], realtime=False)
        assert result.returncode != 0, query
    assert not list(srv.stream_dir("cam1", "secure").glob("*"))
    good = signed_push_query("k3y", "secure", "cam1", future)
    result = push(srv.url("secure", "cam1", good), media["av3"])
    assert result.returncode == 0, result.stderr
    [rec] = finished(srv.stream_dir("cam1", "secure"))
    assert rec.frames() == list(range(3 * FPS))
    # The CLI prints a signed URL that works.
    out = liverec_cli(srv.data_dir, "entry-points", "sign", "secure", "--stream", "cam2")
    url = out.split("signed push URL: ", 1)[1].strip()
    assert "ts=" in url and "sign=" in url
    query = url.split("?", 1)[1]
    assert push(srv.url("secure", "cam2", query), media["av3"]).returncode == 0


def test_second_publisher_is_refused_first_keeps_recording(
    srv: LiverecProcess, media: dict[str, Path]
) -> None:
    first = start_push(srv.url(stream="dup"), media["av6"])
    time.sleep(2)
    second = push(srv.url(stream="dup"), media["av3"], realtime=False)
    assert second.returncode != 0
    pub = RtmpPublisher("127.0.0.1", srv.rtmp_port)
    try:
        assert pub.connect_and_publish("live", "dup") == "NetStream.Publish.BadName"
    finally:
        pub.close()
    assert first.wait(60) == 0
    [rec] = finished(srv.stream_dir("dup"))
    assert rec.frames() == list(range(6 * FPS))


def test_reconnect_makes_a_second_recording(srv: LiverecProcess, media: dict[str, Path]) -> None:
    for _ in range(2):
        assert push(srv.url(stream="again"), media["av3"]).returncode == 0
    recs = finished(srv.stream_dir("again"), 2)
    assert len(recs) == 2
    assert recs[0].path.stem.split("_")[0] != recs[1].path.stem.split("_")[0]
    assert all(r.frames() == list(range(3 * FPS)) for r in recs)
    assert recs[1].start >= recs[0].start + timedelta(seconds=recs[0].duration)


def test_long_push_continues_in_a_new_recording(
    srv: LiverecProcess, media: dict[str, Path]
) -> None:
    # Entry point `short`: 1 s segments, 3 s maximum file duration.
    assert push(srv.url("short", "roll"), media["av9"]).returncode == 0
    recs = finished(srv.stream_dir("roll", "short"), 3)
    assert len(recs) >= 3
    frames: list[int] = []
    for rec in recs:
        assert rec.text.rstrip().endswith("#EXT-X-ENDLIST")
        assert rec.duration <= 3.0 + 1.05
        frames += rec.frames()
    assert frames == list(range(9 * FPS))  # not a frame lost at the joins
    for a, b in itertools.pairwise(recs):
        assert b.start == a.start + timedelta(seconds=round(a.duration, 3))


def test_timestamp_jump_becomes_a_discontinuity(
    srv: LiverecProcess, media: dict[str, Path]
) -> None:
    # The publisher's clock resets to 0 three seconds in: a jump back.
    start = time.monotonic()
    code = publish_file(
        "127.0.0.1",
        srv.rtmp_port,
        "live",
        "jumpy",
        media["av6"],
        timestamps=lambda t: t if t < 3000 else t - 3000 + 0,
    )
    assert code == "NetStream.Publish.Start"
    elapsed = time.monotonic() - start
    time.sleep(0.5)
    [rec] = finished(srv.stream_dir("jumpy"))
    assert "#EXT-X-DISCONTINUITY" in rec.text
    assert rec.frames() == list(range(6 * FPS))
    times = [s.program_date_time for s in rec.playlist.segments]
    assert all(t is not None for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
    # Wall clock stays true: the recording spans about the real push time.
    last = rec.playlist.segments[-1]
    assert last.program_date_time is not None
    end = last.program_date_time + timedelta(seconds=last.duration)
    assert (end - rec.start).total_seconds() == pytest.approx(elapsed, abs=1.5)
