"""The storage spool over a real local store that really fails: its root replaced by a file
(every put then fails with an OSError turned StorageError), then put back. What was written
during the outage reaches the store in order, the last version of a key wins, a full spool
refuses, and a spool left by a killed process is uploaded by the next one."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from liverec.errors import InvalidKeyError, StorageError
from liverec.storage import LocalStore
from liverec.storage.spool import SpooledWriter, SpoolFullError


class Outage:
    """Takes the store's root away (a plain file stands in its place) and gives it back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.aside = root.with_name(root.name + ".aside")

    def begin(self) -> None:
        self.root.rename(self.aside)
        self.root.write_bytes(b"not a directory")

    def end(self) -> None:
        self.root.unlink()
        self.aside.rename(self.root)


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def make(store: LocalStore, tmp_path: Path, max_bytes: int = 1 << 20) -> SpooledWriter:
    spool = SpooledWriter(
        store, tmp_path / "spool", max_bytes=max_bytes, retry_first=0.02, retry_max=0.1
    )
    spool.start()
    return spool


def test_an_outage_is_spooled_and_uploaded_in_order(root: Path, tmp_path: Path) -> None:
    store = LocalStore(root)
    spool = make(store, tmp_path)
    try:
        spool.put("a/seg0.ts", b"zero", "video/mp2t")
        assert store.get("a/seg0.ts") == b"zero" and spool.backlog() == (0, 0)
        outage = Outage(root)
        outage.begin()
        spool.put("a/seg1.ts", b"one", "video/mp2t")
        spool.put("a/list.m3u8", b"v1", "application/vnd.apple.mpegurl")
        spool.put("a/seg2.ts", b"two", "video/mp2t")
        spool.put("a/list.m3u8", b"v2", "application/vnd.apple.mpegurl")  # replaces v1
        assert spool.backlog() == (3, len(b"onetwov2"))
        assert sorted(p.name for p in (tmp_path / "spool").iterdir())  # on disk, not memory
        time.sleep(0.3)  # the uploader keeps failing meanwhile; nothing is lost
        outage.end()
        wait_for(lambda: spool.backlog() == (0, 0))
        assert store.get("a/seg1.ts") == b"one" and store.get("a/seg2.ts") == b"two"
        assert store.get("a/list.m3u8") == b"v2"
        assert spool.uploaded == 3 and not list((tmp_path / "spool").iterdir())
        # Back to writing through.
        spool.put("a/seg3.ts", b"three", "video/mp2t")
        assert store.get("a/seg3.ts") == b"three" and spool.backlog() == (0, 0)
    finally:
        spool.close()


def test_while_anything_waits_later_puts_queue_behind_it(root: Path, tmp_path: Path) -> None:
    store = LocalStore(root)
    # No start(): no uploader runs, so what is spooled stays there for the check.
    spool = SpooledWriter(store, tmp_path / "spool", max_bytes=1 << 20)
    try:
        outage = Outage(root)
        outage.begin()
        spool.put("a/list.m3u8", b"old", "application/vnd.apple.mpegurl")
        outage.end()
        # The store answers again, but an older version waits: this one must not overtake
        # it (the uploader would then put the old over the new).
        spool.put("a/seg.ts", b"seg", "video/mp2t")
        assert spool.backlog()[0] == 2 and not store.exists("a/seg.ts")
    finally:
        spool.close(timeout=0.1)


def test_a_full_spool_refuses_and_keeps_what_it_has(root: Path, tmp_path: Path) -> None:
    store = LocalStore(root)
    spool = make(store, tmp_path, max_bytes=10)
    try:
        Outage(root).begin()
        spool.put("a/seg0.ts", b"12345678", "video/mp2t")
        with pytest.raises(SpoolFullError, match="spool is full"):
            spool.put("a/seg1.ts", b"12345678", "video/mp2t")
        assert isinstance(SpoolFullError("x"), StorageError)  # the recorder drops, marks
        assert spool.backlog() == (1, 8)
        with pytest.raises(InvalidKeyError):
            spool.put("../escape", b"x", "video/mp2t")
    finally:
        spool.close(timeout=0.1)


def test_a_spool_left_by_a_killed_process_is_uploaded_at_the_next_start(
    root: Path, tmp_path: Path
) -> None:
    store = LocalStore(root)
    first = SpooledWriter(store, tmp_path / "spool", max_bytes=1 << 20, retry_first=60.0)
    first.start()
    outage = Outage(root)
    outage.begin()
    first.put("a/seg0.ts", b"zero", "video/mp2t")
    first.put("a/seg1.ts", b"one", "video/mp2t")
    (tmp_path / "spool" / "000000000099.spool.tmp").write_bytes(b"half a write")
    outage.end()
    # No close: the process died. Its files are all the next one has.
    second = make(LocalStore(root), tmp_path)
    try:
        wait_for(lambda: second.backlog() == (0, 0))
        assert store.get("a/seg0.ts") == b"zero" and store.get("a/seg1.ts") == b"one"
        assert not list((tmp_path / "spool").iterdir())
    finally:
        second.close()
        first.close(timeout=0.1)
    shutil.rmtree(tmp_path / "spool", ignore_errors=True)
