"""Prometheus metrics of the SMTP edge (served by ``prometheus_client``).

Every series carries ``listener``: ``mx`` (port 2525) or ``submission`` (2587).
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

SESSIONS = Counter(
    "tidings_smtp_sessions", "SMTP connections accepted", ["listener"])
ACCEPTED = Counter(
    "tidings_smtp_messages_accepted", "Messages answered 250 after DATA (durable)", ["listener"])
REJECTIONS = Counter(
    "tidings_smtp_rejections", "4xx/5xx replies sent, by reply code",
    ["listener", "code", "enhanced"])
DELIVERY_SECONDS = Histogram(
    "tidings_smtp_delivery_seconds", "Time for the router to make a message durable",
    ["listener", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
