"""The local-disk store: atomic puts, safe keys (no way out of the root), ranges, listing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from liverec.errors import ConfigError, InvalidKeyError, NotFoundError, StorageError
from liverec.storage import BlobStore, LocalStore, ObjectNotFoundError, open_store
from liverec.storage.local import TMP_PREFIX


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "root")


def test_put_get_size_exists_delete(store: LocalStore) -> None:
    assert isinstance(store, BlobStore)
    key = "na/app/record/live/cam1/a.ts"
    assert not store.exists(key)
    store.put(key, b"hello world", "video/mp2t")
    assert store.exists(key)
    assert store.get(key) == b"hello world"
    assert store.size(key) == 11
    assert store.local_path(key) == store.root / "na/app/record/live/cam1/a.ts"
    store.put(key, b"", "video/mp2t")  # replace, with nothing
    assert store.get(key) == b"" and store.size(key) == 0
    store.delete(key)
    store.delete(key)  # again: no error
    assert not store.exists(key)
    with pytest.raises(ObjectNotFoundError):
        store.get(key)
    with pytest.raises(NotFoundError):  # also a NotFoundError ...
        store.size(key)
    with pytest.raises(StorageError):  # ... and a StorageError
        store.get_range(key, 0, 1)


def test_a_directory_is_not_an_object(store: LocalStore) -> None:
    store.put("d/x", b"1", "x")
    assert not store.exists("d")
    with pytest.raises(ObjectNotFoundError):
        store.get("d")
    with pytest.raises(ObjectNotFoundError):
        store.size("d")
    store.delete("d")
    assert store.exists("d/x")
    with pytest.raises(StorageError):
        store.put("d/x/y", b"2", "x")  # x is a file, not a folder


def test_ranges(store: LocalStore) -> None:
    data = bytes(range(256)) * 4
    store.put("r", data, "x")
    assert store.get_range("r", 0, None) == data
    assert store.get_range("r", 10, 20) == data[10:20]
    assert store.get_range("r", 1000, None) == data[1000:]
    assert store.get_range("r", 1000, 5000) == data[1000:]  # cut short, like a slice
    assert store.get_range("r", 2000, None) == b""
    assert store.get_range("r", 5, 5) == b""
    for start, end in ((-1, None), (10, 5)):
        with pytest.raises(StorageError):
            store.get_range("r", start, end)


TRAVERSALS = [
    "../outside",
    "a/../../outside",
    "/etc/passwd",
    "a/./b",
    "a//b",
    "a\\..\\b",
    "a\x00b",
    "",
]


@pytest.mark.parametrize("key", TRAVERSALS)
def test_traversal_attempts_are_refused_everywhere(
    store: LocalStore, tmp_path: Path, key: str
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.put(key, b"x", "x"),
        lambda: store.get(key),
        lambda: store.get_range(key, 0, 1),
        lambda: store.size(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.local_path(key),
    ]
    for call in calls:
        with pytest.raises(InvalidKeyError):
            call()
    assert not (tmp_path / "outside").exists()


def test_symlinks_out_of_the_root_are_refused(store: LocalStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"top secret")
    os.symlink(outside, store.root / "link")
    os.symlink(outside / "secret", store.root / "file-link")
    for key in ("link/secret", "file-link", "link/new"):
        with pytest.raises(InvalidKeyError):
            store.get(key)
        with pytest.raises(InvalidKeyError):
            store.put(key, b"overwritten", "x")
        with pytest.raises(InvalidKeyError):
            store.delete(key)
    assert (outside / "secret").read_bytes() == b"top secret"
    assert not (outside / "new").exists()
    assert store.list("") == ["file-link"]  # listed (it is a name in the root), never followed


def test_symlinks_inside_the_root_are_followed(store: LocalStore) -> None:
    store.put("real/x", b"1", "x")
    os.symlink(store.root / "real", store.root / "alias")
    assert store.get("alias/x") == b"1"


def test_list_by_prefix(store: LocalStore) -> None:
    keys = [
        "na/app/record/live/cam1/a.m3u8",
        "na/app/record/live/cam1/a_0.ts",
        "na/app/record/live/cam10/b.ts",
        "na/app/record/live/cam2/c.ts",
        "eu/app/x",
    ]
    for key in keys:
        store.put(key, b"x", "x")
    assert store.list("") == sorted(keys)
    assert store.list("na/app/record/live/cam1/") == keys[:2]
    assert store.list("na/app/record/live/cam1") == keys[:3]
    assert store.list("na/app/record/live/cam1/a_") == keys[1:2]
    assert store.list("na/app/record/live/cam3/") == []
    assert store.list("nothing/") == []
    with pytest.raises(InvalidKeyError):
        store.list("../")


def test_put_is_atomic_for_concurrent_readers(store: LocalStore) -> None:
    # Readers must only ever see one whole version, never a mix or a truncated file.
    versions = [bytes([v]) * 3_000_000 for v in (1, 2)]
    store.put("big", versions[0], "x")
    stop = threading.Event()
    seen: set[bytes] = set()
    bad: list[int] = []

    def read() -> None:
        while not stop.is_set():
            data = store.get("big")
            if data not in versions:
                bad.append(len(data))
            seen.add(data[:1])

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for i in range(30):
        store.put("big", versions[i % 2], "x")
    stop.set()
    for t in readers:
        t.join()
    assert bad == []
    assert seen  # the readers did read
    assert store.list("") == ["big"]
    assert not [p for p in store.root.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_temporary_files_are_never_listed(store: LocalStore) -> None:
    store.put("d/a", b"1", "x")
    (store.root / "d" / f"{TMP_PREFIX}left-by-a-crash").write_bytes(b"partial")
    assert store.list("d/") == ["d/a"]


def _umask() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    pytest.skip("no /proc/self/status")


def test_files_are_0644_less_the_umask(store: LocalStore) -> None:
    # Not 0600 like a mkstemp file: operators may serve the folder with another program.
    store.put("p", b"1", "x")
    assert (store.root / "p").stat().st_mode & 0o777 == 0o644 & ~_umask()


# A put into a file-size limit (RLIMIT_FSIZE), the real failure a full disk gives a write:
# set in a child process, so that nothing else of the test run is limited.
_FAILING_PUT = textwrap.dedent(
    """
    import resource, signal, sys
    from liverec.errors import StorageError
    from liverec.storage import LocalStore

    store = LocalStore(sys.argv[1])
    store.put("d/small", b"x" * 100, "x")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    try:
        store.put("d/big", b"y" * 100_000, "x")
    except StorageError as exc:
        print("refused:", exc)
    else:
        print("written")
    """
)


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = subprocess.run(
        [sys.executable, "-c", _FAILING_PUT, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused:") and "File too large" in result.stdout
    assert sorted(os.listdir(root / "d")) == ["small"]  # no .liverec-tmp-* left behind


def test_open_store(tmp_path: Path) -> None:
    store = open_store((tmp_path / "s p a c e").as_uri())
    assert isinstance(store, LocalStore)
    assert store.root == (tmp_path / "s p a c e").resolve()
    for url in ("file://host/x", "file:relative", "ftp://x/y", "/plain"):
        with pytest.raises(ConfigError):
            open_store(url)
