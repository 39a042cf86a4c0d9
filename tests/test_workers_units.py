"""Ingest workers without processes: the setting, each worker's settings, the shared RTMP
port, and the API process's sums of its workers' metrics (metrics.WorkerFigures)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from liverec.cli import build_parser
from liverec.config import load_settings
from liverec.errors import ConfigError
from liverec.metrics import Metrics, WorkerFigures
from liverec.workers import reserve_port, worker_settings

BASE = "0123456789abcdef0123456789abcdef"


def test_workers_setting_from_command_line_env_and_file(tmp_path: Path) -> None:
    assert load_settings({}, env={}).workers == 1
    toml = tmp_path / "liverec.toml"
    toml.write_text("[liverec]\nworkers = 2\n")
    assert load_settings({"config": str(toml)}, env={}).workers == 2
    env = {"LIVEREC_CONFIG": str(toml), "LIVEREC_WORKERS": "3"}
    assert load_settings({}, env=env).workers == 3
    assert load_settings({"workers": "4"}, env=env).workers == 4
    for bad in ("0", "65", "two"):
        with pytest.raises(ConfigError, match="workers"):
            load_settings({"workers": bad}, env={})


def test_serve_takes_workers_and_other_commands_do_not() -> None:
    parser = build_parser()
    assert parser.parse_args(["serve", "--workers", "2"]).workers == "2"
    with pytest.raises(SystemExit):
        parser.parse_args(["migrate", "--workers", "2"])


def test_each_worker_is_a_node_on_the_shared_rtmp_port() -> None:
    settings = load_settings({"rtmp": "127.0.0.1:0", "http": "0.0.0.0:8080"}, env={})
    one = worker_settings(settings, BASE, 1, 41935)
    assert one.node_id == f"{BASE}-w1"
    assert one.rtmp_addr == ("127.0.0.1", 41935)
    assert one.http_addr == ("0.0.0.0", 0)  # a private port, on the API's interface
    assert one.workers == 1
    v6 = load_settings({"rtmp": "[::1]:0", "http": "[::1]:0"}, env={})
    assert worker_settings(v6, BASE, 0, 41935).rtmp_addr == ("::1", 41935)
    with pytest.raises(ConfigError, match="too long"):
        worker_settings(settings, "n" * 62, 1, 41935)


def test_the_reserved_port_takes_no_connection_and_workers_share_it() -> None:
    reserved = reserve_port("127.0.0.1", 0)
    port = reserved.getsockname()[1]
    listeners = []
    try:
        for _ in range(2):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(16)
            sock.settimeout(0.2)
            listeners.append(sock)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        accepted = 0
        for sock in listeners:
            while True:
                try:
                    sock.accept()[0].close()
                except TimeoutError:
                    break
                accepted += 1
        assert accepted == len(clients)  # none went to the reserving socket
        for c in clients:
            c.close()
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))  # one without SO_REUSEPORT is kept out
    finally:
        reserved.close()
        for sock in listeners:
            sock.close()


def test_a_port_another_server_holds_is_refused() -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that shares
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        with pytest.raises(ConfigError, match="cannot bind the RTMP address"):
            reserve_port("127.0.0.1", other.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def one(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


class Workers:
    def __init__(self) -> None:
        self.metrics = {"w0:10": Metrics(), "w1:11": Metrics()}
        self.silent: set[str] = set()

    def fetch(self) -> list[tuple[str, str | None]]:
        return [
            (name, None if name in self.silent else m.render().decode())
            for name, m in self.metrics.items()
        ]


def test_the_api_process_sums_its_workers_ingest_figures() -> None:
    workers = Workers()
    w0, w1 = workers.metrics["w0:10"], workers.metrics["w1:11"]
    api = Metrics()
    api.workers = WorkerFigures(workers.fetch)
    api.refused("auth_failed")  # the API process's own
    for m, n in ((w0, 2), (w1, 3)):
        for _ in range(n):
            with m.publish_attempt():
                pass
        m.segment_write(0.02, ok=True)
    w1.publishes_refused.labels("stream_busy").inc()
    w0.refused("push_bad_signature")
    text = api.render().decode()
    assert one(text, "liverec_publishes_accepted_total") == 5
    assert one(text, "liverec_publishes_refused_total", reason="stream_busy") == 1
    assert one(text, "liverec_segment_writes_total", result="ok") == 2
    assert one(text, "liverec_segment_write_seconds_count") == 2
    assert one(text, "liverec_segment_write_seconds_bucket", le="0.025") == 2
    assert one(text, "liverec_refusals_total", reason="auth_failed") == 1
    assert one(text, "liverec_refusals_total", reason="push_bad_signature") == 1
    assert one(text, "liverec_build_info", version=next(iter(_versions(text)))) == 1
    # Each family once: a valid exposition.
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names))


def _versions(text: str) -> set[str]:
    return {dict(labels)["version"] for name, labels in samples(text) if name.endswith("info")}


def test_a_worker_gone_keeps_its_counts_and_a_silent_one_its_last() -> None:
    workers = Workers()
    api = Metrics()
    api.workers = WorkerFigures(workers.fetch)
    workers.metrics["w0:10"].publishes_accepted.inc(4)
    workers.metrics["w1:11"].publishes_accepted.inc(1)
    assert one(api.render().decode(), "liverec_publishes_accepted_total") == 5
    workers.silent.add("w1:11")  # did not answer this scrape: its last figures stand
    workers.metrics["w1:11"].publishes_accepted.inc(10)
    assert one(api.render().decode(), "liverec_publishes_accepted_total") == 5
    # w0 killed and restarted (a new pid, counting from 0): the sum never goes back.
    del workers.metrics["w0:10"]
    workers.metrics["w0:12"] = Metrics()
    workers.metrics["w0:12"].publishes_accepted.inc(1)
    workers.silent.clear()
    assert one(api.render().decode(), "liverec_publishes_accepted_total") == 4 + 11 + 1


def test_without_workers_the_scrape_is_the_registry_alone() -> None:
    m = Metrics()
    m.publishes_accepted.inc()
    assert one(m.render().decode(), "liverec_publishes_accepted_total") == 1
