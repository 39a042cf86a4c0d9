"""A real `liverec serve` process on free ports, and real ffmpeg pushes into it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

READY = re.compile(r"liverec ready: rtmp=(\S+):(\d+) http=(\S+):(\d+)")
FFMPEG = os.environ.get("FFMPEG", "ffmpeg")
APP_ID = "0123456789abcdef0123456789abcdef"
CUSTOMER_ID = "testcustomer"
CUSTOMER_SECRET = "testsecret"


class LiverecProcess:
    def __init__(
        self, data_dir: Path, *, env: dict[str, str] | None = None, args: Sequence[str] = ()
    ) -> None:
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "LIVEREC_APP_ID": APP_ID,
            "LIVEREC_CUSTOMER_ID": CUSTOMER_ID,
            "LIVEREC_CUSTOMER_SECRET": CUSTOMER_SECRET,
            "LIVEREC_LOG_LEVEL": "INFO",
            # Tests and benches start many pushes at once, all from 127.0.0.1: more than the
            # default per-address share of connections not yet publishing (16).
            "LIVEREC_RTMP_MAX_PENDING_PER_IP": "512",
            **(env or {}),
        }
        self.args = list(args)
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.rtmp_port = 0
        self.http_port = 0
        self._ready = threading.Event()

    def start(self, timeout: float = 30.0) -> LiverecProcess:
        self.lines.clear()
        self._ready.clear()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "liverec",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--http",
                "127.0.0.1:0",
                "--rtmp",
                "127.0.0.1:0",
                *self.args,
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
        if not self._ready.is_set():
            self.kill()
            raise RuntimeError("liverec did not start:\n" + self.output)
        return self

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            match = READY.search(line)
            if match:
                self.rtmp_port = int(match.group(2))
                self.http_port = int(match.group(4))
                self._ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def url(self, entry_point: str = "live", stream: str = "cam1", query: str = "") -> str:
        suffix = f"?{query}" if query else ""
        return f"rtmp://127.0.0.1:{self.rtmp_port}/{entry_point}/{stream}{suffix}"

    @property
    def storage(self) -> Path:
        return self.data_dir / "storage" / "na" / APP_ID

    def stream_dir(self, stream: str, entry_point: str = "live") -> Path:
        return self.storage / "record" / entry_point / stream

    def wait_for_log(self, pattern: str, timeout: float = 20.0, start: int = 0) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if regex.search(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r}:\n{self.output}")

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def proc_mb(pid: int, field: str = "VmRSS") -> float:
    """A /proc/PID/status memory figure in MB: VmRSS now, VmHWM the peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def push(
    url: str,
    media: Path,
    *,
    realtime: bool = True,
    extra: Sequence[str] = (),
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Push a file with ffmpeg, as a user would, and wait for it to end."""
    return subprocess.run(
        start_push_args(url, media, realtime=realtime, extra=extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_push_args(
    url: str, media: Path, *, realtime: bool = True, extra: Sequence[str] = ()
) -> list[str]:
    return [
        FFMPEG,
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        *(["-re"] if realtime else []),
        "-i",
        str(media),
        "-c",
        "copy",
        *extra,
        "-f",
        "flv",
        url,
    ]


def start_push(
    url: str, media: Path, *, realtime: bool = True, extra: Sequence[str] = ()
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        start_push_args(url, media, realtime=realtime, extra=extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
