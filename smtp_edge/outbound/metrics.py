"""Prometheus metrics of the delivery worker (served by ``prometheus_client``)."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

DELIVERIES = Counter(
    "tidings_outbound_deliveries", "Recipient outcomes of delivery attempts and bounces",
    ["result"])     # delivered, deferred, failed, expired, bounced
ATTEMPT_SECONDS = Histogram(
    "tidings_outbound_attempt_seconds", "One SMTP attempt for one destination domain, DNS included",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900))
