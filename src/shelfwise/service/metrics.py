"""Prometheus metrics of one app: request counts, latencies, model version."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "shelfwise_requests_total",
            "HTTP requests by route, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shelfwise_request_seconds",
            "Time to answer a request, by route.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=self.registry,
        )
        self.model = Gauge(
            "shelfwise_model_info", "The model being served (value 1).", ["model", "version"], registry=self.registry
        )
        self.items = Gauge("shelfwise_catalog_items", "Items in the catalog.", registry=self.registry)
        self.events = Counter("shelfwise_events_total", "Events recorded.", registry=self.registry)
        self.reloads = Counter("shelfwise_model_reloads_total", "Model hot swaps.", registry=self.registry)

    def set_model(self, name: str, version: str) -> None:
        self.model.clear()
        self.model.labels(model=name, version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
