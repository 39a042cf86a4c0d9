"""The local-disk store: atomic puts, safe keys (no way out of the root), ranges, listing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from liverec.errors import ConfigError, InvalidKeyError
from liverec.storage import LocalStore, open_store
from liverec.storage.local import TMP_PREFIX


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "root")


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


def test_a_put_through_a_symlink_inside_the_root_writes_its_target(store: LocalStore) -> None:
    store.put("real/x", b"1", "x")
    os.symlink(store.root / "real" / "x", store.root / "real" / "y")
    os.symlink(store.root / "real", store.root / "alias")
    store.put("real/y", b"2", "x")  # a file symlink: followed, as a read follows it
    store.put("alias/z", b"3", "x")  # a directory symlink
    assert (store.root / "real" / "y").is_symlink()
    assert (store.root / "real" / "x").read_bytes() == b"2"
    assert (store.root / "real" / "z").read_bytes() == b"3"


def test_a_directory_deleted_after_a_put_is_made_again(store: LocalStore, tmp_path: Path) -> None:
    # Directories already made are not checked again on every put; one deleted since (a
    # recording removed by hand) is made again, and the put succeeds the first time.
    store.put("rec/a/1.ts", b"1", "x")
    shutil.rmtree(store.root / "rec")
    store.put("rec/a/2.ts", b"2", "x")
    assert store.get("rec/a/2.ts") == b"2"
    part = store.new_part()
    part.append(b"3")
    part.finish()
    shutil.rmtree(store.root / "rec")
    store.put_part("rec/a/3.ts", part, "x")
    assert store.get("rec/a/3.ts") == b"3"


def test_a_directory_made_a_symlink_out_of_the_root_before_its_first_put_is_refused(
    store: LocalStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, store.root / "rec")
    with pytest.raises(InvalidKeyError):
        store.put("rec/a/1.ts", b"1", "x")
    assert list(outside.iterdir()) == []  # nothing made out there, not even a directory


def test_a_directory_swapped_for_a_symlink_out_of_the_root_after_a_put_is_refused(
    store: LocalStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store.put("rec/a/1.ts", b"1", "x")  # the directory is checked, and remembered
    shutil.rmtree(store.root / "rec" / "a")
    os.symlink(outside, store.root / "rec" / "a")
    with pytest.raises(InvalidKeyError):
        store.put("rec/a/2.ts", b"2", "x")
    part = store.new_part()
    part.append(b"3")
    part.finish()
    with pytest.raises(InvalidKeyError):
        store.put_part("rec/a/3.ts", part, "x")
    # An ancestor swapped, not the directory itself: refused all the same.
    store.put("top/b/c/1.ts", b"1", "x")
    shutil.rmtree(store.root / "top")
    (outside / "b" / "c").mkdir(parents=True)
    os.symlink(outside, store.root / "top")
    with pytest.raises(InvalidKeyError):
        store.put("top/b/c/2.ts", b"2", "x")
    assert sorted(p.name for p in outside.rglob("*")) == ["b", "c"]  # nothing written there


def test_a_new_directory_out_of_the_root_cannot_take_a_remembered_ones_inode(
    store: LocalStore, tmp_path: Path
) -> None:
    # The file system gives a deleted directory's inode number to the next one made: a
    # directory out of the root made after the remembered one was deleted would then look
    # like it by (device, inode). The store holds the one it checked open, so its number is
    # never given out again while it is remembered.
    outside = tmp_path / "outside"
    outside.mkdir()
    store.put("top/b/c/1.ts", b"1", "x")
    inode = os.stat(store.root / "top" / "b" / "c").st_ino
    shutil.rmtree(store.root / "top")
    for i in range(200):  # the first directory given the old number, if any is
        made = outside / f"x{i}" / "b" / "c"
        made.mkdir(parents=True)
        if made.stat().st_ino == inode:
            break
    os.symlink(made.parent.parent, store.root / "top")
    with pytest.raises(InvalidKeyError):
        store.put("top/b/c/2.ts", b"2", "x")
    assert not (made / "2.ts").exists()


def test_a_file_symlink_into_a_missing_directory_inside_the_root_makes_it(
    store: LocalStore,
) -> None:
    (store.root / "d").mkdir()
    os.symlink(store.root / "later" / "target.ts", store.root / "d" / "link.ts")
    store.put("d/link.ts", b"1", "x")
    assert (store.root / "later" / "target.ts").read_bytes() == b"1"


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
