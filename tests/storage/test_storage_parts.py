"""Segment parts (storage/parts.py) on a real disk: chunked appends, reads from another
thread, the rename into a LocalStore, the fall back to memory when the disk refuses, and
the part directory a killed process leaves, deleted by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from liverec.errors import StorageError
from liverec.storage import LocalStore
from liverec.storage.local import PARTS_DIR
from liverec.storage.parts import CHUNK, Part, PartDir
from liverec.storage.spool import SpooledWriter


def frames(count: int, size: int = 12_000) -> list[bytes]:
    return [bytes([n % 251]) * size for n in range(count)]


def part_files(base: Path) -> list[Path]:
    return sorted(p for p in base.rglob("*.part"))


def test_a_part_is_written_in_chunks_and_read_whole(tmp_path: Path) -> None:
    part = PartDir(tmp_path / "parts").new_part()
    data = frames(20)
    for n, frame in enumerate(data):
        part.append(frame)
        assert part.read() == b"".join(data[: n + 1])  # whole frames, wherever they are
    assert part.path is not None and part.path.stat().st_size >= CHUNK  # not all in memory
    part.finish()
    assert part.path.read_bytes() == b"".join(data) and part.size == len(b"".join(data))
    part.release()
    assert not part.path.exists()  # never stored: deleted
    with pytest.raises(StorageError):
        part.read()


def test_reads_from_another_thread_see_whole_frames(tmp_path: Path) -> None:
    part = PartDir(tmp_path / "parts").new_part()
    size = 10_000
    stop = threading.Event()
    bad: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            got = part.read()
            starts = range(0, len(got), size)
            if len(got) % size or any(got[i] != (i // size) % 251 for i in starts):
                bad.append(len(got))

    thread = threading.Thread(target=reader)
    thread.start()
    for frame in frames(200, size):
        part.append(frame)
    stop.set()
    thread.join()
    assert bad == []
    part.release()


def test_a_local_store_takes_the_part_by_renaming_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    part = store.new_part()
    data = b"".join(frames(10))
    for n in range(0, len(data), 7_000):
        part.append(data[n : n + 7_000])
    part.finish()
    assert part.path is not None
    inode = part.path.stat().st_ino
    assert store.list("") == []  # a part is never listed
    store.put_part("na/app/seg0.ts", part, "video/mp2t")
    target = store.root / "na" / "app" / "seg0.ts"
    assert part.stored and target.stat().st_ino == inode  # renamed, not copied
    assert store.get("na/app/seg0.ts") == data == part.read()
    part.release()
    assert target.exists() and part_files(store.root) == []
    assert part.read() == data  # from the stored file
    # Stored again under another key (a recording closed elsewhere): put from its bytes.
    store.put_part("na/app/other.ts", part, "video/mp2t")
    assert store.get("na/app/other.ts") == data
    assert store.list("") == ["na/app/other.ts", "na/app/seg0.ts"]


def test_a_part_the_disk_refuses_is_kept_in_memory(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    part = Part(parts / "gone" / "0.part")  # its directory does not exist: open fails
    data = frames(12)
    for frame in data:
        part.append(frame)
    part.finish()
    assert not part.in_file and part.read() == b"".join(data)
    store = LocalStore(tmp_path / "store")
    store.put_part("na/seg.ts", part, "video/mp2t")  # put from memory
    assert store.get("na/seg.ts") == b"".join(data)

    # Refused after a chunk was written (a file size limit, in a process of its own):
    # what the file holds is read back.
    out = subprocess.run(
        [sys.executable, "-c", REFUSED, str(parts)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "True", "False"], out.stderr


REFUSED = f"""
import resource, signal, sys
from pathlib import Path
from liverec.storage.parts import PartDir
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, ({CHUNK + 5000}, resource.RLIM_INFINITY))
part = PartDir(Path(sys.argv[1])).new_part()
data = [bytes([n]) * 10_000 for n in range(30)]
part.append(data[0])
first = part.path
for frame in data[1:]:
    part.append(frame)
part.finish()
print(not part.in_file, part.read() == b"".join(data), first.exists())
"""


def test_a_spool_over_a_store_without_parts_puts_their_bytes(tmp_path: Path) -> None:
    class Plain:  # a store that takes bytes only (as S3Store)
        def __init__(self) -> None:
            self.inner = LocalStore(tmp_path / "store")

        def __getattr__(self, name: str) -> object:
            if name in ("new_part", "put_part"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    spool = SpooledWriter(Plain(), tmp_path / "spool", max_bytes=1 << 20)  # type: ignore[arg-type]
    spool.start()
    try:
        part = spool.new_part()
        assert part.path is not None and part.path.is_relative_to(tmp_path / "spool" / "parts")
        data = b"".join(frames(8))
        part.append(data)
        part.finish()
        spool.put_part("na/seg.ts", part, "video/mp2t")
        assert not part.stored and spool.store.get("na/seg.ts") == data
        part.release()
        assert part_files(tmp_path / "spool") == []
    finally:
        spool.close()


KILLED = """
import os, sys, time
from pathlib import Path
from liverec.storage import LocalStore
store = LocalStore(sys.argv[1])
part = store.new_part()
part.append(b"open segment" * 10_000)
print(part.path, flush=True)
time.sleep(60)
"""


def _holder(root: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    path = Path(proc.stdout.readline().strip())
    assert path.exists()
    return proc, path


def test_the_parts_of_a_killed_process_are_deleted_by_the_next(tmp_path: Path) -> None:
    root = tmp_path / "store"
    killed, dead_part = _holder(root)
    alive, live_part = _holder(root)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert dead_part.exists()
        store = LocalStore(root)  # a new process on the same store sweeps
        assert not dead_part.parent.exists()
        assert live_part.exists()  # another live process's part is left alone
        assert store.list("") == []
        assert [p.name for p in (root / PARTS_DIR).iterdir()] == [live_part.parent.name]
    finally:
        alive.kill()
        alive.wait()
