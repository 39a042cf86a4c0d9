"""Synthetic catalogs for the benchmarks, built in seconds by bulk inserts.

Going through Catalog.create_recording / add_segment costs one write transaction per row
(minutes for 43,200 segments on PostgreSQL), so the rows go in with executemany INSERTs on
the catalog's own schema tables. What the catalog's write path keeps besides the rows is
kept here too, so its queries behave as on a catalog filled by the recorder:
- each recording's playlist name is taken in the stream folder (`files`, kind recording);
- `recordings.segment_count` and `end_ms`, state closed;
- the stream's `max_recording_ms` / `max_segment_ms`, which bound the time-range queries
  (see liverec/catalog/recordings.py), raised to the longest recording and segment added.

Two shapes, one per benchmark:
- add_day_recording: one 24 h recording of 43,200 segments of 2 s (clips; bench/clip.py);
- add_many_recordings: 10,000 closed recordings of one stream, 5-55 min each with 5 s to
  10 min gaps between them (~8 months; preview_list). Each has one catalogued segment, its
  first: preview_list reads recordings only and lists those with a segment.
No media exists for either; the benches that use them read no media."""

from __future__ import annotations

import random
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, create_engine, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from liverec.catalog import Catalog, SecretBox, from_ms, make_engine, migrate, to_ms
from liverec.catalog.db import write_transaction
from liverec.catalog.schema import files, projects, recordings, segments, streams
from liverec.layout import StreamRef

APP = "0123456789abcdef0123456789abcdef"
EP = "live"
REGION = "na"
NODE = "bench"
DAY_SEGMENTS = 43_200
DAY_SEGMENT_S = 2.0
MANY_RECORDINGS = 10_000
MANY_SEGMENT_S = 4.0
_BATCH = 5_000  # rows per executemany: bounded memory, few round trips


@contextmanager
def scratch_database(server_url: str = "") -> Iterator[str]:
    """The URL of an empty database that is gone afterwards. "": a SQLite file in a temporary
    folder. A PostgreSQL URL names the server and a database to issue CREATE / DROP DATABASE
    from (`postgres`), never written into: a `liverec_bench_<hex>` database is created beside
    it and dropped with FORCE at the end."""
    if not server_url:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/catalog.db"
        return
    admin_url = make_url(server_url)
    if admin_url.get_backend_name() != "postgresql":
        raise SystemExit(f"--database-url: a postgresql+psycopg:// URL, not {server_url!r}")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"liverec_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def open_catalog(url: str) -> Catalog:
    """A Catalog on `url` (an empty or liverec database), migrated to head."""
    engine = make_engine(url)
    migrate(engine)
    return Catalog(engine, SecretBox(SecretBox.generate_key()))


def add_day_recording(
    catalog: Catalog,
    app_id: str,
    entry_point: str,
    stream_name: str,
    start: datetime,
    *,
    count: int = DAY_SEGMENTS,
    segment_s: float = DAY_SEGMENT_S,
    session_id: str = "day",
) -> int:
    """One closed recording of `count` back-to-back segments of `segment_s` seconds from
    `start` (the project must exist). Returns the recording's id."""
    step = round(segment_s * 1000)
    t0 = to_ms(start)
    stream = StreamRef(app_id, REGION, entry_point, stream_name)
    base = stream.recording(session_id, from_ms(t0)).playlist.removesuffix(".m3u8")
    sid = _stream_id(catalog, app_id, entry_point, stream_name)
    with write_transaction(catalog.engine) as conn:
        (rid,) = _insert_recordings(conn, sid, [(session_id, base, t0, t0 + count * step, count)])
        rows = (
            {
                "recording_id": rid,
                "stream_id": sid,
                "seq": n,
                "key": f"{base}_{n}.ts",
                "start_ms": t0 + n * step,
                "end_ms": t0 + (n + 1) * step,
                "duration": segment_s,
                "size": 750_000,
                "discontinuity": False,
            }
            for n in range(count)
        )
        _insert_batched(conn, segments, rows)
        _raise_bounds(conn, sid, count * step, step)
    return rid


