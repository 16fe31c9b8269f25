"""Durations as operators write them (`30s`, `5m`, `2h`, `5d`, or plain seconds) and lists of
them (`2m,5m,10m`): the queue lifetime and the retry schedule read the same way everywhere."""
from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError naming the text when it is not a positive duration."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (e.g. 30s, 5m, 2h, 5d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return seconds


def parse_durations(text: str) -> tuple[float, ...]:
    """A comma-separated list of durations, at least one."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise ValueError("an empty list of durations")
    return tuple(parse_duration(p) for p in parts)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 300 -> 5m, 90 -> 90s, 432000 -> 5d."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
