"""The API process's view of its ingest workers' metrics (liverec/workers.py): each worker
serves its own figures on a signed internal route; the API process parses them and sums the
ingest families (WORKER_FAMILIES) into its own /metrics, names and labels unchanged."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

# What an ingest worker counts and its API process sums (family names, as collected).
WORKER_FAMILIES = frozenset(
    {
        "liverec_live_publishes",
        "liverec_publishes_accepted",
        "liverec_publishes_refused",
        "liverec_rtmp_connections_refused",
        "liverec_refusals",  # bad push signatures are refused by the worker
        "liverec_ingest_bytes",
        "liverec_ingest_frames",
        "liverec_segments_stored",
        "liverec_segment_writes",
        "liverec_segment_write_seconds",
        "liverec_segments_dropped",
        "liverec_recorder_backlog_segments",
        "liverec_stream_ingest_bytes",
        "liverec_stream_ingest_frames",
        "liverec_stream_recorder_backlog_segments",
    }
)
_MONOTONIC = ("counter", "histogram")

# A sample's identity: its name and its labels, sorted.
_Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class _Family:
    kind: str
    doc: str
    values: dict[_Key, float]


class WorkerFigures:
    """The WORKER_FAMILIES of the ingest workers, summed. `fetch` (blocking) returns one
    (identity, Prometheus text or None when it did not answer) per current worker; an
    identity names one process (its pid): a restarted worker is a new one. Its last
    figures stand in for a worker that did not answer; those of a worker gone are kept in
    the counters' sums (gauges drop them)."""

    def __init__(self, fetch: Callable[[], list[tuple[str, str | None]]]) -> None:
        self.fetch = fetch
        self._last: dict[str, dict[str, _Family]] = {}
        self._retired: dict[str, _Family] = {}
        self._lock = threading.Lock()

    def sums(self) -> dict[str, _Family]:
        answers = self.fetch()
        with self._lock:
            current = {identity for identity, _ in answers}
            for identity, text in answers:
                if text is not None:
                    self._last[identity] = _parse(text)
            for gone in set(self._last) - current:
                for name, family in self._last.pop(gone).items():
                    if family.kind in _MONOTONIC:
                        _add(self._retired, name, family)
            total: dict[str, _Family] = {}
            for name, family in self._retired.items():
                _add(total, name, family)
            for families in self._last.values():
                for name, family in families.items():
                    _add(total, name, family)
            return total


def _parse(text: str) -> dict[str, _Family]:
    out: dict[str, _Family] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in WORKER_FAMILIES:
            continue  # `_created` gauges among them: a sum of start times means nothing
        values = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for sample in family.samples
            if not sample.name.endswith("_created")
        }
        out[family.name] = _Family(family.type, family.documentation, values)
    return out


def _add(into: dict[str, _Family], name: str, family: _Family) -> None:
    target = into.setdefault(name, _Family(family.kind, family.doc, {}))
    for key, value in family.values.items():
        target.values[key] = target.values.get(key, 0.0) + value


class MergedRegistry:
    """A registry's families with the workers' sums added in (for generate_latest)."""

    def __init__(self, registry: CollectorRegistry, sums: dict[str, _Family]) -> None:
        self.registry = registry
        self.sums = sums

    def collect(self) -> Iterable[Metric]:
        sums = dict(self.sums)
        for family in self.registry.collect():
            extra = sums.pop(family.name, None)
            if extra is None:
                yield family
                continue
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            left = dict(extra.values)
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                merged.add_sample(sample.name, sample.labels, sample.value + left.pop(key, 0.0))
            for (name, labels), value in left.items():
                merged.add_sample(name, dict(labels), value)
            yield merged
        for name, extra in sums.items():  # a family the API process never had
            alone = Metric(name, extra.doc, extra.kind)
            for (sample_name, labels), value in extra.values.items():
                alone.add_sample(sample_name, dict(labels), value)
            yield alone
