"""One behaviour for every BlobStore: the same checks run against LocalStore and against
S3Store on a real S3-compatible server (moto's, in a subprocess on loopback)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liverec.errors import InvalidKeyError, NotFoundError, StorageError
from liverec.storage import BlobStore, LocalStore, ObjectNotFoundError
from liverec.storage.s3 import S3Store
from support.s3server import TEST_AWS_ENV, UNSET_AWS_ENV, S3Server, create_bucket

BUCKET = "contract"


@pytest.fixture(scope="module")
def s3_root() -> Iterator[S3Store]:
    with pytest.MonkeyPatch.context() as mp:
        for name in UNSET_AWS_ENV:
            mp.delenv(name, raising=False)
        for name, value in TEST_AWS_ENV.items():
            mp.setenv(name, value)
        with S3Server() as server:
            create_bucket(server.endpoint_url, BUCKET)
            root = S3Store(BUCKET, endpoint_url=server.endpoint_url)
            yield root
            root.close()


@pytest.fixture(params=["local", "local-nofsync", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param.startswith("local"):
        # fsync = "off" changes what a power cut may lose, not what the store does.
        yield LocalStore(tmp_path / "root", fsync=request.param == "local")
        return
    root: S3Store = request.getfixturevalue("s3_root")
    # A prefix of its own per test: tests share the bucket but never see each other's keys.
    # The client is shared too: building one costs ~0.2 s.
    yield S3Store(BUCKET, f"t-{uuid.uuid4().hex}", client=root.client)


def test_put_get_size_exists_delete(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)
    key = "na/app/record/live/cam1/a.ts"
    assert not store.exists(key)
    store.put(key, b"hello world", "video/mp2t")
    assert store.exists(key)
    assert store.get(key) == b"hello world"
    assert store.size(key) == 11
    store.put(key, b"", "video/mp2t")  # replace, with nothing
    assert store.get(key) == b""
    assert store.size(key) == 0
    assert store.get_range(key, 0, 10) == b""
    store.delete(key)
    store.delete(key)  # again: no error
    assert not store.exists(key)


def test_every_byte_value_and_a_larger_object_round_trip(store: BlobStore) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    store.put("big.bin", data, "application/octet-stream")
    assert store.size("big.bin") == len(data)
    assert store.get("big.bin") == data


def test_missing_objects(store: BlobStore) -> None:
    store.put("here", b"1", "x")
    calls: list[Callable[[], object]] = [
        lambda: store.get("gone"),
        lambda: store.get_range("gone", 0, 1),
        lambda: store.get_range("gone", 3, None),
        lambda: store.get_range("gone", 0, 0),  # an empty range still checks the object
        lambda: store.size("gone"),
    ]
    for call in calls:
        with pytest.raises(ObjectNotFoundError) as info:
            call()
        assert isinstance(info.value, NotFoundError)
        assert isinstance(info.value, StorageError)
    assert not store.exists("gone")
    store.delete("gone")  # no error
    assert store.get("here") == b"1"


def test_a_folder_is_not_an_object(store: BlobStore) -> None:
    store.put("d/x", b"1", "x")
    assert not store.exists("d")
    with pytest.raises(ObjectNotFoundError):
        store.get("d")
    with pytest.raises(ObjectNotFoundError):
        store.size("d")
    store.delete("d")
    assert store.exists("d/x")


def test_ranges(store: BlobStore) -> None:
    data = bytes(range(256)) * 4
    store.put("r", data, "x")
    assert store.get_range("r", 0, None) == data
    assert store.get_range("r", 0, 1) == data[:1]
    assert store.get_range("r", 10, 20) == data[10:20]
    assert store.get_range("r", 1023, 1024) == data[1023:]
    assert store.get_range("r", 1000, None) == data[1000:]
    assert store.get_range("r", 1000, 5000) == data[1000:]  # cut short, like a slice
    assert store.get_range("r", 1024, None) == b""  # start at the end
    assert store.get_range("r", 2000, None) == b""  # start past the end
    assert store.get_range("r", 2000, 3000) == b""
    assert store.get_range("r", 5, 5) == b""
    for start, end in ((-1, None), (10, 5)):
        with pytest.raises(StorageError):
            store.get_range("r", start, end)


BAD_KEYS = [
    "../outside", "a/../../outside", "/etc/passwd", "a/./b", "a//b", "a\\b", "a\\..\\b",
    "a\x00b", "",
]  # fmt: skip


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_by_every_call(store: BlobStore, key: str) -> None:
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
    assert store.list("") == []


@pytest.mark.parametrize("prefix", ["../", "/abs/", "a//", "a/../"])
def test_bad_list_prefixes_are_refused(store: BlobStore, prefix: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.list(prefix)


def test_list_by_prefix_sorted(store: BlobStore) -> None:
    keys = [
        "na/app/record/live/cam2/c.ts",
        "na/app/record/live/cam1/a_0.ts",
        "eu/app/x",
        "na/app/record/live/cam10/b.ts",
        "na/app/record/live/cam1/a.m3u8",
    ]
    for key in keys:
        store.put(key, b"x", "x")
    expected = sorted(keys)
    assert store.list("") == expected
    assert store.list("na/app/record/live/cam1/") == [
        "na/app/record/live/cam1/a.m3u8",
        "na/app/record/live/cam1/a_0.ts",
    ]
    assert store.list("na/app/record/live/cam1") == [
        "na/app/record/live/cam1/a.m3u8",
        "na/app/record/live/cam1/a_0.ts",
        "na/app/record/live/cam10/b.ts",
    ]
    assert store.list("na/app/record/live/cam1/a_") == ["na/app/record/live/cam1/a_0.ts"]
    assert store.list("na/app/record/live/cam3/") == []
    assert store.list("nothing/") == []
    store.delete("eu/app/x")
    assert store.list("") == [k for k in expected if k != "eu/app/x"]


def test_unusual_but_valid_keys(store: BlobStore) -> None:
    keys = ["sp ace/a+b=c.ts", "ünï/cödé €.m3u8", "q/what?#x%20y.jpg", "-dash/.hidden"]
    for i, key in enumerate(keys):
        store.put(key, bytes([i]) * 3, "x")
    for i, key in enumerate(keys):
        assert store.get(key) == bytes([i]) * 3
        assert store.exists(key)
    assert store.list("") == sorted(keys)
    assert store.list("ünï/") == ["ünï/cödé €.m3u8"]


def test_overwrite_is_atomic_for_concurrent_readers(store: BlobStore) -> None:
    # Readers must only ever see one whole version, never a mix or a truncated object.
    versions = [bytes([v]) * 300_000 for v in (1, 2)]
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
    for i in range(12):
        store.put("big", versions[i % 2], "x")
    stop.set()
    for t in readers:
        t.join()
    assert bad == []
    assert seen  # the readers did read
    assert store.list("") == ["big"]


def test_local_path(store: BlobStore) -> None:
    path = store.local_path("a/b.ts")
    if isinstance(store, LocalStore):
        assert path == store.root / "a" / "b.ts"
    else:
        assert path is None
