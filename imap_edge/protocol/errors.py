"""Typed errors of the command grammar. The session answers each once, at its boundary:
``<tag> BAD [CODE] reason`` when the tag is known, ``* BAD reason`` otherwise (``status``
is ``NO`` for the few refusals the RFCs make ``NO``: a too large literal, an unknown charset)."""
from __future__ import annotations


class ParseError(Exception):
    """A command that cannot be parsed. ``reason`` is the text after ``BAD``."""

    def __init__(self, reason: str, *, tag: str | None = None, code: str | None = None,
                 status: str = "BAD") -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag
        self.code = code
        self.status = status

    def with_tag(self, tag: str | None) -> ParseError:
        """The same error, naming the command's tag."""
        if tag is None or self.tag is not None:
            return self
        copy = type(self)(self.reason, tag=tag, code=self.code, status=self.status)
        return copy

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, tag={self.tag!r}, code={self.code!r}, status={self.status!r})"


class LineTooLong(ParseError):
    """A line (or a whole command) over the configured limit; the rest of it is skipped."""


class LiteralTooLarge(ParseError):
    """A literal over the configured limit (``[TOOBIG]``)."""


class UnknownCommand(ParseError):
    """A command name this server does not know (or ``UID`` before a command that has no UID form)."""
