"""``CommandParser``: the framer and the command table together, for one connection.

    parser = CommandParser(Limits())
    parser.feed(data)
    while not isinstance(event := parser.next(), NeedMore):
        ...  # a Command, a ParseError (answer "<tag> BAD reason" or "* BAD reason"), a Line
    if event.continuation:
        ...  # send "+ Ready for literal data", then wait for more bytes

The session keeps the rest of the protocol state. It sets ``utf8`` after IMAP4rev2 or
``ENABLE UTF8=ACCEPT`` and calls ``expect_line()`` before reading AUTHENTICATE's
responses and IDLE's ``DONE``; after STARTTLS or COMPRESS it checks ``buffered()``
(bytes pipelined past the command must not be read as if they had come over the new layer).
"""
from __future__ import annotations

from dataclasses import dataclass

from imap_edge.protocol import commands
from imap_edge.protocol.commands import Command
from imap_edge.protocol.errors import ParseError
from imap_edge.protocol.framing import Continue, Framer, Limits, tag_of
from imap_edge.protocol.tokens import Reader


@dataclass(frozen=True)
class NeedMore:
    """Nothing complete yet. ``continuation``: a synchronizing literal is awaited, so send ``+``."""

    continuation: bool = False


@dataclass(frozen=True)
class Line:
    """A whole line asked for by ``expect_line`` (without its CRLF)."""

    data: bytes

    @property
    def is_done(self) -> bool:
        """IDLE's end (RFC 2177): ``DONE`` in any case."""
        return self.data.upper() == b"DONE"

    @property
    def is_cancel(self) -> bool:
        """An AUTHENTICATE exchange cancelled by the client (``*``)."""
        return self.data == b"*"


Event = Command | ParseError | Line | NeedMore
_MORE = NeedMore()
_CONTINUE = NeedMore(continuation=True)


def parse_command(raw: bytes, *, utf8: bool = False, max_depth: int = 32) -> Command:
    """One framed command (its literals inline, no final CRLF); raises ``ParseError``."""
    return commands.parse(Reader(raw, utf8=utf8, max_depth=max_depth))


class CommandParser:
    def __init__(self, limits: Limits | None = None, *, utf8: bool = False) -> None:
        self.limits = limits or Limits()
        self.utf8 = utf8
        self._framer = Framer(self.limits)

    def feed(self, data: bytes) -> None:
        self._framer.feed(data)

    def expect_line(self) -> None:
        """The next line is returned as a ``Line``, not parsed as a command."""
        self._framer.line_mode = True

    def buffered(self) -> bytes:
        return self._framer.buffered()

    def next(self) -> Event:
        line_mode = self._framer.line_mode
        frame = self._framer.next()
        if frame is None:
            return _MORE
        if isinstance(frame, Continue):
            return _CONTINUE
        if isinstance(frame, ParseError):
            return frame
        if line_mode:
            return Line(frame.raw)
        try:
            return parse_command(frame.raw, utf8=self.utf8, max_depth=self.limits.max_depth)
        except ParseError as error:
            return error.with_tag(tag_of(frame.raw))
        except RecursionError:  # cannot happen below max_depth; never let it out
            return ParseError("command nested too deeply", tag=tag_of(frame.raw))
