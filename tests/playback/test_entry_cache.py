"""playback/cache.py without a catalog: the LRU's bound and versions, and the entries of
rows that cannot be sliced."""

from __future__ import annotations

from liverec.catalog.playback import PlayRow, PlayVersion
from liverec.playback import TimeShift, render_time_shift
from liverec.playback.cache import EntryCache, Plan, RecordingEntries, render_plan


def rows(rec_id: int, count: int, start: int = 0, step: int = 4000) -> list[PlayRow]:
    return [
        (rec_id, start + n * step, start + (n + 1) * step, False, f"record/live/s/r{rec_id}_{n}.ts")
        for n in range(count)
    ]


def version(count: int) -> PlayVersion:
    return (True, count, 0, count * 4000, 100 * count, 0)


def test_the_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    one = RecordingEntries.build(rows(1, 900))
    assert one is not None
    cache = EntryCache(max_bytes=3 * one.size)
    for rec_id in range(1, 4):
        entries = RecordingEntries.build(rows(rec_id, 900))
        assert entries is not None
        cache.put(rec_id, version(900), entries)
    assert len(cache) == 3
    assert cache.get(1, version(900)) is not None  # 1 is now the most recently used
    entries = RecordingEntries.build(rows(4, 900))
    assert entries is not None
    cache.put(4, version(900), entries)
    assert cache.bytes_held <= cache.max_bytes and len(cache) == 3
    assert cache.get(2, version(900)) is None  # the least recently used went
    assert cache.get(1, version(900)) is not None
    # A recording larger than the whole cache is not kept.
    huge = RecordingEntries.build(rows(5, 3000))
    assert huge is not None
    cache.put(5, version(3000), huge)
    assert cache.get(5, version(3000)) is None and cache.bytes_held <= cache.max_bytes


def test_a_changed_version_is_a_miss_and_frees_the_entry() -> None:
    cache = EntryCache()
    entries = RecordingEntries.build(rows(1, 10))
    assert entries is not None
    cache.put(1, version(10), entries)
    assert cache.get(1, version(8)) is None
    assert len(cache) == 0 and cache.bytes_held == 0


def test_rows_out_of_order_are_not_sliced() -> None:
    ties = [(1, 0, 4000, False, "a_0.ts"), (1, 0, 4000, False, "a_1.ts")]
    assert RecordingEntries.build(ties) is None
    shrinking = [(1, 0, 8000, False, "a_0.ts"), (1, 4000, 6000, False, "a_1.ts")]
    assert RecordingEntries.build(shrinking) is None


def test_slices_render_as_their_rows() -> None:
    entries = RecordingEntries.build(rows(1, 50))
    assert entries is not None
    spec = TimeShift("https://x/files/s/1/sig/", event=False)
    for t0, t1 in [(0, 0), (3999, 4000), (4000, 4000), (10_000, 150_000), (0, 10**9)]:
        i, j = entries.overlapping(t0, t1, 4000)
        expected = [r for r in rows(1, 50) if r[1] <= t1 and r[2] > t0]
        assert j - i == len(expected)
        text = render_plan(Plan([(entries, i, j)] if j > i else [], []), spec)
        assert text.decode() == render_time_shift(expected, spec)


def test_names_beyond_ascii_slice_by_bytes() -> None:
    named = [(1, n * 4000, (n + 1) * 4000, n == 2, f"record/live/s/café_{n}.ts") for n in range(5)]
    entries = RecordingEntries.build(named)
    assert entries is not None
    spec = TimeShift("https://x/files/s/1/sig/", event=False)
    i, j = entries.overlapping(5000, 13_000, 4000)
    text = render_plan(Plan([(entries, i, j)], []), spec)
    assert text.decode() == render_time_shift(named[i:j], spec)
