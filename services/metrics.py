"""Prometheus metrics, exposed at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTED_SOCKETS = Gauge(
    "supportchat_connected_sockets", "Socket.IO connections open on this process"
)
MESSAGES_STORED = Counter("supportchat_messages_stored_total", "Messages committed to the database")
ACKS = Counter(
    "supportchat_acks_total",
    "Acknowledgements of socket events, by event and result",
    ["event", "result"],
)
DELIVERY_SECONDS = Histogram(
    "supportchat_delivery_seconds",
    "From a mensaje_privado's arrival (queue wait included) to handing the stored message to "
    "its recipients' sockets",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PUBSUB_ROUNDTRIP_SECONDS = Histogram(
    "supportchat_pubsub_roundtrip_seconds",
    "A message this process publishes on Redis, back through its own listener (health checks)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.0),
)
HTTP_REQUESTS = Counter(
    "supportchat_http_requests_total", "HTTP requests, by route and status", ["route", "status"]
)
RELAY_LAG_SECONDS = Gauge(
    "supportchat_relay_lag_seconds",
    "How far this process's broker listener is behind (its own probe's round trip)",
)
RELAY_HELD = Counter(
    "supportchat_relay_held_total",
    "Messages held because a process's broker listener lagged, by outcome (held, refused)",
    ["outcome"],
)
# Support work takes minutes to days: buckets from half a minute to a week.
WORK_BUCKETS = (30, 60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400, 7 * 86400)
FIRST_RESPONSE_SECONDS = Histogram(
    "supportchat_first_response_seconds",
    "From a conversation's opening to the team's first reply (not a note)",
    buckets=WORK_BUCKETS,
)
RESOLUTION_SECONDS = Histogram(
    "supportchat_resolution_seconds",
    "From a conversation's opening to its resolution",
    buckets=WORK_BUCKETS,
)
