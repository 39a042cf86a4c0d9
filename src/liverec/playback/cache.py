"""Closed recordings' playlist entries, rendered once and kept in a bounded LRU.

A 24-hour time-shift playlist of a 24/7 stream is 21,600 entries; reading their rows (~15 ms
on SQLite) and formatting them (~8 ms) on every request was most of its ~60 ms
(bench/play.py). A closed recording's segments never change, except when retention deletes
some (its head, or holes between locks), and every such deletion changes the recording's
row: its `PlayVersion` (segment_count, size_bytes, end_ms, ...; catalog/playback.py). So:

- per recording, its entries are rendered once into one bytes object, `RecordingEntries`:
  each entry's tags, a placeholder where the per-request signed prefix goes, its file name,
  with the offsets of each entry; a playlist is slices of these with the placeholders
  replaced by the prefix (C-speed `bytes.replace`), ~1 ms for 3.6 MB;
- a request reads, in one statement, the rows of the recordings overlapping its range and
  an index-only count of the segments in range (`Catalog.play_index`); a closed recording
  whose cached entries carry the version read is not read again; open recordings and
  changed or unseen ones are read whole in a second statement, checked against the first
  statement's versions;
- the result is used only when it is certainly what `render_time_shift` would write from
  `play_rows`: the slices hold exactly the counted number of segments (so no recording
  was missed, e.g. one whose row does not cover its segments), they do not interleave
  (two nodes recording one stream), and each recording's segments are in start order.
  Otherwise the playlist is built from `play_rows` as before (`Plan.rows`).

Only closed recordings are kept; an open one is read on every request, so it stays fresh.
The cache is bounded by the bytes it holds (`max_bytes`), least recently used out first.
Entries of other nodes' recordings are checked the same way: the check is the catalog's
row, not a notice from this node's retention."""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Protocol

from liverec.catalog.models import to_ms
from liverec.catalog.playback import PlayIndex, PlayRow, PlayVersion
from liverec.layout import StreamRef
from liverec.media.m3u8 import target_duration_for
from liverec.playback.playlist import (
    DISCONTINUITY,
    TimeShift,
    extinf_line,
    header,
    program_date_time,
    render_time_shift,
)

# Where each entry's signed prefix goes: never in a tag, nor in a file name (layout.py
# refuses control characters; `RecordingEntries.build` checks all the same).
_SLOT = b"\x00"
_SLOT_STR = "\x00"
DEFAULT_MAX_BYTES = 32 * 1024 * 1024  # ~480 recordings of 900 entries (~70 KB each)
_ENTRY_OVERHEAD = 256  # the object, its arrays' headers, the LRU's slot


