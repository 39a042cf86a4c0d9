"""Slice files in the spool directory: written while a slice records, finished, and found
again after a crash.

Each slice is two files, named after its store key: `{id}.json`, a sidecar saying which
stream and name the slice is and when its time 0 is, written (temp + rename) before the
first byte of `{id}.mp4`, the fragmented MP4 itself. The MP4 grows one fragment per
segment, each in one write() to the page cache, so a kill -9 loses nothing written; a
power cut can lose what the disk had not yet flushed, which `finish_file` trims like a
torn fragment (only finishing fsyncs the data). They are removed in the other order, the
MP4 first: a sidecar without its MP4 is a slice that was published (or never got a byte),
and an MP4 without its sidecar does not happen."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from liverec.layout import StreamRef, file_part
from liverec.outputs.fmp4 import Scan, patch_durations, scan

SIDECAR = ".json"
MP4 = ".mp4"


@dataclass(frozen=True, slots=True)
class SliceMeta:
    """What a spooled slice is: enough to publish and catalogue it after a restart."""

    stream: StreamRef
    name: str  # record/{ep}/{stream}/{sessionid}_{sessiondate}_{sliceid}_{filedate}.mp4
    session_id: str
    slice_id: int
    start_time: datetime  # the wall clock of the file's time 0

    def to_json(self) -> str:
        s = self.stream
        return json.dumps(
            {
                "app_id": s.app_id,
                "region": s.region,
                "entry_point": s.entry_point,
                "stream_name": s.stream_name,
                "name": self.name,
                "session_id": self.session_id,
                "slice_id": self.slice_id,
                "start_time": self.start_time.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SliceMeta:
        """ValueError (or KeyError, TypeError) for a sidecar that is not one."""
        d = json.loads(text)
        stream = StreamRef(d["app_id"], d["region"], d["entry_point"], d["stream_name"])
        start = datetime.fromisoformat(d["start_time"])
        if start.tzinfo is None:
            raise ValueError("a naive start_time")
        return cls(stream, str(d["name"]), str(d["session_id"]), int(d["slice_id"]), start)


def spool_id(meta: SliceMeta) -> str:
    """A file name for the slice, unique per store key: a hash of the key (streams of
    different projects may share names) and the readable file part."""
    key = meta.stream.key(meta.name)
    return hashlib.sha256(key.encode()).hexdigest()[:20] + "_" + file_part(meta.name)


class SpoolFile:
    """A slice being written. `create` writes the sidecar, then the MP4's init segment."""

    def __init__(self, directory: Path, meta: SliceMeta, fd: int, size: int) -> None:
        self.directory = directory
        self.meta = meta
        self.size = size  # bytes written
        self._fd: int | None = fd

    @property
    def path(self) -> Path:
        return mp4_path(self.directory, self.meta)

    @classmethod
    def create(cls, directory: Path, meta: SliceMeta, init: bytes) -> SpoolFile:
        directory.mkdir(parents=True, exist_ok=True)
        write_sidecar(directory, meta)
        path = mp4_path(directory, meta)
        # O_TRUNC: a file of the same name can only be one a crash left and a restart
        # made again (same recording, same slice): its sidecar was just rewritten with it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        spooled = cls(directory, meta, fd, 0)
        try:
            _fsync_dir(directory)  # the file's name survives a power cut too
            spooled.append(init)
        except BaseException:
            spooled.close()
            raise
        return spooled

    def append(self, data: bytes) -> None:
        """Write `data` at the end, whole (OSError: the disk refused it)."""
        if self._fd is None:
            raise ValueError("the slice file is closed")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def mp4_path(directory: Path, meta: SliceMeta) -> Path:
    return directory / (spool_id(meta) + MP4)


def sidecar_path(directory: Path, meta: SliceMeta) -> Path:
    return directory / (spool_id(meta) + SIDECAR)


def write_sidecar(directory: Path, meta: SliceMeta) -> None:
    path = sidecar_path(directory, meta)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(meta.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)


def finish_file(path: Path) -> Scan:
    """Make a slice file whole: cut anything after its last complete fragment (a torn write),
    write its durations, fsync. Idempotent, so recovery may run it on a slice that was
    finished already."""
    with open(path, "r+b") as fh:
        found = scan(fh)
        if found.fragments:
            fh.truncate(found.complete)
            patch_durations(fh, found)
            fh.flush()
            os.fsync(fh.fileno())
    return found


def remove(directory: Path, meta: SliceMeta) -> None:
    """Forget a slice: its MP4 first, then the sidecar (see the module docstring)."""
    mp4_path(directory, meta).unlink(missing_ok=True)
    sidecar_path(directory, meta).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
