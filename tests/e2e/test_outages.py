"""Outages of what a node depends on, mid-push, on a real `liverec serve` over PostgreSQL
and an S3-compatible server (moto on loopback): the S3 server paused (SIGSTOP: it hangs, as
a stuck object store does) and the catalog database refusing every connection. Frames
pushed against frames decoded through the API afterwards: none lost; and while the outage
lasts, the API answers within bounded time saying which dependency failed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from liverec.catalog import SecretBox
from support.api import base_path, client, z
from support.mediagen import decode_frames, make_media
from support.pg import PG_ADMIN_URL, PgServer
from support.s3server import S3Server, create_bucket
from support.server import LiverecProcess, start_push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25
SECONDS = 16
BASE = base_path()
STORAGE_TIMEOUT = 2.0


class Node:
    def __init__(self, root: Path) -> None:
        self.pg = PgServer(PG_ADMIN_URL)
        self.db_url = self.pg.create()
        self.db = make_url(self.db_url).database
        self.s3 = S3Server().start()
        create_bucket(self.s3.endpoint_url, "liverec")
        self.srv = LiverecProcess(
            root / "node",
            env={
                **self.s3.env(),
                "LIVEREC_DATABASE_URL": self.db_url,
                "LIVEREC_STORAGE_URL": "s3://liverec/media",
                "LIVEREC_SECRET_KEY": SecretBox.generate_key(),
                "LIVEREC_STORAGE_TIMEOUT": str(STORAGE_TIMEOUT),
            },
        ).start()

    def catalog_down(self) -> None:
        """No connection to the catalog's database is allowed, and those open are cut."""
        with self.pg.admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{self.db}" ALLOW_CONNECTIONS false')
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{self.db}' AND pid <> pg_backend_pid()"
            )

    def catalog_up(self) -> None:
        with self.pg.admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{self.db}" ALLOW_CONNECTIONS true')

    def s3_signal(self, sig: signal.Signals) -> None:
        assert self.s3.proc is not None
        os.kill(self.s3.proc.pid, sig)

    def stop(self) -> None:
        self.catalog_up()
        self.s3_signal(signal.SIGCONT)
        self.srv.terminate()
        self.s3.stop()
        self.pg.drop(self.db_url)
        self.pg.admin.dispose()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    n = Node(tmp_path_factory.mktemp("outage"))
    yield n
    n.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_media(tmp_path_factory.mktemp("media") / "av.flv", SECONDS, fps=FPS, gop=FPS)


def wait_until(pred: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def recordings(http: httpx.Client, stream: str) -> list[dict[str, Any]]:
    resp = http.get(
        BASE + "/preview_list",
        params={
            "start_time": z(datetime.now(UTC) - timedelta(minutes=10)),
            "end_time": z(datetime.now(UTC)),
            "stream_name": stream,
        },
    )
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["list"]
    return items


def ended_frames(http: httpx.Client, stream: str) -> list[int]:
    """The frame numbers of the stream's one recording, once it has ended, decoded from its
    playlist and segments as served by the API."""
    [item] = wait_until(lambda: recordings(http, stream))
    deadline = time.monotonic() + 30
    while "ENDLIST" not in httpx.get(item["url"]).text:
        assert time.monotonic() < deadline, "the recording did not end"
        time.sleep(0.2)
    return [n for _, n in decode_frames(item["url"])]


def test_s3_hanging_mid_push_loses_no_frame(node: Node, media: Path) -> None:
    with client(node.srv) as http:
        publisher = start_push(node.srv.url(stream="s3cam"), media)
        [item] = wait_until(lambda: recordings(http, "s3cam"))  # a segment is stored
        node.s3_signal(signal.SIGSTOP)
        try:
            time.sleep(1.0)
            # The API does not hang on the store: a timeout, saying so, in bounded time.
            asked = time.monotonic()
            resp = httpx.get(item["url"], timeout=30)
            took = time.monotonic() - asked
            assert resp.status_code == 504, resp.text
            assert "storage" in resp.json()["message"], resp.text
            assert took < 2 * STORAGE_TIMEOUT, took
            time.sleep(max(0.0, 10 - took))  # past a segment put's timeout: it spools
        finally:
            node.s3_signal(signal.SIGCONT)
        assert publisher.wait(60) == 0
        assert ended_frames(http, "s3cam") == list(range(SECONDS * FPS))
    assert "spooling" in node.srv.output, node.srv.output  # through the spool, and said so


def test_catalog_outage_mid_push_loses_no_frame(node: Node, media: Path) -> None:
    with client(node.srv) as http:
        publisher = start_push(node.srv.url(stream="pgcam"), media)
        wait_until(lambda: recordings(http, "pgcam"))
        node.catalog_down()
        try:
            time.sleep(1.0)
            asked = time.monotonic()
            resp = http.get(
                BASE + "/preview_list",
                params={"start_time": z(datetime.now(UTC)), "end_time": z(datetime.now(UTC))}
                | {"stream_name": "pgcam"},
            )
            took = time.monotonic() - asked
            assert resp.status_code in (503, 504), resp.text + node.srv.output[-6000:]
            assert "catalog" in resp.json()["message"], resp.text
            assert took < 15, took
            time.sleep(max(0.0, 8 - took))
        finally:
            node.catalog_up()
        assert publisher.wait(60) == 0
        assert ended_frames(http, "pgcam") == list(range(SECONDS * FPS))