@dataclass(frozen=True, slots=True)
class RecordingEntries:
    """One recording's segments as playlist entries. Entry k is `text[head_at[k]:
    head_at[k + 1]]`: its tags as they follow entry k - 1 of the same recording, then
    `_SLOT` (the prefix), then its file name from `name_at[k]`. Starts strictly increase
    and ends do not decrease, so the entries overlapping a range are one slice."""

    starts: array[int]
    ends: array[int]
    head_at: array[int]  # n + 1 offsets
    name_at: array[int]
    text: bytes
    longest: int  # ms, the longest entry

    @classmethod
    def build(cls, rows: Sequence[PlayRow]) -> RecordingEntries | None:
        """From one recording's rows in time order; None when they are not in the order
        the slicing needs (then the playlist is rendered from play_rows). One str per
        entry, one encode (~2 µs an entry)."""
        parts: list[str] = []
        head_at, name_at = array("q"), array("q")
        extinfs: dict[int, str] = {}
        size = 0
        previous_start = previous_end = -(2**63)
        first = True
        for _rec, start, end, discontinuity, key in rows:
            if start <= previous_start or end < previous_end:
                return None
            # The tags render_time_shift writes before this entry when the previous one is
            # the same recording's (the first entry of a slice gets its own: render_plan).
            tags = ""
            if first:
                tags = program_date_time(start)
                first = False
            elif discontinuity:
                tags = DISCONTINUITY + program_date_time(start)
            elif start != previous_end:
                tags = program_date_time(start)
            duration = end - start
            extinf = extinfs.get(duration)
            if extinf is None:
                extinf = extinfs[duration] = extinf_line(duration)
            part = f"{tags}{extinf}\x00{key.rpartition('/')[2]}\n"
            parts.append(part)
            head_at.append(size)
            name_at.append(size + len(tags) + len(extinf) + 1)
            size += len(part)
            previous_start, previous_end = start, end
        head_at.append(size)
        joined = "".join(parts)
        if joined.count(_SLOT_STR) != len(parts):
            return None  # a file name with the placeholder in it
        text = joined.encode()
        if len(text) != len(joined):  # a name beyond ASCII: offsets in bytes, not chars
            return cls._build_bytes(rows, parts)
        starts = array("q", [r[1] for r in rows])
        ends = array("q", [r[2] for r in rows])
        longest = max((e - s for s, e in zip(starts, ends, strict=True)), default=0)
        return cls(starts, ends, head_at, name_at, text, longest)

    @classmethod
    def _build_bytes(cls, rows: Sequence[PlayRow], parts: list[str]) -> RecordingEntries:
        head_at, name_at = array("q"), array("q")
        encoded = [part.encode() for part in parts]
        size = 0
        for part in encoded:
            head_at.append(size)
            name_at.append(size + part.index(_SLOT) + 1)
            size += len(part)
        head_at.append(size)
        starts = array("q", [r[1] for r in rows])
        ends = array("q", [r[2] for r in rows])
        longest = max((e - s for s, e in zip(starts, ends, strict=True)), default=0)
        return cls(starts, ends, head_at, name_at, b"".join(encoded), longest)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def size(self) -> int:
        """Bytes held, roughly (what the cache counts)."""
        return len(self.text) + 8 * (4 * len(self.starts) + 1) + _ENTRY_OVERHEAD

    def overlapping(self, t0: int, t1: int, longest: int) -> tuple[int, int]:
        """[i, j): the entries `overlapping` [t0, t1] (catalog/recordings.py: start <= t1,
        start >= t0 - longest, end > t0)."""
        i = max(bisect_right(self.ends, t0), bisect_left(self.starts, t0 - longest))
        return i, max(i, bisect_right(self.starts, t1))

    def longest_in(self, i: int, j: int) -> int:
        if i == 0 and j == len(self.starts):
            return self.longest
        return max(map(int.__sub__, self.ends[i:j], self.starts[i:j]), default=0)


