"""The server's /metrics in Prometheus' text format: engine gauges and counters read from
`Engine.stats()` at scrape time, and request histograms (time to first token, inter-token
latency, end-to-end latency) observed by the handlers."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Engine stats exported as gauges (name in stats, metric suffix, help).
_GAUGES = [
    ("num_running", "requests_running", "sequences in the running batch"),
    ("num_waiting", "requests_waiting_engine", "sequences waiting for KV blocks or a batch slot"),
    ("kv_utilization", "kv_cache_usage_ratio", "fraction of KV blocks in use"),
    ("num_blocks_used", "kv_blocks_used", "KV blocks in use"),
    ("num_blocks_total", "kv_blocks_total", "KV blocks in the pool"),
]
_COUNTERS = [
    ("num_preemptions", "preemptions", "sequences preempted (recomputed later) for lack of KV"),
    ("num_steps", "engine_steps", "engine steps run"),
    ("prefix_cache_hits", "prefix_cache_hits", "prompt blocks found in the prefix cache"),
    ("prefix_cache_queries", "prefix_cache_queries", "prompt blocks looked up"),
]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _EngineCollector:
    def __init__(self, stats: Callable[[], dict], queued: Callable[[], int]) -> None:
        self._stats = stats
        self._queued = queued

    def collect(self):
        s = self._stats()
        for key, name, doc in _GAUGES:
            g = GaugeMetricFamily(f"longbow_{name}", doc)
            g.add_metric([], float(s.get(key, 0)))
            yield g
        for key, name, doc in _COUNTERS:
            c = CounterMetricFamily(f"longbow_{name}", doc)
            c.add_metric([], float(s.get(key, 0)))
            yield c
        q = GaugeMetricFamily("longbow_requests_in_flight", "requests admitted and not finished")
        q.add_metric([], float(self._queued()))
        yield q


class ServerMetrics:
    """One registry per server (tests run several in one process)."""

    def __init__(self, stats: Callable[[], dict], in_flight: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(stats, in_flight))
        r = self.registry
        self.ttft = Histogram(
            "longbow_time_to_first_token_seconds",
            "request arrival to its first token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "longbow_inter_token_latency_seconds",
            "gap between consecutive tokens of one sample",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "longbow_request_latency_seconds",
            "request arrival to its last token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "longbow_requests",
            "requests answered, by endpoint and HTTP status",
            ["endpoint", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter("longbow_prompt_tokens", "prompt tokens", registry=r)
        self.generation_tokens = Counter(
            "longbow_generation_tokens", "generated tokens", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
