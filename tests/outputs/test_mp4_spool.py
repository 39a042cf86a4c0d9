"""MP4 slices through crashes and outages: a writer killed mid-slice (its spool file, torn
or not, published by the next start's recover_spool), a store outage (the slice waits in
the spool, and a close during it leaves it for the next start), and publishing one file
as one object on local disk and on S3 (in parts)."""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from liverec.errors import StorageError
from liverec.media.names import MP4_TYPE
from liverec.outputs.publish import publish_file
from liverec.outputs.spool import SliceMeta, SpoolFile, finish_file, sidecar_path
from liverec.recorder import RecorderEvent, RecordingEnded, SegmentStored
from liverec.storage import LocalStore
from liverec.storage.s3 import S3Store
from outputs.mp4rig import BUCKET, CAM, T0, Rig, av_open, play
from support.mediagen import read_frame_number
from support.s3server import S3Server

FPS = 25


def first_frames(segments: list[SegmentStored]) -> list[int]:
    """The frame number each segment starts with (no B-frames: decode order is shown)."""
    out = []
    for seg in segments:
        with av_open(seg.data, "mpegts") as container:
            out.append(read_frame_number(next(container.decode(video=0))))
    return out


def fragments(data: bytes) -> list[bytes]:
    """The prft+moof+mdat units of a slice file, by its top-level boxes."""
    units: list[bytes] = []
    pos = 0
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"prft":
            units.append(b"")
        if units and kind in (b"prft", b"moof", b"mdat"):
            units[-1] += data[pos : pos + length]
        pos += length
    return units


def wait_for(condition: Callable[[], object], what: str) -> None:
    """Poll until `condition` holds (the workers run in their own threads); the bound only
    keeps a broken test from hanging, nothing is asserted on time."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


# -- a crash ---------------------------------------------------------------------------------


@pytest.mark.parametrize("torn", [False, True])
async def test_a_kill_mid_slice_leaves_a_file_recover_spool_publishes(
    rig: Rig, media: Callable[..., Path], torn: bool
) -> None:
    src = media(8, fps=FPS, gop=FPS)
    dying = rig.writer()
    delivered = 4  # segments the writer saw before the kill -9

    def until_killed(event: RecorderEvent) -> None:
        nonlocal delivered
        if isinstance(event, RecordingEnded):
            return
        if isinstance(event, SegmentStored):
            if delivered == 0:
                return
            delivered -= 1
        dying(event)

    segments = await rig.push(src, [until_killed])
    dying.close()  # what the process had not done stays in the spool, as after a kill
    [spooled] = rig.spool.glob("*.mp4")
    size = spooled.stat().st_size
    last_fragment = fragments(spooled.read_bytes())[-1]
    if torn:  # the kill came in the middle of a fragment's write
        os.truncate(spooled, size - 100)
    assert rig.slices() == [] and rig.stored == []

    revived = rig.writer()
    names = revived.recover_spool()
    revived.close()

    [row] = rig.slices()
    assert names == [row.name]
    assert row.name == CAM.recording("s1", T0).mp4(0, T0)
    assert row.start_time == T0
    data = rig.read(row.name)
    assert row.size == len(data) == (size - (len(last_fragment) if torn else 0))
    played = play(data)
    assert played.warnings == []
    # Each fragment holds a segment but its last frame (which waits for its duration); a
    # torn fragment is cut off whole.
    starts = first_frames(segments)
    last = starts[3 if torn else 4] - 2
    assert played.frames == list(range(last + 1))
    assert played.video[-1][0] == last * 90_000 // FPS + played.video[0][0]
    # It ends where its media does: the last picture's end, or its audio a little later.
    pictures = timedelta(seconds=(last + 1) / FPS)
    assert pictures <= row.end_time - row.start_time < pictures + timedelta(milliseconds=100)
    assert [s.name for s in rig.stored] == [row.name]
    assert list(rig.spool.iterdir()) == []


async def test_a_file_cut_anywhere_keeps_every_whole_fragment(
    rig: Rig, media: Callable[..., Path], tmp_path: Path
) -> None:
    writer = rig.writer()
    await rig.push(media(3, fps=FPS, gop=FPS), [writer])
    writer.close()
    [row] = rig.slices()
    whole = rig.read(row.name)
    units = fragments(whole)
    ends = [len(whole) - sum(len(u) for u in units)]  # the init segment, then each fragment
    for unit in units:
        ends.append(ends[-1] + len(unit))
    assert ends[-1] == len(whole)
    for cut in sorted({*range(0, len(whole), len(whole) // 20), *ends, *(e - 1 for e in ends)}):
        path = tmp_path / "cut.mp4"
        path.write_bytes(whole[:cut])
        found = finish_file(path)
        kept = sum(1 for end in ends[1:] if end <= cut)
        assert found.fragments == kept
        if not kept:
            continue
        data = path.read_bytes()
        assert len(data) == ends[kept]
        played = play(data)
        assert played.warnings == []
        assert played.frames == list(range(len(played.frames)))
        if kept == len(units):
            assert data == whole  # finishing a finished file changes nothing


def test_recover_spool_forgets_what_holds_no_fragment(rig: Rig) -> None:
    rig.spool.mkdir(parents=True)
    meta = SliceMeta(CAM, CAM.recording("s9", T0).mp4(0, T0), "s9", 0, T0)
    # A crash right after the sidecar, and one right after the init segment.
    sidecar_path(rig.spool, meta).write_text(meta.to_json())
    other = SliceMeta(CAM, CAM.recording("s8", T0).mp4(0, T0), "s8", 0, T0)
    SpoolFile.create(rig.spool, other, b"\x00\x00\x00\x08free").close()
    (rig.spool / "x.json.tmp").write_text("{")

    writer = rig.writer()
    assert writer.recover_spool() == []
    writer.close()
    assert rig.slices() == [] and rig.stored == []
    assert list(rig.spool.iterdir()) == []


# -- an outage -------------------------------------------------------------------------------


class FlakyStore:
    """A LocalStore reached like a remote one (put only), whose puts fail while `down`."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.down = True
        self.attempts = 0
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._lock:
            self.attempts += 1
        if self.down:
            raise StorageError("store unavailable")
        self.inner.put(key, data, content_type)

    def local_path(self, key: str) -> Path | None:
        return None


