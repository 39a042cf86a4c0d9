"""Ingest benchmark: N concurrent real-time pushes (720p30, 3 Mbit/s, -c copy) into a real
`liverec serve` and, in the same run with the same pushers, into nginx-rtmp with `hls on`.

    python bench/ingest.py                      # N = 1, 20, 60
    python bench/ingest.py 100 200 --seconds 60 --per-pusher 25
    python bench/ingest.py 20 --seconds 20 --servers liverec --liverec-args="--workers 2"
    python bench/ingest.py 100 --seconds 60 --rounds 3  # alternated; each round's ratio, median

Pushers: one ffmpeg per `--per-pusher` streams (the `tee` muxer, `onfail=ignore`): 200
separate ffmpeg processes cannot keep real time on a 2-core machine. Per server it prints:
CPU per stream (% of one core, the whole process tree), the pushers' own CPU, peak RSS of the
tree (and PSS, which counts pages shared by forked workers once), frames lost (video packets
pushed minus those found in the recordings; where they went for the streams that lost any),
bytes stored / bytes ingested, and the per-publish cost: server CPU from the pushes' connect
until every stream has a stored segment, and from the pushers' end until every recording is
closed (liverec: EXT-X-ENDLIST; nginx-rtmp: until its CPU is quiet).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.mediagen import decode_frames, make_media
from support.receiver import free_port
from support.recordings import recordings
from support.server import FFMPEG, LiverecProcess

CLK_TCK = os.sysconf("SC_CLK_TCK")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


# -- processes ---------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """pid and all its descendants (workers, helpers)."""
    out = [pid]
    i = 0
    while i < len(out):
        for task in Path(f"/proc/{out[i]}/task").glob("*"):
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
        i += 1
    return out


def cpu_seconds(pids: int | Iterable[int]) -> float:
    total = 0
    for pid in [pids] if isinstance(pids, int) else pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / CLK_TCK  # utime + stime (+ waited-for children's)


def memory_mb(pids: Iterable[int], field: str) -> float:
    """Sum of a /proc/PID/status field (VmRSS, VmHWM) or, for "Pss", smaps_rollup's."""
    total = 0
    for pid in pids:
        name = "smaps_rollup" if field == "Pss" else "status"
        try:
            lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith(field + ":"):
                total += int(line.split()[1])
    return total / 1024


# -- servers -----------------------------------------------------------------------------


class Server:
    name = ""
    pid = 0

    def url(self, stream: str) -> str:
        raise NotImplementedError

    def stream_dir(self, stream: str) -> Path:
        raise NotImplementedError

    def has_segment(self, stream: str) -> bool:
        return any(self.stream_dir(stream).rglob("*.ts"))

    def closed(self, stream: str) -> bool:
        raise NotImplementedError

    def segments(self, stream: str) -> list[Path]:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Liverec(Server):
    name = "liverec"

    def __init__(self, data: Path, args: list[str]) -> None:
        self.srv = LiverecProcess(data, env={"LIVEREC_LOG_LEVEL": "WARNING"}, args=args).start()
        assert self.srv.proc is not None
        self.pid = self.srv.proc.pid

    def url(self, stream: str) -> str:
        return self.srv.url(stream=stream)

    def stream_dir(self, stream: str) -> Path:
        return self.srv.stream_dir(stream)

    def closed(self, stream: str) -> bool:
        recs = recordings(self.stream_dir(stream))
        return bool(recs) and all(r.playlist.endlist for r in recs)

    def segments(self, stream: str) -> list[Path]:
        return [
            r.path.parent / s.uri
            for r in recordings(self.stream_dir(stream))
            for s in r.playlist.segments
        ]

    def stop(self) -> None:
        self.srv.terminate()


