"""CPU of one publish's admission and release (Admission.admit + release: the project,
entry point, ban, webhook, live lease, recording switch, outputs and snapshot settings)
on a real SQLite catalog, in-process. `--publish`: all of one publish's catalog work, as a
real push of one segment makes it (admit, the publish row with its callbacks, its media,
the recording's start, segment, playlist heads and end, the publish's end with its last
quality point, release), by the same calls; `--callbacks` subscribes the project to every
callback, so they are enqueued too. `--profile` adds cProfile's view of the catalog calls.
For instruction counts of the timed publishes alone (CALLGRIND=1 switches instrumentation
on and off around one round with callgrind_control; divide by --count):
    CALLGRIND=1 valgrind --tool=callgrind --instr-atstart=no $(python -c 'import sys;
    print(sys.executable)') bench/admission.py --count 100

    python bench/admission.py [--count 300] [--publish [--callbacks]] [--profile]
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
from liverec.events import FlsNotices
from liverec.events.notices import media_info_notice
from liverec.events.webhook import PublishWebhook
from liverec.recorder import RecordingEnded, RecordingStarted, SegmentStored
from liverec.recorder.catalog_writer import CatalogWriter, SegmentBatches
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


NOTICES = FlsNotices("10.0.0.1", "na")


def publish(admission: Admission, request: PublishRequest, i: int) -> None:
    """The catalog calls of one publish that records one segment, in the order a real push
    makes them (publishing.py, recorder/catalog_writer.py, recorder/hls.py)."""
    catalog = admission.catalog
    admitted = admission.admit(request)
    stream, now = admitted.stream, datetime.now(UTC)
    started = NOTICES.publish_started(stream, domain="h", client_ip="1.2.3.4")
    publish_id = catalog.start_publish(
        stream,
        node_id="n",
        client_ip="1.2.3.4",
        domain="h",
        start=now,
        node_ip="10.0.0.1",
        notices=[started],
        stream_id=admitted.stream_id,
    )
    info = media_info_notice(
        stream,
        domain="h",
        video_codec="H264",
        audio_codec="AAC",
        fps=30.0,
        video_rate=None,
        width=1280,
        height=720,
    )
    catalog.set_publish_media(
        publish_id,
        video_codec="H264",
        audio_codec="AAC",
        width=1280,
        height=720,
        fps=30.0,
        notices=[info],
    )
    journal = CatalogWriter(
        catalog,
        node_id="n",
        lease_seconds=30,
        close_notice=NOTICES.recording_closed,
        batches=BATCHES[0],
        stream_id=admitted.stream_id,
    )
    path = stream.recording(f"{i:016x}", now)
    journal(RecordingStarted(path))
    journal(SegmentStored(path, 0, path.segment(0), now, 4.0, 1000, False, None))
    journal.head(path.playlist)  # the playlist written after the segment
    journal.head(path.playlist)  # and at the end
    journal(RecordingEnded(path, now, 1))
    ended = NOTICES.publish_ended(stream, domain="h", client_ip="1.2.3.4")
    catalog.end_publish(publish_id, now, [ended], (now, 3_000_000, 30.0))
    admission.release(stream)


BATCHES: list[SegmentBatches] = []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--publish", action="store_true", help="all of a publish's catalog work")
    parser.add_argument("--callbacks", action="store_true", help="with every callback on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/c.db")
        migrate(engine)
        catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
        BATCHES.append(SegmentBatches(catalog))
        catalog.create_project(APP, is_default=True)
        catalog.create_entry_point(APP, "live")
        if args.callbacks:
            catalog.set_callback_settings(
                APP, url="http://127.0.0.1:9/", secret="s", event_types=[1, 2, 11, 101]
            )
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
            if not args.publish:
                admission.release(admission.admit(request).stream)
                return
            publish(admission, request, i)

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
        what = "a publish's catalog work" if args.publish else "admit + release"
        print(f"{what}: {best * 1e6:.0f} us CPU (best of 3 x {args.count})")
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
