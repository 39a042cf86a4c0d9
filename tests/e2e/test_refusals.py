"""End to end: a refused publisher is told why, in words its own tool prints.

Real ffmpeg pushes into a real `liverec serve`. ffmpeg prints an error status's description
as "Server error: <description>" (rtmpproto.c handle_invoke_status), but while it is still
sending media it only reads between writes, so the description reaches its user only if the
server reads on after the status instead of hanging up (then ffmpeg says "Broken pipe").
ffmpeg 5.1 cannot send HEVC over RTMP (Enhanced RTMP came in 6.1): that case is pushed with
the test client, as an Enhanced RTMP encoder sends it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from liverec.media import amf0
from liverec.rtmp import messages as m
from liverec.rtmp.chunk import Message
from support.mediagen import make_media
from support.rtmpclient import RtmpPublisher
from support.server import FFMPEG, LiverecProcess, push

pytestmark = pytest.mark.slow  # a real `liverec serve`, real ffmpeg pushes

SUPPORTED = "liverec records H.264 video and AAC audio"
HVC1 = float(int.from_bytes(b"hvc1", "big"))  # 1752589105.0, as onMetaData carries it

NO_METADATA = ["-flvflags", "no_metadata"]  # for a push: its first media tag is refused

# name: (options making the file, options of the push, what the publisher must be shown)
CODECS: dict[str, tuple[list[str], list[str], str]] = {
    "mp3": (["-c:v", "copy", "-c:a", "libmp3lame"], [], "audio codec MP3"),
    "speex": (
        ["-c:v", "copy", "-c:a", "libspeex", "-ar", "16000", "-ac", "1"],
        [],
        "audio codec Speex",
    ),
    "alaw": (["-c:v", "copy", "-c:a", "pcm_alaw"], [], "audio codec G.711 A-law"),
    "flv1": (["-c:v", "flv", "-c:a", "copy"], [], "video codec Sorenson H.263"),
    "pcm": (
        ["-c:v", "copy", "-c:a", "pcm_s16le"],
        NO_METADATA,
        "audio codec Linear PCM (little endian)",
    ),
    # With AAC: the audio accepted before the refused video tag is not recorded either.
    "flashsv": (["-c:v", "flashsv", "-c:a", "copy"], NO_METADATA, "video codec Screen video"),
}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    source = make_media(d / "av.flv", 3)
    out = {"av": source}
    for name, (args, _, _) in CODECS.items():
        path = out[name] = d / f"{name}.flv"
        subprocess.run(
            [FFMPEG, "-loglevel", "error", "-i", str(source), *args, str(path)],
            check=True,
            timeout=60,
        )
    return out


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(tmp_path_factory.mktemp("data")).start()
    yield proc
    proc.terminate()


@pytest.mark.parametrize("codec", list(CODECS))
def test_ffmpeg_prints_why_its_codec_is_refused(
    srv: LiverecProcess, media: dict[str, Path], codec: str
) -> None:
    _, extra, codec_words = CODECS[codec]
    result = push(srv.url(stream=f"codec_{codec}"), media[codec], extra=extra)
    described = f"Server error: {codec_words} is not supported: {SUPPORTED}"
    assert result.returncode != 0
    assert described in result.stderr, result.stderr
    assert "Broken pipe" not in result.stderr
    assert "Connection reset" not in result.stderr
    assert not list(srv.stream_dir(f"codec_{codec}").glob("*"))


def test_ffmpeg_prints_why_its_publish_is_refused(
    srv: LiverecProcess, media: dict[str, Path]
) -> None:
    result = push(srv.url(entry_point="nope", stream="cam1"), media["av"])
    assert result.returncode != 0
    assert "Server error: unknown entry point 'nope'" in result.stderr, result.stderr


def refusal(pub: RtmpPublisher) -> dict[str, amf0.Amf0Value]:
    """The error status the server sends a publisher it refuses."""

    def is_error(name: str, args: list[amf0.Amf0Value]) -> bool:
        info = args[1] if len(args) > 1 else None
        return name == "onStatus" and isinstance(info, dict) and info.get("level") == "error"

    _, args = pub.wait_for(is_error)
    info = args[1]
    assert isinstance(info, dict)
    return info


HEVC_REFUSED = f"video codec HEVC (Enhanced RTMP FourCC 'hvc1') is not supported: {SUPPORTED}"


def test_hevc_announced_in_onmetadata_is_named(srv: LiverecProcess) -> None:
    pub = RtmpPublisher("127.0.0.1", srv.rtmp_port)
    try:
        assert pub.connect_and_publish("live", "hevc_meta") == "NetStream.Publish.Start"
        meta = {"videocodecid": HVC1, "width": 1280.0, "height": 720.0, "audiocodecid": 10.0}
        pub.send(m.data_message("@setDataFrame", "onMetaData", meta, stream_id=1), 4)
        info = refusal(pub)
    finally:
        pub.close()
    assert (info["code"], info["description"]) == ("NetStream.Publish.Rejected", HEVC_REFUSED)
    assert not list(srv.stream_dir("hevc_meta").glob("*"))


def test_hevc_in_enhanced_rtmp_tags_is_named(srv: LiverecProcess) -> None:
    pub = RtmpPublisher("127.0.0.1", srv.rtmp_port)
    try:
        assert pub.connect_and_publish("live", "hevc_tags") == "NetStream.Publish.Start"
        # ExVideoTagHeader: IsExHeader | keyframe | SequenceStart, FourCC, then the start of
        # an HEVCDecoderConfigurationRecord (configurationVersion 1), as OBS 29.1+ sends it.
        pub.send(Message(m.VIDEO, 1, 0, b"\x90hvc1\x01" + bytes(22)), 6)
        info = refusal(pub)
    finally:
        pub.close()
    assert (info["code"], info["description"]) == ("NetStream.Publish.Rejected", HEVC_REFUSED)
    assert not list(srv.stream_dir("hevc_tags").glob("*"))