class Nginx(Server):
    name = "nginx-rtmp"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        (root / "hls").mkdir(parents=True)
        conf = root / "nginx.conf"
        conf.write_text(
            f"load_module {RTMP_MODULE};\n"
            "user root root;\n"
            f"daemon off;\nmaster_process on;\nworker_processes 1;\npid {root}/nginx.pid;\n"
            f"error_log {root}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "rtmp { server {\n"
            f"  listen 127.0.0.1:{self.port};\n  chunk_size 4096;\n"
            "  application live {\n    live on;\n    hls on;\n"
            f"    hls_path {root}/hls;\n    hls_nested on;\n    hls_fragment 2s;\n"
            "    hls_playlist_length 1h;\n    hls_cleanup off;\n  }\n} }\n"
        )
        self.proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(root)])
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError((root / "error.log").read_text())
            time.sleep(0.05)

    def url(self, stream: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{stream}"

    def stream_dir(self, stream: str) -> Path:
        return self.root / "hls" / stream

    def closed(self, stream: str) -> bool:
        return True  # nginx-rtmp closes its last fragment at unpublish; see quiet()

    def segments(self, stream: str) -> list[Path]:
        return sorted(self.stream_dir(stream).glob("*.ts"), key=lambda p: int(p.stem))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(30)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- pushers -----------------------------------------------------------------------------


def start_pushers(urls: list[str], media: Path, per: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(0, len(urls), per):
        group = urls[i : i + per]
        head = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", str(media)]
        if len(group) == 1:
            out = ["-c", "copy", "-f", "flv", group[0]]
        else:
            targets = "|".join(f"[f=flv:onfail=ignore]{u}" for u in group)
            out = ["-map", "0", "-c", "copy", "-f", "tee", targets]
        procs.append(subprocess.Popen([*head, *out], stderr=subprocess.PIPE))
    return procs


# -- measuring ---------------------------------------------------------------------------


@dataclass
class Lost:
    start: int = 0
    middle: int = 0
    end: int = 0


def video_packets(path: Path) -> int:
    try:
        with av.open(str(path)) as c:
            return sum(1 for p in c.demux(video=0) if p.size)
    except av.error.FFmpegError:
        return 0


def where_lost(segments: list[Path], total: int, folder: Path) -> Lost:
    """Which frame numbers are missing, as start / middle / end of the push."""
    joined = folder / "joined.ts"
    with joined.open("wb") as out:
        for seg in segments:
            out.write(seg.read_bytes())
    try:
        seen = {n for _, n in decode_frames(str(joined))} if segments else set()
    except av.error.FFmpegError:
        seen = set()
    joined.unlink()
    missing = sorted(set(range(total)) - seen)
    lost = Lost()
    first, last = (min(seen), max(seen)) if seen else (total, -1)
    for n in missing:
        if n < first:
            lost.start += 1
        elif n > last:
            lost.end += 1
        else:
            lost.middle += 1
    return lost


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def run(
    server: Server, n: int, media: Path, frames: int, seconds: float, per: int, tmp: Path
) -> float:
    """One round of n pushes into `server`; prints its figures, returns its CPU per stream
    (% of a core)."""
    streams = [f"s{i}" for i in range(n)]
    time.sleep(1.0)
    pids = tree(server.pid)
    idle_rss = memory_mb(pids, "VmRSS")
    idle_pss = memory_mb(pids, "Pss")
    cpu0 = cpu_seconds(tree(server.pid))
    start_each = {p: cpu_seconds(p) for p in tree(server.pid)}
    t0 = time.monotonic()
    pushers = start_pushers([server.url(s) for s in streams], media, per)
    push_pids = [p.pid for p in pushers]
    wait_until(lambda: all(server.has_segment(s) for s in streams), 30)
    start_cpu = cpu_seconds(tree(server.pid)) - cpu0
    start_wall = time.monotonic() - t0
    mid_cpu0, mid_t0 = cpu_seconds(tree(server.pid)), time.monotonic()
    peak_pss = 0.0
    push_cpu = 0.0
    while any(p.poll() is None for p in pushers):
        pids = tree(server.pid)
        peak_pss = max(peak_pss, memory_mb(pids, "Pss"))
        push_cpu = max(push_cpu, cpu_seconds(p for p in push_pids))
        time.sleep(1.0)
    failed = sum(p.wait() != 0 for p in pushers)
    wall = time.monotonic() - t0
    cpu_end0 = cpu_seconds(tree(server.pid))
    t_end = time.monotonic()
    if isinstance(server, Liverec):
        wait_until(lambda: all(server.closed(s) for s in streams), 60)
    else:  # quiet: no CPU tick in 1 s
        last = cpu_end0
        while True:
            time.sleep(1.0)
            now = cpu_seconds(tree(server.pid))
            if now == last:
                break
            last = now
    end_cpu = cpu_seconds(tree(server.pid)) - cpu_end0
    end_wall = time.monotonic() - t_end
    # What publishing adds on top of steady recording: the window's CPU minus the rate seen
    # between the first segments and the pushers' end.
    rate = (cpu_end0 - mid_cpu0) / max(t_end - mid_t0, 1e-3)
    start_extra = start_cpu - rate * start_wall
    cpu = cpu_end0 - cpu0
    split = ""
    if len(tree(server.pid)) > 1:  # workers: what each process of the tree used
        split = "  by process: " + " ".join(
            f"{p}={100 * (cpu_seconds(p) - start_each.get(p, 0.0)) / wall:.1f}%"
            for p in tree(server.pid)
        )
    pids = tree(server.pid)
    peak = sum(memory_mb([p], "VmHWM") for p in pids)
    lost_total = 0
    lost = Lost()
    lossy = 0
    stored = 0
    for s in streams:
        segs = server.segments(s)
        stored += sum(p.stat().st_size for p in segs)
        got = sum(video_packets(p) for p in segs)
        if got < frames:
            lost_total += frames - got
            lossy += 1
            where = where_lost(segs, frames, tmp)
            lost.start += where.start
            lost.middle += where.middle
            lost.end += where.end
    server.stop()
    ingested = media.stat().st_size * n
    print(
        f"{server.name:10s} N={n:3d}  cpu/stream={100 * cpu / wall / n:5.2f}% of a core  "
        f"total={100 * cpu / wall:6.1f}%  pushers={100 * push_cpu / wall:6.1f}%  "
        f"wall={wall:5.1f}s{split}\n"
        f"{'':10s}        RSS idle {idle_rss:6.1f} MB, peak {peak:6.1f} MB "
        f"({(peak - idle_rss) / n:.2f} MB/stream); "
        f"PSS idle {idle_pss:6.1f}, peak {peak_pss:6.1f} MB "
        f"({(peak_pss - idle_pss) / n:.2f} MB/stream)\n"
        f"{'':10s}        frames lost={lost_total} in {lossy} streams "
        f"(start {lost.start}, middle {lost.middle}, end {lost.end})  failed pushers={failed}  "
        f"stored/ingested={stored / ingested:.3f}\n"
        f"{'':10s}        per publish: connect->first segments {1000 * start_cpu / n:6.1f} ms CPU "
        f"({start_wall:.1f} s; {1000 * start_extra / n:.1f} ms over steady recording); "
        f"end->closed {1000 * end_cpu / n:6.1f} ms CPU ({end_wall:.1f} s)",
        flush=True,
    )
    return 100 * cpu / wall / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("counts", nargs="*", type=int, default=[1, 20, 60])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--per-pusher", type=int, default=25, help="streams per ffmpeg")
    parser.add_argument("--servers", default="nginx,liverec", help="comma-separated")
    parser.add_argument("--liverec-args", default="", help="extra `liverec serve` arguments")
    parser.add_argument("--workers", type=int, default=1, help="liverec serve --workers N")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="servers alternated this many times per N; with both, the ratio of each round "
        "and their median (a noisy machine moves both servers' figures, not their ratio)",
    )
    args = parser.parse_args()
    servers = args.servers.split(",")
    if "nginx" in servers and not Path(RTMP_MODULE).exists():
        print("nginx-rtmp not installed (apt install nginx libnginx-mod-rtmp): skipped")
        servers.remove("nginx")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        media = make_media(
            tmp / "720p.flv",
            args.seconds,
            fps=30,
            gop=60,
            width=1280,
            height=720,
            bitrate=3_000_000,
        )
        frames = video_packets(media)
        size = media.stat().st_size
        print(
            f"media: 1280x720 30 fps, {args.seconds:.0f} s, "
            f"{size * 8 / args.seconds / 1e6:.2f} Mbit/s, {frames} frames; "
            f"{args.per_pusher} streams per pusher",
            flush=True,
        )
        for n in args.counts:
            ratios: list[float] = []
            for _ in range(args.rounds):
                cpu: dict[str, float] = {}
                for name in servers:
                    root = Path(tempfile.mkdtemp(dir=tmp))
                    server: Server
                    if name == "nginx":
                        server = Nginx(root)
                    else:
                        extra = args.liverec_args.split()
                        if args.workers > 1:
                            extra += ["--workers", str(args.workers)]
                        server = Liverec(root / "data", extra)
                    cpu[name] = run(server, n, media, frames, args.seconds, args.per_pusher, tmp)
                    shutil.rmtree(root)
                if cpu.get("nginx") and "liverec" in cpu:
                    ratios.append(cpu["liverec"] / cpu["nginx"])
            if len(ratios) > 1:
                each = ", ".join(f"{r:.2f}" for r in ratios)
                print(
                    f"N={n}: liverec / nginx-rtmp CPU per stream by round {each}; "
                    f"median {statistics.median(ratios):.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
