"""The incremental framer: bytes as they arrive to whole commands.

A command is one or more lines; a line that ends in a literal marker (``{n}``,
``{n+}``, ``~{n}``) is followed by exactly n bytes of data and then by the rest of the
command. ``{n}`` is synchronizing: the client waits for a continuation request
(``+ Ready``) before sending the data, so the framer says so; ``{n+}`` (LITERAL+, RFC 7888)
is not. A line ends at LF (a CR before it is dropped: bare-LF clients exist).

Limits: a line over ``max_line``, a literal over ``max_literal`` or a command over
``max_command`` is an error. The framer stays in step with the client afterwards: it
skips the rest of the overlong line, the data of a non-synchronizing literal that came
anyway, and the rest of that command, so the next command is read from its start.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from imap_edge.protocol.errors import LineTooLong, LiteralTooLarge, ParseError

_MARKER = re.compile(rb"~?\{([0-9]{1,20})(\+?)\}\Z")
_TAG = re.compile(rb"([^\x00-\x20\x7f-\xff(){%*\"\\+]+) ")
_TAIL = 32  # what is kept of a skipped line: enough to see a literal marker at its end


@dataclass(frozen=True)
class Limits:
    """Size limits of one command; the defaults follow Dovecot (64 KiB lines)."""

    max_line: int = 64 * 1024
    max_literal: int = 64 * 1024 * 1024
    max_command: int = 80 * 1024 * 1024
    max_depth: int = 32  # nesting of parenthesized lists and search keys


@dataclass(frozen=True)
class Frame:
    """One whole command: its lines joined by CRLF, each literal's data after its marker."""

    raw: bytes


@dataclass(frozen=True)
class Continue:
    """A synchronizing literal was accepted: the server must send ``+ Ready`` now."""

    size: int


def tag_of(data: bytes) -> str | None:
    """The tag at the start of a command, if it has one followed by a space."""
    match = _TAG.match(data)
    return match.group(1).decode("ascii") if match else None


class Framer:
    """Feed bytes with ``feed``; ``next`` returns a ``Frame``, a ``Continue``, a ``ParseError``
    or ``None`` (nothing complete yet: feed more)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._size = 0
        self._literal = 0  # data bytes of the current literal still to come
        self._skip = False  # dropping the rest of the current command
        self._pending: ParseError | None = None  # said once the dropped command ends
        self._tail = b""  # the end of a line being skipped
        self._tag: str | None = None
        self.line_mode = False  # the next line is returned whole (AUTHENTICATE data, DONE)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def buffered(self) -> bytes:
        """Bytes received and not yet framed (after STARTTLS there must be none)."""
        return bytes(self._buf)

    @property
    def idle(self) -> bool:
        """True between commands: nothing of a command has been read."""
        return not self._parts and not self._literal and not self._skip

    def _reset(self) -> None:
        self._parts.clear()
        self._size = 0
        self._skip = False
        self._pending = None
        self._tail = b""
        self._tag = None

    def next(self) -> Frame | Continue | ParseError | None:
        while True:
            if self._literal:
                taken = min(len(self._buf), self._literal)
                if not taken:
                    return None
                if not self._skip:
                    self._parts.append(bytes(self._buf[:taken]))
                del self._buf[:taken]
                self._literal -= taken
                continue
            result = self._line()
            if not isinstance(result, _Again):
                return result

    def _line(self) -> Frame | Continue | ParseError | None | _Again:
        limits = self.limits
        end = self._buf.find(b"\n")
        if self._tag is None and not self._parts and not self.line_mode:
            self._tag = tag_of(bytes(self._buf[:256]))
        if end < 0:
            if self._skip:
                self._tail = (self._tail + bytes(self._buf))[-_TAIL:]
                self._buf.clear()
                return None
            if len(self._buf) > limits.max_line:
                self._skip = True
                self._tail = bytes(self._buf[-_TAIL:])
                self._buf.clear()
                return LineTooLong(f"line longer than {limits.max_line} bytes", tag=self._tag)
            return None
        if self._skip:
            line = self._tail + bytes(self._buf[:end])
        else:
            line = bytes(self._buf[:end])
        del self._buf[:end + 1]
        self._tail = b""
        if line.endswith(b"\r"):
            line = line[:-1]
        if self.line_mode:
            self.line_mode = False
            skipped, self._skip = self._skip, False
            self._tag = None
            if skipped:
                return _AGAIN  # the overlong line was already answered
            if len(line) > limits.max_line:
                return LineTooLong(f"line longer than {limits.max_line} bytes")
            return Frame(line)
        error: ParseError | None = None
        if not self._skip and (len(line) > limits.max_line or self._size + len(line) > limits.max_command):
            what = f"line longer than {limits.max_line} bytes" if len(line) > limits.max_line \
                else f"command longer than {limits.max_command} bytes"
            error = LineTooLong(what, tag=self._tag)
            self._skip = True
        marker = _MARKER.search(line[-_TAIL:])
        if marker is None:  # the command ends here
            if self._skip:
                error = error or self._pending
                self._reset()
                return error if error is not None else _AGAIN
            self._parts.append(line)
            frame = Frame(b"".join(self._parts))
            self._reset()
            return frame
        size, synchronizing = int(marker.group(1)), not marker.group(2)
        if self._skip:
            if synchronizing:  # the client waits for a "+" that will not come
                self._reset()
            else:
                self._literal = size
            return error if error is not None else _AGAIN
        if size > limits.max_literal or self._size + len(line) + size > limits.max_command:
            error = LiteralTooLarge(f"literal of {size} bytes is over the limit of {limits.max_literal}",
                                    tag=self._tag, code="TOOBIG", status="NO" if synchronizing else "BAD")
            if synchronizing:
                self._reset()
                return error
            self._skip, self._pending, self._literal = True, error, size
            return _AGAIN
        self._parts.append(line + b"\r\n")
        self._size += len(line) + 2 + size
        self._literal = size
        if synchronizing and not self._buf:
            return Continue(size)
        return _AGAIN


class _Again:
    """Internal: a line was consumed, nothing to report yet."""


_AGAIN = _Again()
