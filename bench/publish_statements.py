"""Catalog transactions and statements per publish of a real `liverec serve`: K real-time
ffmpeg pushes of a few seconds, with every statement the server runs counted by a
sitecustomize (SQLAlchemy's `begin` and `before_cursor_execute` events on every Engine).
Prints the counts per publish (and of connections opened), grouped by statement, beside
those of an idle window as long as the pushes (timers: lease renewal, live controls,
callback delivery), which are not per-publish costs.

    python bench/publish_statements.py [--pushes 10] [--seconds 6] [--database-url URL]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.mediagen import make_media
from support.server import LiverecProcess, start_push

# Runs in the server at startup (its directory is first on PYTHONPATH): counts what every
# Engine runs, and writes the counts to `counts-N.json` whenever the bench creates `dump-N`.
SITECUSTOMIZE = """
import collections, json, os, re, threading
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.engine import Engine
_dir = Path(os.environ["LIVEREC_BENCH_COUNT_DIR"])
_counts = collections.Counter()
_lock = threading.Lock()
_space = re.compile(r"\\s+")

def _note(key):
    with _lock:
        _counts[key] += 1

@event.listens_for(Engine, "begin")
def _begin(conn):
    _note("(transaction)")

@event.listens_for(Engine, "connect")
def _connect(dbapi_connection, record):
    _note("(connection opened)")

@event.listens_for(Engine, "before_cursor_execute")
def _execute(conn, cursor, statement, parameters, context, executemany):
    text = _space.sub(" ", statement).strip()
    if text.upper().startswith("BEGIN"):
        return  # SQLite's own BEGIN (catalog/db.py): counted as the transaction
    _note(text[:90] + (" [many]" if executemany else ""))

def _watch():
    n = 0
    while True:
        request = _dir / f"dump-{n}"
        while not request.exists():
            threading.Event().wait(0.05)
        with _lock:
            data = dict(_counts)
        (_dir / f"counts-{n}.tmp").write_text(json.dumps(data))
        (_dir / f"counts-{n}.tmp").rename(_dir / f"counts-{n}.json")
        n += 1

threading.Thread(target=_watch, daemon=True).start()
"""


def dump(count_dir: Path, n: int) -> collections.Counter[str]:
    (count_dir / f"dump-{n}").touch()
    out = count_dir / f"counts-{n}.json"
    while not out.exists():
        time.sleep(0.05)
    return collections.Counter(json.loads(out.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        media = tmpdir / "push.flv"
        make_media(media, args.seconds, fps=30, gop=60, width=640, height=360, bitrate=800_000)
        count_dir = tmpdir / "counts"
        count_dir.mkdir()
        (count_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {
            "LIVEREC_LOG_LEVEL": "WARNING",
            "LIVEREC_BENCH_COUNT_DIR": str(count_dir),
            "PYTHONPATH": f"{count_dir}:{os.environ.get('PYTHONPATH', '')}",
        }
        if args.database_url:
            env["LIVEREC_DATABASE_URL"] = args.database_url
        srv = LiverecProcess(tmpdir / "data", env=env).start(timeout=180)
        try:
            time.sleep(2.0)
            window = args.seconds + 4.0
            idle0 = dump(count_dir, 0)
            time.sleep(window)
            idle1 = dump(count_dir, 1)
            pushes = [start_push(srv.url(stream=f"s{i}"), media) for i in range(args.pushes)]
            failed = sum(1 for p in pushes if p.wait(args.seconds + 60) != 0)
            time.sleep(4.0)  # the recordings close after the pushes end
            done = dump(count_dir, 2)
        finally:
            srv.terminate()
    idle = idle1 - idle0
    busy = done - idle1
    per = args.pushes
    print(f"{args.pushes} pushes of {args.seconds:g} s ({failed} failed); counts per publish")
    print(f"{'busy':>8} {'idle':>8}  statement (idle: the same window with no push)")
    for key, n in sorted(busy.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{n / per:8.2f} {idle.get(key, 0) / per:8.2f}  {key}")
    total = sum(v for k, v in busy.items() if not k.startswith("("))
    total_idle = sum(v for k, v in idle.items() if not k.startswith("("))
    print(
        f"per publish: {busy['(transaction)'] / per:.1f} transactions, "
        f"{total / per:.1f} statements (idle window: {idle['(transaction)'] / per:.1f}, "
        f"{total_idle / per:.1f}); busy - idle: "
        f"{(busy['(transaction)'] - idle['(transaction)']) / per:.1f} transactions, "
        f"{(total - total_idle) / per:.1f} statements"
    )


if __name__ == "__main__":
    main()
