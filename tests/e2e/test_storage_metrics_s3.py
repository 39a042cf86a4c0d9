"""End to end: on object storage (moto's S3 server) a real `liverec serve` reports the
bytes it uses from the catalog's sizes, once a real push is recorded: the same figure as
the recorded media in the bucket, and no free-space figure (S3 has none)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.mediagen import make_media
from support.s3server import S3Server, create_bucket
from support.server import LiverecProcess, push

pytestmark = pytest.mark.slow  # a real `liverec serve`, a real ffmpeg push, an S3 server

TOKEN = "metrics-t0ken"


def storage_samples(port: int) -> dict[str, float]:
    resp = httpx.get(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return {
        s.name: s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
        if s.name.startswith("liverec_storage_")
    }


def test_s3_storage_used_comes_from_the_catalog_and_free_is_left_out(tmp_path: Path) -> None:
    media = make_media(tmp_path / "av.flv", 4, fps=25, gop=25)
    with S3Server() as s3:
        create_bucket(s3.endpoint_url, "liverec")
        srv = LiverecProcess(
            tmp_path / "data",
            env={
                **s3.env(),
                "LIVEREC_STORAGE_URL": "s3://liverec/media",
                "LIVEREC_METRICS_TOKEN": TOKEN,
            },
        ).start()
        try:
            assert storage_samples(srv.http_port).get("liverec_storage_used_bytes") == 0
            push(srv.url(stream="cam"), media)

            def media_bytes() -> int:
                listed = s3.client().list_objects_v2(Bucket="liverec", Prefix="media/")
                return sum(
                    int(o["Size"]) for o in listed.get("Contents", []) if o["Key"].endswith(".ts")
                )

            deadline = time.monotonic() + 30
            while True:  # the figure is refreshed at most every 5 s
                samples = storage_samples(srv.http_port)
                stored = media_bytes()
                if stored and samples.get("liverec_storage_used_bytes") == stored:
                    break
                assert time.monotonic() < deadline, (samples, stored)
                time.sleep(0.5)
            assert "liverec_storage_free_bytes" not in samples
            assert "liverec_storage_size_bytes" not in samples
        finally:
            srv.kill()
