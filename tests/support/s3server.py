"""A real S3-compatible server for tests: moto's standalone server, in a subprocess on
127.0.0.1 and a port the OS picks. Nothing here patches boto3; clients talk HTTP to it.

    server = S3Server().start()
    create_bucket(server.endpoint_url, "media")
    env = {**os.environ, **server.env()}      # for a `liverec serve` subprocess
    ...
    server.stop()
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import threading
import time
from types import TracebackType
from typing import Any

# Dummy credentials and a fixed region, and nothing that could reach out of the machine:
# no EC2 metadata lookups, no profile or config file of the user's.
TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
# Variables that would override TEST_AWS_ENV or send requests elsewhere.
UNSET_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)

_LISTENING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")


class S3Server:
    """moto's S3-compatible server as a child process. `start()` waits until it answers."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self._listening = threading.Event()

    @property
    def endpoint_url(self) -> str:
        if not self.port:
            raise RuntimeError("the S3 server is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> S3Server:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._listening.clear()
        self.port = 0
        self.lines.clear()
        env = {k: v for k, v in os.environ.items() if k not in UNSET_AWS_ENV}
        env.update(TEST_AWS_ENV)
        # Port 0: the OS picks a free port and werkzeug logs it; no race for the port.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("moto server did not start:\n" + self.output)
        return self

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        # Always drain the pipe: moto logs every request and would block on a full pipe.
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match and not self._listening.is_set():
                self.port = int(match.group(1))
                self._listening.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        """Stop the server (its objects are gone); start() again gets a new, empty one."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()

    def env(self) -> dict[str, str]:
        """The environment a process (a `liverec serve`) needs to use this server."""
        return {**TEST_AWS_ENV, "LIVEREC_S3_ENDPOINT_URL": self.endpoint_url}

    def client(self) -> Any:
        return make_client(self.endpoint_url)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def make_client(endpoint_url: str) -> Any:
    """A plain boto3 S3 client for the test server, with explicit dummy credentials."""
    import boto3  # type: ignore[import-untyped,unused-ignore]
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=TEST_AWS_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=TEST_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 0}),
    )


def create_bucket(endpoint_url: str, name: str) -> None:
    """Create bucket `name` on the server (no error if it is there already)."""
    client = make_client(endpoint_url)
    try:
        client.create_bucket(Bucket=name)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    finally:
        client.close()
