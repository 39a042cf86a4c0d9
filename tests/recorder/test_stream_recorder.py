"""The stream recorder's track discovery is bounded whatever the publisher sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from liverec.catalog import Catalog, SecretBox, ensure_schema, make_engine
from liverec.layout import StreamRef
from liverec.recorder import Recorders
from liverec.recorder.stream import DISCOVERY_MAX_FRAMES, StreamRecorder
from liverec.storage import LocalStore
from support.aacgen import aac_frames, demuxed_audio

ASC = bytes([0x12, 0x10])  # AAC-LC, 44.1 kHz, stereo


class StepClock:
    def __init__(self) -> None:
        self.t = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def recorder(tmp_path: Path, clock: StepClock) -> StreamRecorder:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    ensure_schema(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project("app", is_default=True)
    catalog.create_entry_point("app", "live")
    recorders = Recorders(
        catalog, LocalStore(tmp_path / "store"), node_id="n", lease_seconds=60, clock=clock
    )
    return recorders.start(
        StreamRef("app", "na", "live", "cam"),
        target_duration=4.0,
        max_file_duration=3600.0,
        session_id="s",
    )


async def test_frozen_timestamps_cannot_hold_discovery_open(tmp_path: Path) -> None:
    clock = StepClock()
    rec = recorder(tmp_path, clock)
    rec.on_metadata({"videocodecid": 7.0, "audiocodecid": 10.0})  # promises video too
    rec.on_audio(0, b"\xaf\x00" + ASC)
    for _ in range(DISCOVERY_MAX_FRAMES + 10):
        rec.on_audio(0, b"\xaf\x01" + b"\x21\x00")  # the same timestamp, forever
    assert rec.segmenter is not None and rec.segmenter.has_audio
    await rec.close()


async def test_discovery_ends_on_the_server_clock(tmp_path: Path) -> None:
    clock = StepClock()
    rec = recorder(tmp_path, clock)
    rec.on_metadata({"videocodecid": 7.0, "audiocodecid": 10.0})
    rec.on_audio(0, b"\xaf\x00" + ASC)
    rec.on_audio(0, b"\xaf\x01" + b"\x21\x00")
    assert rec.segmenter is None  # still waiting for the promised video
    clock.advance(2.0)
    rec.on_audio(0, b"\xaf\x01" + b"\x21\x00")
    assert rec.segmenter is not None
    await rec.close()


async def test_aac_frames_are_recorded_byte_for_byte(tmp_path: Path) -> None:
    # Real AAC frames as a publisher sends them (FLV tags, no ADTS header), past discovery
    # and into several segments: the stored TS carries each one, whole, with its header.
    frames = aac_frames(600)  # ~14 s at 44.1 kHz
    clock = StepClock()
    rec = recorder(tmp_path, clock)
    rec.on_metadata({"audiocodecid": 10.0})
    rec.on_audio(0, b"\xaf\x00" + ASC)
    for i, frame in enumerate(frames):
        rec.on_audio(i * 1024 * 1000 // 44100, b"\xaf\x01" + frame[7:])
    await rec.close()
    files = sorted((tmp_path / "store").rglob("*.ts"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    assert len(files) >= 3
    data = b"".join(p.read_bytes() for p in files)
    assert [frame for _, frame in demuxed_audio(data)] == frames