async def test_an_outage_holds_the_slice_in_the_spool_until_the_store_is_back(
    rig: Rig, media: Callable[..., Path]
) -> None:
    assert isinstance(rig.store, LocalStore)
    flaky = FlakyStore(rig.store)
    src = media(3, fps=FPS, gop=FPS)

    # The store comes back while the writer retries: published, once.
    writer = rig.writer(store=flaky)
    await rig.push(src, [writer])  # the recorder is not held up
    wait_for(lambda: flaky.attempts >= 3, "retries")
    assert rig.slices() == [] and len(list(rig.spool.glob("*.mp4"))) == 1
    flaky.down = False
    wait_for(rig.slices, "the slice to be catalogued")
    writer.close()
    [first] = rig.slices()
    assert play(rig.read(first.name)).frames == list(range(3 * FPS))
    assert list(rig.spool.iterdir()) == []

    # It does not come back before close: close returns, the slice stays in the spool,
    # and the next start publishes it.
    flaky.down = True
    writer = rig.writer(store=flaky)
    tried = flaky.attempts
    await rig.push(src, [writer], session_id="s2", start=T0 + timedelta(minutes=1))
    wait_for(lambda: flaky.attempts > tried, "an attempt")
    writer.close()
    assert len(rig.slices()) == 1 and len(list(rig.spool.glob("*.mp4"))) == 1
    flaky.down = False
    writer = rig.writer(store=flaky)
    [name] = writer.recover_spool()
    writer.close()
    assert [r.name for r in rig.slices()] == [first.name, name]
    assert play(rig.read(name)).frames == list(range(3 * FPS))
    assert [s.name for s in rig.stored] == [first.name, name]
    assert list(rig.spool.iterdir()) == []


# -- publishing ------------------------------------------------------------------------------


def test_publish_on_local_disk_is_one_rename(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    spooled = tmp_path / "slice.mp4"
    spooled.write_bytes(os.urandom(300_000))
    key = CAM.key(CAM.recording("s1", T0).mp4(0, T0))
    assert publish_file(store, key, spooled, MP4_TYPE) == 300_000
    assert store.get(key) == spooled.read_bytes()
    target = store.local_path(key)
    assert target is not None
    assert os.listdir(target.parent) == [target.name]  # no temporary name left
    assert store.list(CAM.root) == [key]
    # Published again (recovery after a crash between publishing and the spool's removal):
    # the same object, replaced whole.
    publish_file(store, key, spooled, MP4_TYPE)
    assert store.get(key) == spooled.read_bytes()


def test_publish_on_s3_in_parts(s3: S3Server, tmp_path: Path) -> None:
    store = S3Store(BUCKET, "multipart", endpoint_url=s3.endpoint_url)
    raw = s3.client()
    try:
        spooled = tmp_path / "slice.mp4"
        spooled.write_bytes(os.urandom(11 * 1024 * 1024))
        key = CAM.key(CAM.recording("s1", T0).mp4(0, T0))
        size = publish_file(
            store, key, spooled, MP4_TYPE, single_put=1024 * 1024, part_size=5 * 1024 * 1024
        )
        assert size == 11 * 1024 * 1024
        head = raw.head_object(Bucket=BUCKET, Key=f"multipart/{key}")
        assert head["ContentType"] == MP4_TYPE
        assert "-3" in head["ETag"]  # three parts
        assert store.get(key) == spooled.read_bytes()

        # A failed upload leaves nothing: no object, no parts.
        broken = CAM.key(CAM.recording("s2", T0).mp4(0, T0))
        with pytest.raises(StorageError):  # parts under S3's 5 MiB minimum
            publish_file(store, broken, spooled, MP4_TYPE, single_put=0, part_size=1024 * 1024)
        assert not store.exists(broken)
        uploads = raw.list_multipart_uploads(Bucket=BUCKET, Prefix="multipart/")
        assert uploads.get("Uploads", []) == []
    finally:
        raw.close()
        store.close()
