"""metrics.py's parts on their own: refusal reasons, the storage figure, the timed writes,
the cached query figure, and logs.py's JSON lines."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from liverec.errors import InvalidKeyError, RefusedError
from liverec.logs import JsonFormatter, bind_recording, bind_stream
from liverec.metrics import Metrics, Refreshed, StorageUsage, refusal_reason
from liverec.rtmp.pushauth import check_push_signature, check_stream_name
from liverec.storage import LocalStore


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    raise KeyError(name)


def refusal(fn: Callable[..., object], *args: object) -> RefusedError:
    with pytest.raises(RefusedError) as caught:
        fn(*args)
    return caught.value


def test_refusals_get_a_reason_label_of_their_kind() -> None:
    assert refusal_reason(refusal(check_stream_name, "bad name/")) == "bad_stream_name"
    for query in ({}, {"ts": "x", "sign": "y"}, {"ts": "1", "sign": "0" * 32}):
        error = refusal(check_push_signature, "key", "live", "cam", query)
        assert refusal_reason(error) == "push_auth", error
    assert refusal_reason(RuntimeError("catalog down")) == "internal_error"
    assert refusal_reason(RefusedError("NetStream.Publish.Unauthorized", "the hook said no")) == (
        "webhook"
    )


def test_publish_attempts_count_accepted_and_refused() -> None:
    metrics = Metrics()
    with metrics.publish_attempt():
        pass
    with pytest.raises(RefusedError), metrics.publish_attempt():
        check_stream_name("")
    assert sample(metrics, "liverec_publishes_accepted_total") == 1
    assert sample(metrics, "liverec_publishes_refused_total", reason="bad_stream_name") == 1


def test_segment_puts_are_timed_and_failures_counted(tmp_path: Path) -> None:
    metrics = Metrics()
    store = metrics.timed(LocalStore(tmp_path))
    store.put("na/app/record/live/cam/a_0.ts", b"\x47" * 188, "video/mp2t")
    store.put("na/app/record/live/cam/a.m3u8", b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    with pytest.raises(InvalidKeyError):
        store.put("../outside.ts", b"x", "video/mp2t")
    assert sample(metrics, "liverec_segment_writes_total", result="ok") == 1
    assert sample(metrics, "liverec_segment_writes_total", result="failed") == 1
    assert sample(metrics, "liverec_segment_write_seconds_count") == 2  # playlists apart
    assert store.exists("na/app/record/live/cam/a.m3u8")  # the rest goes to the store


def test_retention_figures_and_the_storage_used_they_move(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one").write_bytes(b"x" * 1000)
    (tmp_path / "a" / "b" / "two").write_bytes(b"y" * 500)
    usage = StorageUsage(tmp_path)
    metrics = Metrics()
    metrics.watch(storage=usage, min_free=123)
    deadline = time.monotonic() + 5
    while usage.used() is None:  # the first walk runs in the background
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert usage.used() == 1500
    usage.added(200)
    metrics.retention_deleted(3, 700)
    assert usage.used() == 1000
    assert sample(metrics, "liverec_retention_deleted_segments_total") == 3
    assert sample(metrics, "liverec_retention_freed_bytes_total") == 700
    assert sample(metrics, "liverec_storage_used_bytes") == 1000
    assert sample(metrics, "liverec_storage_min_free_bytes") == 123
    assert sample(metrics, "liverec_storage_free_bytes") > 0


def test_a_refreshed_figure_is_cached_and_never_holds_the_scrape() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def count() -> int:
        calls.append(1)
        if len(calls) > 1:
            gate.wait(10)
        return 7 * len(calls)

    figure = Refreshed(count, max_age=0.2, first_wait=1.0)
    assert figure.value() == 7
    assert figure.value() == 7
    assert len(calls) == 1  # cached
    time.sleep(0.25)
    began = time.monotonic()
    assert figure.value() == 7  # stale: refreshed in the background, old value answered
    assert time.monotonic() - began < 0.1
    gate.set()
    deadline = time.monotonic() + 5
    while figure.value() != 14:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    def down() -> int:
        raise OSError("catalog down")

    assert Refreshed(down).value() is None


def test_json_lines_carry_the_context_and_extra_fields() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("liverec.test_units")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:

        def in_a_publish() -> None:
            bind_stream("live/cam", "app1")
            bind_recording("record/live/cam/s_1.m3u8")
            log.info("line\nwith a newline")
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed", extra={"segment": 4})

        threading.Thread(target=in_a_publish).start()  # its own context
        time.sleep(0.2)
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "line\nwith a newline"
    assert (first["app_id"], first["stream"]) == ("app1", "live/cam")
    assert first["recording"] == "record/live/cam/s_1.m3u8"
    assert second["segment"] == 4 and "ValueError: boom" in second["exc"]
    assert second["level"] == "ERROR" and second["logger"] == "liverec.test_units"
    assert "stream" not in third and third["level"] == "WARNING"
