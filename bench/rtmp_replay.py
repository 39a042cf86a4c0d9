"""The per-frame path of one publish, in-process and repeatable: a real ffmpeg push
(720p30, 3 Mbit/s, -c copy, in real time) is captured once on its way into a real
`liverec serve` (client bytes and the size of each read the server would have made), then
replayed through what the server runs for it: the handshake, the chunk reader fed as
rtmp/server.py feeds it, the session, and the recorder (segmenter, TS muxer, HLS writer
with a real LocalStore and a real SQLite catalog). No socket, no admission.

Prints CPU per media second (% of one core; all threads, so the writer's fsyncs and
catalog commits count) split into the wire (handshake, chunks, session) and all of it.
For instruction counts of the replays alone (CALLGRIND=1 switches instrumentation on and
off around them with callgrind_control):
    CALLGRIND=1 valgrind --tool=callgrind --instr-atstart=no $(python -c 'import sys;
    print(sys.executable)') bench/rtmp_replay.py --repeat 1 --only socket --gap 0.02

    python bench/rtmp_replay.py [--repeat 5] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.layout import StreamRef
from liverec.recorder import Recorders
from liverec.rtmp.chunk import ChunkReader
from liverec.rtmp.connection import MESSAGES_PER_YIELD
from liverec.rtmp.handshake import ServerHandshake
from liverec.rtmp.messages import AUDIO, VIDEO
from liverec.rtmp.session import MediaSink, PublishRequest, Session
from liverec.storage import LocalStore
from support.mediagen import make_media
from support.server import APP_ID, LiverecProcess, start_push


async def _capture(media: Path, out: Path) -> None:
    reads: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        srv = LiverecProcess(Path(tmp) / "data", env={"LIVEREC_LOG_LEVEL": "WARNING"}).start()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bool) -> None:
            while data := await src.read(64 * 1024):
                if keep:
                    reads.append(data)
                dst.write(data)
                await dst.drain()
            dst.close()

        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection("127.0.0.1", srv.rtmp_port)
            await asyncio.gather(pipe(r, uw, True), pipe(ur, w, False))

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proc = start_push(f"rtmp://127.0.0.1:{port}/live/cap", media)
        while proc.poll() is None:
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        server.close()
        srv.terminate()
    out.write_bytes(pickle.dumps(reads))


class _Handler:
    def __init__(self, recorders: Recorders) -> None:
        self.recorders = recorders

    async def start_publish(self, request: PublishRequest) -> MediaSink:
        return self.recorders.start(
            StreamRef(APP_ID, "na", request.app, request.stream_name),
            target_duration=TARGET_DURATION,
            max_file_duration=3600.0,
        )


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class _Nothing:
    async def start_publish(self, request: PublishRequest) -> MediaSink:
        return _NullSink()


class _NullSink:
    def on_metadata(self, metadata: dict[str, Any]) -> None:
        pass

    def on_audio(self, timestamp: int, payload: bytes) -> None:
        pass

    def on_video(self, timestamp: int, payload: bytes) -> None:
        pass

    async def close(self) -> None:
        pass


async def _replay(reads: list[bytes], handler: Any) -> None:
    session = Session(handler, "127.0.0.1:1")
    handshake = ServerHandshake()
    chunks = ChunkReader()
    for data in reads:
        if not handshake.done:
            handshake.feed(data)
            if not handshake.done:
                continue
            data = handshake.leftover
        end = 0
        view = memoryview(data)
        while end < len(view):  # fed as rtmp/connection.py feeds it
            msgs = chunks.feed(view[end:], MESSAGES_PER_YIELD)
            end += chunks.consumed
            for msg in msgs:
                if session.publishing and msg.type_id in _MEDIA:  # the read callback's path
                    session.media(msg.type_id, msg.timestamp, msg.payload)
                else:
                    await session.handle(msg)
    await session.end_publish()


_MEDIA = (AUDIO, VIDEO)
TARGET_DURATION = 4.0  # --target-duration
FSYNC = True  # --fsync off: LocalStore(fsync=False) and SQLite synchronous=NORMAL


def _run(reads: list[bytes], full: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        handler: Any = _Nothing()
        if full:
            engine = make_engine(f"sqlite:///{tmp}/catalog.db", fsync=FSYNC)
            migrate(engine)
            catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
            catalog.create_project(APP_ID)
            store = LocalStore(Path(tmp) / "storage", fsync=FSYNC)
            handler = _Handler(
                Recorders(catalog, store, node_id="n", lease_seconds=3600, clock=_Clock())
            )
        _instrument(True)
        t0 = time.process_time()
        asyncio.run(_replay(reads, handler))
        cpu = time.process_time() - t0
        _instrument(False)
        return cpu


def _instrument(on: bool) -> None:
    """Under callgrind (CALLGRIND=1), count instructions only between on and off."""
    if os.environ.get("CALLGRIND"):
        import subprocess

        state = "on" if on else "off"
        subprocess.run(
            ["callgrind_control", "-i", state, str(os.getpid())],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def _client(port: int, reads: list[bytes], gap: float) -> None:
    """Send the capture read by read, `gap` seconds apart, reading the answers."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    for data in reads:
        sock.setblocking(True)
        sock.sendall(data)
        sock.setblocking(False)
        try:
            while sock.recv(65536):
                pass
        except BlockingIOError:
            pass
        time.sleep(gap)
    sock.close()


