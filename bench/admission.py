"""CPU of one publish's admission and release (Admission.admit + release: the project,
entry point, ban, webhook, live lease, recording switch, outputs and snapshot settings)
on a real SQLite catalog, in-process. `--profile` adds cProfile's view of the catalog calls.
For instruction counts of the timed publishes alone (CALLGRIND=1 switches instrumentation
on and off around one round with callgrind_control; divide by --count):
    CALLGRIND=1 valgrind --tool=callgrind --instr-atstart=no $(python -c 'import sys;
    print(sys.executable)') bench/admission.py --count 100

    python bench/admission.py [--count 300] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from liverec.admission import Admission
from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.events.webhook import PublishWebhook
from liverec.rtmp.session import PublishRequest
from liverec.storage import LocalStore

APP = "0123456789abcdef0123456789abcdef"


def _instrument(on: bool) -> None:
    """Under callgrind (CALLGRIND=1), count instructions only between on and off."""
    if os.environ.get("CALLGRIND"):
        state = "on" if on else "off"
        subprocess.run(
            ["callgrind_control", "-i", state, str(os.getpid())],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/c.db")
        migrate(engine)
        catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
        catalog.create_project(APP, is_default=True)
        catalog.create_entry_point(APP, "live")
        admission = Admission(
            catalog,
            LocalStore(Path(tmp) / "s"),
            node_id="n",
            region="na",
            lease_seconds=30,
            clock=lambda: datetime.now(UTC),
            gate=PublishWebhook(catalog),
        )

        def once(i: int) -> None:
            request = PublishRequest(
                app="live",
                stream_name=f"s{i % 100}",
                query={},
                tc_url="rtmp://h/live",
                host="h",
                peer="1.2.3.4:5",
            )
            admission.release(admission.admit(request).stream)

        for i in range(50):
            once(i)
        if os.environ.get("CALLGRIND"):
            _instrument(True)
            for i in range(args.count):
                once(i)
            _instrument(False)
            return
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for i in range(args.count):
                once(i)
            best = min(best, (time.process_time() - t0) / args.count)
        print(f"admit + release: {best * 1e6:.0f} us CPU (best of 3 x {args.count})")
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for i in range(args.count):
                once(i)
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats("liverec", 30)
        engine.dispose()


if __name__ == "__main__":
    main()
