"""The retention sweeper: deletes recorded media past its entry point's retention period,
and the oldest media when storage is over its cap (`storage_max_bytes`) or the local disk
under its minimum free space (`storage_min_free`), across all entry points, until under with
MARGIN to spare. Recorded media is HLS segments, MP4 slices and periodic snapshots: the cap
counts all three, and by size they go oldest first together, a WINDOW of time at a time
(in a window, outputs ending in it, then segments ending in it).

One sweeper per region at a time, whatever the number of nodes: a sweep runs only while its
node holds the region's lease in the catalog (renewed at each batch; lost, the sweep stops).
A sweep is batches of at most `batch` segments of one recording, each its own short
transaction (catalog/retention.py says what it locks and why that never stalls a segment
insert for more than one batch).

Catalog first, blobs second, through a durable list (the `retention_trash` table, chosen
over orphan detection because finding orphans means listing storage, which on S3 costs a
call per thousand keys and races with uploads): a batch drops its rows from the catalog and
lists their keys in one transaction; then the playlists of the recordings concerned are
rewritten from the catalog (a closed recording's; an open one's writer rewrites its own,
which is why its blobs are listed due `grace_seconds` later); then the blobs are deleted and
their rows forgotten. A sweep that dies anywhere leaves only listed keys, which the next
sweep (of any node) deletes first.

Clips cut before retention existed (migration 0005) have no hold on what they reference:
the first sweep of each process gives them theirs first, from the times their playlists
give (EXT-X-PROGRAM-DATE-TIME), and deletes nothing until it could.

A rewritten playlist keeps the EXT-X-TARGETDURATION it declared (read back from the stored
playlist; RFC 8216 6.2.1), starts at EXT-X-MEDIA-SEQUENCE = the first seq kept with
EXT-X-DISCONTINUITY-SEQUENCE = the discontinuities that went with the head, so a player
that reloads it sees the same segments under the same numbers."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from liverec.catalog import Catalog, Recording, Segment, from_ms
from liverec.catalog.models import to_ms
from liverec.catalog.retention import Candidate, DeletedNotice
from liverec.catalog.retention_locks import MAX_LOCK_MS
from liverec.catalog.retention_outputs import OUTPUTS_START
from liverec.errors import MediaError, NotFoundError, StorageError
from liverec.media.m3u8 import PLAYLIST_TYPE, SegmentEntry, parse
from liverec.recorder.recovery import playlist_for, recorded_target_duration

log = logging.getLogger(__name__)

# Freed below the cap (or above the minimum free space) by this share of it, so that a
# store at its cap is not swept again at every new segment: 5 % is about an hour and a half
# of a day's recording, and a cheap sweep's worth of deletions.
MARGIN = 0.05
BATCH = 1000  # segments per transaction: about 5-20 ms on SQLite and PostgreSQL
# SQLite has one writer at a time, and a writer waiting for the lock polls it (its busy
# handler sleeps up to 100 ms between tries): back-to-back batches starved the recorder's
# inserts for up to 12 s in bench/retention.py. So on SQLite the sweeper rests PAUSE after
# each PAUSE of work; PostgreSQL locks rows, and a sweep holds none a recorder waits for.
PAUSE = 0.1
# By size, media goes in windows of time, oldest first, each about an eighth of what is to
# be freed at the store's average rate (so a sweep is some eight windows, and a window's
# order is the only order lost), within these bounds: an hour of a 24/7 stream is about
# 900 segments (one batch) and 1-6 MP4 slices. A window that frees nothing (all locked, or
# a gap in the recordings) doubles the next, so years of gaps take few steps.
WINDOW_MS = (1000, 3_600_000)


class BlobStore(Protocol):
    def get(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def delete(self, key: str) -> None: ...


@dataclass
class SweepReport:
    ran: bool = False  # False: another node holds the lease
    segments: int = 0  # segment rows retention dropped
    bytes: int = 0  # their bytes
    recordings_deleted: int = 0
    outputs_deleted: int = 0  # MP4 slices and periodic snapshots (catalog/retention_outputs.py)
    outputs_bytes: int = 0  # their bytes
    blobs_deleted: int = 0  # blobs deleted from storage (segments, playlists, orphans)
    playlists_rewritten: int = 0


class Sweeper:
    """Sweeps one region (blocking calls: run them in a thread). `sweep()` is safe to call
    from several threads: one sweep runs at a time, and a call made while one runs waits
    for it and then sweeps again (a disk that filled meanwhile is seen)."""

    def __init__(
        self,
        catalog: Catalog,
        store: BlobStore,
        *,
        region: str,
        node_id: str,
        clock: Callable[[], datetime],
        max_bytes: int = 0,
        min_free: int = 0,
        free_bytes: Callable[[], int] | None = None,
        batch: int = BATCH,
        grace_seconds: float = 60.0,
        lease_seconds: float = 120.0,
        deleted_notice: DeletedNotice | None = None,
        on_deleted: Callable[[int, int], None] | None = None,
        pause: float | None = None,
    ) -> None:
        self.catalog = catalog
        if pause is None:
            pause = PAUSE if catalog.engine.dialect.name == "sqlite" else 0.0
        self.pause = pause
        self._worked_since = time.monotonic()
        self.store = store
        self.region = region
        self.node_id = node_id
        self.clock = clock
        self.max_bytes = max_bytes
        self.min_free = min_free
        self.free_bytes = free_bytes  # local disk only; None on object storage
        self.batch = batch
        self.grace_seconds = grace_seconds
        self.lease_seconds = lease_seconds
        self.deleted_notice = deleted_notice
        self.on_deleted = on_deleted  # metrics: (segments, bytes), after the blobs are gone
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._clips_held = False  # older clips' holds given (see the module docstring)
        # A test's hook: called after the catalog changed and before blobs are deleted.
        self.before_blobs: Callable[[], None] | None = None

    def sweep_now(self) -> SweepReport:
        """Sweep at once (the disk guard's call when the disk fills; any thread)."""
        return self.sweep()

    def sweep(self) -> SweepReport:
        with self._lock:
            report = SweepReport()
            self._token = self.catalog.take_retention_lease(
                self.region, self.node_id, self.lease_seconds
            )
            if self._token is None:
                return report
            report.ran = True
            self._worked_since = time.monotonic()
            try:
                if not self._clips_held:
                    self._hold_old_clips()  # before anything is deleted
                    self._clips_held = True
                self._empty_trash(report)  # what a sweep that died left
                self._by_age(report)
                self._outputs_by_age(report)
                self._by_size(report)
                if self.before_blobs is not None:
                    self.before_blobs()
                self._empty_trash(report)
            finally:
                token, self._token = self._token, None
                if token is not None:
                    self.catalog.release_retention_lease(self.region, token)
            if report.segments or report.recordings_deleted or report.outputs_deleted:
                log.info(
                    "retention deleted %d segments (%d bytes), %d whole recordings, "
                    "%d MP4 slices and periodic snapshots",
                    report.segments,
                    report.bytes,
                    report.recordings_deleted,
                    report.outputs_deleted,
                )
            if self.on_deleted is not None and (report.segments or report.outputs_deleted):
                self.on_deleted(report.segments, report.bytes + report.outputs_bytes)
            return report

    # -- passes -----------------------------------------------------------------------------

    def _breathe(self) -> None:
        """Rest `pause` after each `pause` of work on end (see PAUSE)."""
        if self.pause > 0 and time.monotonic() - self._worked_since >= self.pause:
            self.stopping.wait(self.pause)
            self._worked_since = time.monotonic()

    def _renew(self) -> bool:
        """Keep the lease; False (stop) when it was lost or the sweeper is stopping."""
        self._breathe()
        if self.stopping.is_set() or self._token is None:
            return False
        self._token = self.catalog.take_retention_lease(
            self.region, self.node_id, self.lease_seconds, self._token
        )
        if self._token is None:
            log.warning("retention lease lost mid-sweep: another node sweeps")
        return self._token is not None

    def _by_age(self, report: SweepReport) -> None:
        after = (-(2**62), 0)
        while self._renew():
            found = self.catalog.expired_recordings(self.region, self.clock(), after=after)
            for cand in found:
                assert cand.cutoff_ms is not None
                if not self._trim(cand, report, cutoff=from_ms(cand.cutoff_ms)):
                    return
            if len(found) < 500:
                return
            after = (found[-1].start_ms, found[-1].id)

    def _outputs_by_age(self, report: SweepReport) -> None:
        while self._renew():
            files, n_bytes = self.catalog.expire_outputs(self.region, self.clock())
            report.outputs_deleted += files
            report.outputs_bytes += n_bytes
            if files < 500:
                return

    def _by_size(self, report: SweepReport) -> None:
        need = self.need()
        if need <= 0:
            return
        log.warning("storage over its limit: retention frees %d bytes", need)
        freed = 0
        oldest = self._oldest_ms()
        if oldest is None:
            return
        now_ms = to_ms(self.clock())
        newest = max(now_ms, self.catalog.newest_media_ms(self.region) or now_ms)
        used = max(1, self.catalog.bytes_used(self.region))
        low, high = WINDOW_MS
        base = min(high, max(low, (now_ms - oldest) * need // used // 8))
        window = base
        cutoff = oldest + window
        while freed < need and self._renew():
            before = freed
            freed += self._outputs_by_size(from_ms(cutoff), need - freed, report)
            if freed < need:
                freed += self._recordings_by_size(cutoff, need - freed, report)
            if freed >= need or self._token is None:
                return
            if cutoff > newest:
                log.error(
                    "retention could free only %d of %d bytes: the rest is locked, "
                    "referenced by clips or being recorded",
                    freed,
                    need,
                )
                return
            window = base if freed > before else window * 2
            # What is left before the cutoff is locked: past it, from the oldest left.
            cutoff = max(cutoff, self._oldest_ms() or cutoff) + window

    def _oldest_ms(self) -> int | None:
        found = [
            self.catalog.oldest_recording_ms(self.region),
            self.catalog.oldest_output_ms(self.region),
        ]
        times = [t for t in found if t is not None]
        return min(times) if times else None

    def _outputs_by_size(self, cutoff: datetime, max_bytes: int, report: SweepReport) -> int:
        """MP4 slices and periodic snapshots up to `cutoff`, oldest first, until `max_bytes`
        are freed; returns the bytes freed."""
        freed = 0
        after = OUTPUTS_START
        while freed < max_bytes:
            done = self.catalog.trim_outputs(
                self.region, cutoff, max_bytes - freed, self.clock(), after=after
            )
            report.outputs_deleted += done.files
            report.outputs_bytes += done.bytes
            freed += done.bytes
            if done.done or not self._renew():
                break
            after = done.after
        return freed

    def _recordings_by_size(self, cutoff_ms: int, max_bytes: int, report: SweepReport) -> int:
        """Segments ending by `cutoff_ms` of the recordings started before it, oldest
        first, until `max_bytes` are freed; returns the bytes freed."""
        freed = 0
        after = (-(2**62), 0)
        while freed < max_bytes:
            found = self.catalog.oldest_recordings(self.region, after=after, before_ms=cutoff_ms)
            for cand in found:
                before = report.bytes
                going = self._trim(
                    cand, report, cutoff=from_ms(cutoff_ms), max_bytes=max_bytes - freed
                )
                freed += report.bytes - before
                if not going or freed >= max_bytes:
                    return freed
            if len(found) < 500:
                break
            after = (found[-1].start_ms, found[-1].id)
        return freed

    def need(self) -> int:
        """Bytes to free now: over the cap down to MARGIN under it, or under the minimum
        free space up to MARGIN over it; 0 when neither limit is passed."""
        need = 0
        if self.max_bytes > 0:
            used = self.catalog.bytes_used(self.region)
            if used > self.max_bytes:
                need = used - int(self.max_bytes * (1 - MARGIN))
        if self.min_free > 0 and self.free_bytes is not None:
            free = self.free_bytes()
            if free < self.min_free:
                need = max(need, int(self.min_free * (1 + MARGIN)) - free)
        return need

    def _trim(
        self,
        cand: Candidate,
        report: SweepReport,
        *,
        cutoff: datetime | None = None,
        max_bytes: int | None = None,
    ) -> bool:
        """Trim one recording batch by batch; False when the sweep must stop."""
        seq = 0
        while True:
            done = self.catalog.trim_recording(
                cand.id,
                cutoff=cutoff,
                max_bytes=max_bytes,
                from_seq=seq,
                limit=self.batch,
                grace_seconds=self.grace_seconds,
                deleted_notice=self.deleted_notice,
                now=self.clock(),
            )
            self._breathe()
            report.segments += done.segments
            report.bytes += done.bytes
            report.recordings_deleted += int(done.recording_deleted)
            if max_bytes is not None:
                max_bytes -= done.bytes
                if max_bytes <= 0:
                    return True
            if done.done:
                return True
            seq = done.next_seq
            if not self._renew():
                return False

    def _hold_old_clips(self) -> None:
        """Give every clip with no hold one on the range its playlist references (a clip
        this region's store does not have is another region's: left to its sweeper). A
        store that fails raises: this sweep deletes nothing, the next tries again."""
        after = (0, "")
        held = 0
        while True:
            found = self.catalog.unheld_clips(self.region, after=after)
            for _, stream, name in found:
                try:
                    text = self.store.get(stream.key(stream.file(name)))
                except NotFoundError:
                    continue
                times = [
                    s.program_date_time
                    for s in _playlist_entries(text)
                    if s.program_date_time is not None
                ]
                if times:
                    # The last segment's start: it overlaps, the one after it does not.
                    self.catalog.hold_clip(stream, name, min(times), max(times))
                else:  # no times to go by: everything of its stream is kept
                    self.catalog.hold_clip(stream, name, from_ms(0), from_ms(MAX_LOCK_MS * 100))
                    log.warning(
                        "clip %s/%s: no times in its playlist, its stream held", stream, name
                    )
                held += 1
            if len(found) < 500:
                break
            after = found[-1][0]
        if held:
            log.warning("retention: %d clips cut before it existed are now held", held)

    # -- blobs ------------------------------------------------------------------------------

    def _empty_trash(self, report: SweepReport) -> None:
        """Rewrite the playlists of the recordings whose blobs are due, then delete the
        blobs, forgetting each batch once its blobs are gone."""
        now = self.clock()
        for rec_id in self.catalog.trash_recordings(now):
            report.playlists_rewritten += int(self._rewrite(rec_id))
        while self._renew():
            items = self.catalog.due_trash(now, self.batch)
            if not items:
                return
            done: list[int] = []
            for item in items:
                try:
                    self.store.delete(item.key)
                except (StorageError, OSError) as exc:
                    log.error("retention could not delete %s (kept listed): %s", item.key, exc)
                    continue
                done.append(item.id)
            self.catalog.forget_trash(done)
            report.blobs_deleted += len(done)
            if len(done) < len(items):
                return  # storage failing: the rest waits for the next sweep

    def _rewrite(self, recording_id: int) -> bool:
        """Rewrite a closed recording's playlist from the catalog (an open one's writer
        rewrites its own); False when there is nothing to rewrite."""
        try:
            rec = self.catalog.get_recording(recording_id)
        except NotFoundError:
            return False  # deleted whole: its playlist is listed to delete
        if rec.state != "closed":
            return False
        segments = self.catalog.segments_of(recording_id)
        if not segments:
            return False
        _, discontinuities = self.catalog.recording_head(recording_id)
        key = rec.stream.key(rec.playlist_key)
        text = playlist_for(
            segments,
            ended=True,
            target_duration=self._target_duration(rec, key, segments),
            discontinuity_sequence=discontinuities,
        )
        self.store.put(key, text.encode(), PLAYLIST_TYPE)
        return True

    def _target_duration(self, rec: Recording, key: str, segments: list[Segment]) -> int:
        """The EXT-X-TARGETDURATION the stored playlist declares (it must not change), else
        the one recovery would declare."""
        try:
            declared = parse(self.store.get(key).decode("utf-8", "replace")).target_duration
        except (NotFoundError, StorageError, MediaError, OSError):
            declared = None
        if declared is not None:
            return declared
        return recorded_target_duration(self.catalog, rec, segments)


def _playlist_entries(data: bytes) -> list[SegmentEntry]:
    """The segments a stored playlist lists (none when it does not parse)."""
    try:
        return list(parse(data.decode("utf-8", "replace")).segments)
    except MediaError:
        return []


def disk_free(path: Path) -> int:
    """Bytes free to liverec's user on the filesystem of `path` (statvfs: microseconds)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def parse_retention(text: str) -> int:
    """A retention period as given on the command line or in the API: `36h`, `7d`, `90m`,
    `3600s` or plain seconds; `0`, `forever` or `none`: keep forever (0). ValueError with a
    message a person can act on otherwise."""
    value = text.strip().lower()
    if value in ("0", "forever", "none", "off"):
        return 0
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    number, unit = (value[:-1], value[-1]) if value[-1:] in units else (value, "s")
    if not number.isdigit():
        raise ValueError(
            f"not a retention period: {text[:40]!r} (say e.g. 36h, 7d, 4w, or 0/forever)"
        )
    seconds = int(number) * units[unit]
    if seconds > 100 * 366 * 86400:
        raise ValueError(f"retention period {text[:40]!r} is over 100 years")
    return seconds


def format_retention(seconds: int) -> str:
    """`7d`, `36h`, `90m`, `45s`; `forever` for 0."""
    if seconds <= 0:
        return "forever"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