class EntryCache:
    """LRU of closed recordings' `RecordingEntries` by recording id, each valid for the
    `PlayVersion` it was built at; bounded by `max_bytes`. Thread-safe (requests read the
    catalog in worker threads)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, tuple[PlayVersion, RecordingEntries]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, rec_id: int, version: PlayVersion) -> RecordingEntries | None:
        with self._lock:
            got = self._entries.get(rec_id)
            if got is None:
                return None
            if got[0] != version:  # retention changed it: read it again
                self._drop(rec_id)
                return None
            self._entries.move_to_end(rec_id)
            return got[1]

    def put(self, rec_id: int, version: PlayVersion, entries: RecordingEntries) -> None:
        if entries.size > self.max_bytes:
            return
        with self._lock:
            self._drop(rec_id)
            self._entries[rec_id] = (version, entries)
            self._bytes += entries.size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _drop(self, rec_id: int) -> None:
        got = self._entries.pop(rec_id, None)
        if got is not None:
            self._bytes -= got[1].size

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)


class PlaySource(Protocol):
    """What a time-shift playlist reads (catalog/playback.py)."""

    def play_rows(self, stream: StreamRef, start: datetime, end: datetime) -> list[PlayRow]: ...

    def play_index(self, stream: StreamRef, start: datetime, end: datetime) -> PlayIndex | None: ...

    def play_recording_rows(
        self, ids: Sequence[int]
    ) -> dict[int, tuple[PlayVersion, list[PlayRow]]]: ...


Slice = tuple[RecordingEntries, int, int]


@dataclass(frozen=True, slots=True)
class Plan:
    """A playlist's entries: slices of recordings' entries, or (when those could not be
    used) the rows of play_rows."""

    slices: list[Slice] | None
    rows: list[PlayRow]

    @property
    def empty(self) -> bool:
        return not self.slices if self.slices is not None else not self.rows


def plan(
    source: PlaySource, cache: EntryCache, stream: StreamRef, start: datetime, end: datetime
) -> Plan:
    """The entries of `stream` in its region overlapping [start, end]: what
    `source.play_rows` returns, from the cache where it can be (module docstring)."""
    slices = _cached_slices(source, cache, stream, to_ms(start), to_ms(end), start, end)
    if slices is not None:
        return Plan(slices, [])
    return Plan(None, source.play_rows(stream, start, end))


def _cached_slices(
    source: PlaySource,
    cache: EntryCache,
    stream: StreamRef,
    t0: int,
    t1: int,
    start: datetime,
    end: datetime,
) -> list[Slice] | None:
    index = source.play_index(stream, start, end)
    if index is None:
        return None
    found: dict[int, RecordingEntries] = {}
    missing: list[int] = []
    for rec in index.recordings:
        entries = cache.get(rec.id, rec.version) if rec.version[0] else None
        if entries is None:
            missing.append(rec.id)
        else:
            found[rec.id] = entries
    if missing:
        read = source.play_recording_rows(missing)
        versions = {rec.id: rec.version for rec in index.recordings}
        for rec_id in missing:
            got = read.get(rec_id)
            if got is None or got[0] != versions[rec_id]:
                return None  # changed between the two statements
            built = RecordingEntries.build(got[1])
            if built is None:
                return None
            if got[0][0]:  # closed: its entries stay as they are
                cache.put(rec_id, got[0], built)
            found[rec_id] = built
    total = 0
    slices: list[Slice] = []
    for rec in index.recordings:
        entries = found[rec.id]
        i, j = entries.overlapping(t0, t1, index.longest)
        total += j - i
        if j > i and rec.region == stream.region:
            slices.append((entries, i, j))
    if total != index.segments:
        return None  # a segment outside the recordings' rows: play_rows finds it
    slices.sort(key=lambda s: s[0].starts[s[1]])
    for (a, _ai, aj), (b, bi, _bj) in pairwise(slices):
        if a.starts[aj - 1] >= b.starts[bi]:
            return None  # interleaved recordings: the rows' order decides
    return slices


def render_plan(plan: Plan, spec: TimeShift) -> bytes:
    """The playlist `render_time_shift` writes for the same rows, as bytes."""
    if plan.slices is None:
        return render_time_shift(plan.rows, spec).encode()
    prefix = spec.segment_prefix.encode()
    out = [b""]  # the header, once the longest entry is known
    longest = -1
    for n, (entries, i, j) in enumerate(plan.slices):
        start, end = entries.starts[i], entries.ends[i]
        first = DISCONTINUITY if n else ""
        out.append((first + program_date_time(start) + extinf_line(end - start)).encode())
        out.append(prefix)
        out.append(entries.text[entries.name_at[i] : entries.head_at[j]].replace(_SLOT, prefix))
        longest = max(longest, entries.longest_in(i, j))
    if not spec.event or spec.ended:
        out.append(b"#EXT-X-ENDLIST\n")
    fits = target_duration_for([longest / 1000] if longest >= 0 else [])
    out[0] = header(spec, fits).encode()
    return b"".join(out)
