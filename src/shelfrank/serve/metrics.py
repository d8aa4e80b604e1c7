"""Prometheus metrics of one service instance (its own registry, so several apps can live in
one process, as in the tests). Names and labels are listed in docs/serving.md."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # the *_created series double the output and say nothing here

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("shelfrank_http_requests", "HTTP requests by endpoint, method and status",
                                ("endpoint", "method", "status"), registry=r)
        self.latency = Histogram("shelfrank_http_request_seconds", "HTTP request latency by endpoint",
                                 ("endpoint",), buckets=LATENCY_BUCKETS, registry=r)
        self.stage = Histogram("shelfrank_page_stage_seconds", "Page build time per pipeline stage (and total)",
                               ("stage",), buckets=STAGE_BUCKETS, registry=r)
        self.pages = Counter("shelfrank_pages", "Pages served by pipeline and whether it was the fallback",
                             ("pipeline", "fallback"), registry=r)
        self.fallbacks = Counter("shelfrank_fallback_pages", "Fallback pages by reason",
                                 ("reason",), registry=r)
        self.rules = Counter("shelfrank_rule_actions", "Items or collections removed or demoted by rules",
                             ("rule",), registry=r)
        self.events = Counter("shelfrank_events", "Events posted, by outcome (accepted, rejected, duplicate)",
                              ("outcome",), registry=r)
        self.writes = Counter("shelfrank_state_changes", "Accepted changes by kind and origin (local, replica)",
                              ("kind", "origin"), registry=r)
        self.model = Info("shelfrank_model", "The model version serving pages", registry=r)
        self.model_swaps = Counter("shelfrank_model_swaps", "Model swaps by outcome", ("outcome",), registry=r)
        self.ready = Gauge("shelfrank_ready", "1 when the service answers pages", registry=r)
        self.replay_seconds = Gauge("shelfrank_startup_replay_seconds",
                                    "Time to replay the intake log (and the Redis stream) at startup", registry=r)
        self.replayed = Gauge("shelfrank_startup_replayed_changes", "Changes replayed at startup", registry=r)
        self.engine_seconds = Gauge("shelfrank_startup_engine_seconds",
                                    "Time to build the engine from the store at startup", registry=r)
        self.page_cache = Counter("shelfrank_page_cache", "Pages by segment-cache outcome: hit, miss (a visitor "
                                  "without history, built and cached), bypass (a user with history)",
                                  ("outcome",), registry=r)
        self.sync_errors = Counter("shelfrank_replica_sync_errors", "Failed reads or writes of the shared stream",
                                   ("operation",), registry=r)

    def observe_page(self, pipeline: str, fallback: bool, reason: str, timings_ms: Mapping[str, float],
                     rule_counts: Mapping[str, int], new_user: bool = False) -> None:
        self.pages.labels(pipeline or "", "true" if fallback else "false").inc()
        if not fallback:
            self.page_cache.labels("hit" if "cache" in timings_ms else "miss" if new_user else "bypass").inc()
        if fallback:
            self.fallbacks.labels(_reason_label(reason)).inc()
        for stage, ms in timings_ms.items():
            self.stage.labels(str(stage)).observe(float(ms) / 1000.0)
        for rule, count in rule_counts.items():
            if count:
                self.rules.labels(str(rule)).inc(int(count))

    def set_model(self, version: str) -> None:
        self.model.info({"version": version or ""})

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _reason_label(reason: str) -> str:
    """A bounded label: the reason's kind, not its free text."""
    head = (reason or "unknown").split(":", 1)[0].strip().lower().replace(" ", "_")
    return head[:40] or "unknown"