async def _over_socket(reads: list[bytes], handler: Any, gap: float) -> float:
    import multiprocessing

    from liverec.rtmp.server import RtmpServer

    server = RtmpServer(handler)
    await server.start("127.0.0.1", 0)
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_client, args=(server.port, reads, gap))
    _instrument(True)
    t0 = time.process_time()
    proc.start()
    while proc.is_alive():
        await asyncio.sleep(0.05)
    await server.close()
    cpu = time.process_time() - t0
    _instrument(False)
    return cpu


def _run_socket(reads: list[bytes], gap: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/catalog.db", fsync=FSYNC)
        migrate(engine)
        catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
        catalog.create_project(APP_ID)
        store = LocalStore(Path(tmp) / "storage", fsync=FSYNC)
        handler = _Handler(
            Recorders(catalog, store, node_id="n", lease_seconds=3600, clock=_Clock())
        )
        return asyncio.run(_over_socket(reads, handler, gap))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=("wire", "full", "socket"), default=None)
    parser.add_argument("--gap", type=float, default=0.001, help="socket: s between reads")
    parser.add_argument("--fsync", choices=("full", "off"), default="full")
    parser.add_argument("--target-duration", type=float, default=4.0, help="of the segments")
    args = parser.parse_args()
    global FSYNC, TARGET_DURATION
    TARGET_DURATION = args.target_duration
    FSYNC = args.fsync == "full"
    base = Path(tempfile.gettempdir())
    capture = base / f"liverec-rtmp-capture-{args.seconds:g}s.pickle"
    if not capture.exists():
        media = base / f"liverec-prof-720p-{args.seconds:g}s.flv"
        if not media.exists():
            make_media(
                media, args.seconds, fps=30, gop=60, width=1280, height=720, bitrate=3_000_000
            )
        asyncio.run(_capture(media, capture))
    reads: list[bytes] = pickle.loads(capture.read_bytes())
    size = sum(map(len, reads))
    print(f"capture: {len(reads)} reads, {size / 1e6:.2f} MB, {args.seconds:g} s of media")
    for name, full in (("wire (handshake, chunks, session)", False), ("full (+ recorder)", True)):
        if args.only is not None and args.only != ("full" if full else "wire"):
            continue
        best = min(_run(reads, full) for _ in range(args.repeat))
        print(f"{name}: {best * 1000:7.1f} ms CPU = {best / args.seconds * 100:.3f} % of a core")
    if args.only in (None, "socket"):
        best = min(_run_socket(reads, args.gap) for _ in range(args.repeat))
        print(
            f"socket (+ asyncio server, {args.gap * 1000:g} ms between reads): "
            f"{best * 1000:7.1f} ms CPU = {best / args.seconds * 100:.3f} % of a core"
        )


if __name__ == "__main__":
    main()
