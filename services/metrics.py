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

# Support work takes seconds to weeks: 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 4, 8, 12 h, 1, 2,
# 3, 7, 14, 30 days. Observed where the conversation events are recorded (the opening's
# first reply, its resolution), once per event, on the process that records it.
SUPPORT_BUCKETS = (
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    43200.0,
    86400.0,
    172800.0,
    259200.0,
    604800.0,
    1209600.0,
    2592000.0,
)
FIRST_RESPONSE_SECONDS = Histogram(
    "supportchat_first_response_seconds",
    "From a conversation's opening (a user's first message, or one reopening it) to the first "
    "admin reply after it that is not a note",
    buckets=SUPPORT_BUCKETS,
)
RESOLUTION_SECONDS = Histogram(
    "supportchat_resolution_seconds",
    "From a conversation's opening to its resolution (resolutions without an opening to "
    "measure from are not observed)",
    buckets=SUPPORT_BUCKETS,
)