def add_many_recordings(
    catalog: Catalog,
    app_id: str,
    entry_point: str,
    stream_name: str,
    start: datetime,
    *,
    count: int = MANY_RECORDINGS,
    seed: int = 1,
) -> tuple[datetime, datetime]:
    """`count` closed recordings of one stream from `start` on, each with one segment (the
    project must exist). Returns (first start, last end)."""
    rng = random.Random(seed)
    stream = StreamRef(app_id, REGION, entry_point, stream_name)
    step = round(MANY_SEGMENT_S * 1000)
    specs: list[tuple[str, str, int, int, int]] = []
    t = to_ms(start)
    longest = 0
    for i in range(count):
        # Whole segments, as the recorder cuts them.
        length = step * rng.randint(5 * 60_000 // step, 55 * 60_000 // step)
        session = f"s{i:06d}"
        base = stream.recording(session, from_ms(t)).playlist.removesuffix(".m3u8")
        specs.append((session, base, t, t + length, 1))
        longest = max(longest, length)
        t += length + rng.randint(5_000, 600_000)
    sid = _stream_id(catalog, app_id, entry_point, stream_name)
    with write_transaction(catalog.engine) as conn:
        ids = _insert_recordings(conn, sid, specs)
        rows = (
            {
                "recording_id": rid,
                "stream_id": sid,
                "seq": 0,
                "key": f"{base}_0.ts",
                "start_ms": t0,
                "end_ms": t0 + step,
                "duration": MANY_SEGMENT_S,
                "size": 1_500_000,
                "discontinuity": False,
            }
            for rid, (_, base, t0, _, _) in zip(ids, specs, strict=True)
        )
        _insert_batched(conn, segments, rows)
        _raise_bounds(conn, sid, longest, step)
    return from_ms(specs[0][2]), from_ms(specs[-1][3])


def _stream_id(catalog: Catalog, app_id: str, entry_point: str, stream_name: str) -> int:
    # The public way to make a stream folder's row (None: follow the entry point's switch);
    # it needs the entry point, so create it when the project has none of that name.
    if entry_point not in {ep.name for ep in catalog.list_entry_points(app_id)}:
        catalog.create_entry_point(app_id, entry_point)
    catalog.set_stream_recording(StreamRef(app_id, "na", entry_point, stream_name), None)
    with catalog.engine.connect() as conn:
        sid = conn.execute(
            select(streams.c.id)
            .join(projects, projects.c.id == streams.c.project_id)
            .where(
                projects.c.app_id == app_id,
                streams.c.entry_point == entry_point,
                streams.c.name == stream_name,
            )
        ).scalar_one()
    return int(sid)


def _insert_recordings(
    conn: Connection, sid: int, specs: list[tuple[str, str, int, int, int]]
) -> list[int]:
    """Closed recordings (session, key base, start_ms, end_ms, segment count) of stream
    `sid`, their playlist names taken; returns their ids in the order given."""
    rows = (
        {
            "stream_id": sid,
            "region": REGION,
            "session_id": session,
            "playlist_key": f"{base}.m3u8",
            "start_ms": t0,
            "end_ms": t1,
            "state": "closed",
            "node_id": NODE,
            "lease_ms": 30_000,
            "lease_expires_ms": t1,
            "segment_count": n,
            "created_ms": t0,
        }
        for session, base, t0, t1, n in specs
    )
    _insert_batched(conn, recordings, rows)
    by_session = {
        session: rid
        for session, rid in conn.execute(
            select(recordings.c.session_id, recordings.c.id).where(recordings.c.stream_id == sid)
        )
    }
    ids = [int(by_session[session]) for session, *_ in specs]
    names = (
        {
            "stream_id": sid,
            "file_name": f"{base.rsplit('/', 1)[-1]}.m3u8",
            "kind": "recording",
            "recording_id": rid,
            "created_ms": t0,
        }
        for rid, (_, base, t0, _, _) in zip(ids, specs, strict=True)
    )
    _insert_batched(conn, files, names)
    return ids


def _insert_batched(conn: Connection, table: Any, rows: Any) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == _BATCH:
            conn.execute(insert(table), batch)
            batch = []
    if batch:
        conn.execute(insert(table), batch)


def _raise_bounds(conn: Connection, sid: int, recording_ms: int, segment_ms: int) -> None:
    """What add_segment / close_recording keep: the longest recording and segment."""
    old_rec, old_seg = conn.execute(
        select(streams.c.max_recording_ms, streams.c.max_segment_ms).where(streams.c.id == sid)
    ).one()
    conn.execute(
        update(streams)
        .where(streams.c.id == sid)
        .values(
            max_recording_ms=max(old_rec, recording_ms),
            max_segment_ms=max(old_seg, segment_ms),
        )
    )


def one_hour_windows(
    first: datetime, last: datetime, count: int, seed: int = 2
) -> list[tuple[datetime, datetime]]:
    """`count` random 1-hour windows inside [first, last], at millisecond precision."""
    rng = random.Random(seed)
    span_ms = to_ms(last) - to_ms(first) - 3_600_000
    out = []
    for _ in range(count):
        t0 = first + timedelta(milliseconds=rng.randrange(span_ms))
        out.append((t0, t0 + timedelta(hours=1)))
    return out
