"""A blob store in a directory on local disk (the embedded default).

Every key goes through check_key and must then resolve to a path under the root, so `..`,
absolute paths and symlinks that lead out of the root are refused. A put writes a temporary
file in the target's directory, fsyncs it, renames it over the target and fsyncs the
directory: readers see the old or the new file, and a crash leaves one of them.

`fsync=False` (the `fsync = "off"` setting) skips both fsyncs. The rename alone is atomic
and what was written is in the kernel's page cache, so the death of the process (a crash,
kill -9, the OOM killer) still leaves the old or the new file, whole, and the catalog lists
only renamed segments: kill -9 loses at most the segment being written, as with fsyncs. A
power cut or kernel crash may lose what the kernel had not yet written back (Linux: up to
~30 s, vm.dirty_expire_centisecs), segments the catalog already lists included; with the
default `fsync=True` it cannot. Measured: the fsyncs cost little CPU (~0.3 ms a segment)
but ~1-3 ms of a recorder thread's time each, four per segment (file and directory, for
the segment and its playlist).

Segments come as parts (storage/parts.py) written under `{root}/.liverec-parts/` while
they grow: `put_part` fsyncs the file and renames it into place, the same atomic step as a
put without the copy. No key can name that directory (keys start with a region), and
`list` skips it."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import weakref
from pathlib import Path
from stat import S_ISLNK

from liverec.errors import InvalidKeyError, StorageError
from liverec.storage.base import BlobStore, ObjectNotFoundError
from liverec.storage.keys import check_key, check_prefix
from liverec.storage.parts import Part, PartDir, PartStore

TMP_PREFIX = ".liverec-tmp-"
PARTS_DIR = ".liverec-parts"
_CHUNK = 1 << 20
# Directories remembered (an open descriptor each: a recording's directory, about one per
# live stream); forgotten all at once when full.
MAX_CHECKED_DIRS = 512


class LocalStore(BlobStore, PartStore):
    def __init__(self, root: Path | str, *, fsync: bool = True) -> None:
        self.fsync = fsync
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage root {root}: {exc}") from exc
        self._root = root.resolve(strict=True)
        self._parts = PartDir(self._root / PARTS_DIR)
        self._parts.sweep()  # what a killed process left
        # Directories made and found inside the root: a descriptor held open on each (so
        # that no other directory can take its inode number while it is remembered), and
        # its (device, inode). Closed when the store is dropped.
        self._checked: dict[Path, tuple[int, int, int]] = {}
        self._checked_lock = threading.Lock()
        weakref.finalize(self, _close_checked, self._checked)

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        """The key's file, resolved (symlinks followed); refused unless inside the root."""
        check_key(key)
        resolved = self._root.joinpath(*key.split("/")).resolve()
        if resolved == self._root or not resolved.is_relative_to(self._root):
            raise InvalidKeyError(f"key {key!r} leads outside the storage root")
        return resolved

    def _target(self, key: str, *, again: bool = False) -> Path:
        """The file a put of `key` renames into place: its directory made and checked to
        resolve inside the root. Resolving costs an lstat per component (a dozen a put),
        each of which lets go of the GIL (the recorder's threads then wait for the event
        loop's), so a checked directory is remembered, held open, with its device and
        inode, and later puts stat its path once: any component swapped since (for a
        symlink out of the root, or deleted) leads to another inode or none (the one held
        open cannot be reused meanwhile), and the directory is checked and made anew.
        The file itself takes one lstat: a symlink there is followed, as a read follows it
        (refused when it leads out of the root). `again`: check anew regardless."""
        check_key(key)
        *dirs, name = key.split("/")
        directory = self._root.joinpath(*dirs)
        known = None if again else self._checked.get(directory)
        if known is not None:
            try:
                st = os.stat(directory)
            except FileNotFoundError:
                known = None
            else:
                if (st.st_dev, st.st_ino) != known[1:]:
                    known = None
        if known is None:
            self._remember(directory, None)
            self._make_dirs(directory)  # resolved and refused if outside before any mkdir
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
            except OSError:
                os.close(fd)
                raise
            self._remember(directory, (fd, st.st_dev, st.st_ino))
        path = directory / name
        try:
            link = S_ISLNK(os.lstat(path).st_mode)
        except FileNotFoundError:
            return path
        if not link:
            return path
        resolved = self._path(key)
        self._make_dirs(resolved.parent)  # as a put through the link always did
        return resolved

    def _remember(self, directory: Path, held: tuple[int, int, int] | None) -> None:
        """Remember `directory` as checked: (descriptor, device, inode); None: forget it."""
        with self._checked_lock:
            old = self._checked.pop(directory, None)
            if old is not None:
                os.close(old[0])
            if held is None:
                return
            if len(self._checked) >= MAX_CHECKED_DIRS:
                _close_checked(self._checked)
            self._checked[directory] = held

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        # content_type is not kept: local files are served by their extension.
        try:
            try:
                self._write(self._target(key), data)
            except FileNotFoundError:  # its directory was deleted since it was made
                self._write(self._target(key, again=True), data)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r}: {exc}") from exc

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view[:_CHUNK])
                    view = view[written:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            # A full disk (ENOSPC), a file size limit, an interrupt: no leftover.
            tmp.unlink(missing_ok=True)
            raise
        if self.fsync:
            _fsync_dir(path.parent)

    def new_part(self) -> Part:
        return self._parts.new_part()

    def put_part(self, key: str, part: Part, content_type: str) -> None:
        try:
            path = self._target(key)
            try:
                moved = part.move(path, fsync=self.fsync)
            except FileNotFoundError:  # its directory was deleted since it was made
                path = self._target(key, again=True)
                moved = part.move(path, fsync=self.fsync)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r}: {exc}") from exc
        if not moved:  # in memory, or already stored under another key
            self.put(key, part.read(), content_type)
            return
        if self.fsync:
            try:
                _fsync_dir(path.parent)
            except OSError as exc:
                raise StorageError(f"cannot write {key!r}: {exc}") from exc

    def _make_dirs(self, directory: Path) -> None:
        """mkdir -p, fsyncing each new directory's parent so the new entry is durable;
        InvalidKeyError, making nothing, if it resolves outside the root."""
        if not directory.resolve().is_relative_to(self._root):
            raise InvalidKeyError(f"{directory} leads outside the storage root")
        missing: list[Path] = []
        current = directory
        while not current.exists():
            missing.append(current)
            current = current.parent
        for new_dir in reversed(missing):
            with contextlib.suppress(FileExistsError):  # made by a concurrent put
                new_dir.mkdir()
            if self.fsync:
                _fsync_dir(new_dir.parent)
        if not directory.resolve().is_relative_to(self._root):
            raise InvalidKeyError(f"{directory} leads outside the storage root")

    def get(self, key: str) -> bytes:
        return self.get_range(key, 0, None)

    def get_range(self, key: str, start: int, end: int | None) -> bytes:
        if start < 0 or (end is not None and end < start):
            raise StorageError(f"bad byte range [{start}, {end}) for {key!r}")
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                return fh.read() if end is None else fh.read(end - start)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key!r}: {exc}") from exc

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r}") from None
        except OSError as exc:
            raise StorageError(f"cannot stat {key!r}: {exc}") from exc
        if not path.is_file():
            raise ObjectNotFoundError(f"no object {key!r}")
        return stat.st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r}: {exc}") from exc

    def list(self, prefix: str) -> list[str]:
        check_prefix(prefix)
        # Walk only the deepest directory the prefix names.
        folder, _, _ = prefix.rpartition("/")
        base = self._root.joinpath(*folder.split("/")) if folder else self._root
        if not base.resolve().is_relative_to(self._root) or not base.is_dir():
            return []
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = Path(dirpath).relative_to(self._root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            # Descend only into directories that can hold a matching key.
            dirnames[:] = [
                d
                for d in dirnames
                if _compatible(rel_dir + d + "/", prefix) and (rel_dir or d != PARTS_DIR)
            ]
            for name in filenames:
                key = rel_dir + name
                if not name.startswith(TMP_PREFIX) and key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


def _close_checked(checked: dict[Path, tuple[int, int, int]]) -> None:
    for fd, _dev, _ino in checked.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    checked.clear()


def _compatible(directory: str, prefix: str) -> bool:
    return directory.startswith(prefix) or prefix.startswith(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
