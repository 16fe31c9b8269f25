"""Prometheus metrics of the IMAP edge (served by ``prometheus_client``)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge

COMMANDS = Counter("tidings_imap_commands", "IMAP commands answered, by command and status", ["command", "status"])
SESSIONS = Counter("tidings_imap_sessions", "IMAP connections accepted")
OPEN = Gauge("tidings_imap_open_sessions", "IMAP connections open now")
