"""Decoding the text of SMTP ``DATA`` (RFC 5321 4.1.1.4, 4.5.2), one line at a time.

Content lines may end in CRLF or in a bare LF (stored as CRLF, as Postfix's
``smtpd_forbid_bare_newline = normal`` does); only ``<CR><LF>.<CR><LF>`` ends
the data, so ``<LF>.<LF>``, ``<LF>.<CR><LF>``, ``<CR><LF>.<LF>`` and
``<CR>.<CR>`` are content and never end or split a message (SMTP smuggling).
A leading dot is removed from every other line that starts with one; a lone
dot that does not end the data was not stuffed and is kept. Lines over 998
characters (RFC 5322 2.1.1) and data over the size limit are read to the end
and reported, holding no more than one line and the size limit in memory.
"""
from __future__ import annotations

import enum

MAX_LINE = 998                # characters of a line, without its line ending
# a raw line as sent: a stuffed dot, MAX_LINE characters and the CR of CRLF
MAX_RAW_LINE = 1 + MAX_LINE + 1


class DataProblem(enum.Enum):
    LINE_TOO_LONG = "line too long"
    TOO_MUCH_DATA = "too much data"


class DataDecoder:
    """Feed the bytes after ``354`` piece by piece until :meth:`feed` says the data ended.

    A piece holds no LF except, possibly, as its last byte: a whole line, or
    part of one that is too long to read in one go. Afterwards :attr:`problem`
    is ``None`` and :attr:`content` the message (dot-unstuffed, CRLF line
    endings), or :attr:`problem` says why the message is refused (the first
    problem met).
    """

    def __init__(self, size_limit: int | None = None) -> None:
        self.size_limit = size_limit
        self.problem: DataProblem | None = None
        self.size = 0                       # bytes of content, as stored
        self._content = bytearray()
        self._line = bytearray()            # the current raw line, up to MAX_RAW_LINE
        self._overlong = False              # the current line went past MAX_RAW_LINE
        self._line_ends_cr = False          # its last byte so far is CR (kept when overlong)
        self._after_crlf = True             # the previous line ended in CRLF (or none yet)
        self.ended = False

    @property
    def content(self) -> bytes:
        assert self.ended and self.problem is None
        return bytes(self._content)

    def feed(self, piece: bytes) -> bool:
        """Take the next piece; ``True`` once the end-of-data line has been taken."""
        assert not self.ended, "the data has already ended"
        complete = piece.endswith(b"\n")
        text = piece[:-1] if complete else piece
        assert b"\n" not in text, "a piece holds at most one LF, at its end"
        if text:
            self._take(text)
        if complete:
            self.ended = self._end_line()
        return self.ended

    def _take(self, text: bytes) -> None:
        self._line_ends_cr = text.endswith(b"\r")
        if not self._overlong:
            self._line += text
            if len(self._line) > MAX_RAW_LINE:
                self._overlong = True
                self._line.clear()

    def _end_line(self) -> bool:
        crlf = self._line_ends_cr
        line = self._line[:-1] if crlf and not self._overlong else self._line
        if crlf and self._after_crlf and line == b"." and not self._overlong:
            return True
        self._after_crlf = crlf
        if line[:1] == b"." and len(line) > 1:
            del line[0]
        if self._overlong or len(line) > MAX_LINE:
            self._refuse(DataProblem.LINE_TOO_LONG)
        self.size += len(line) + 2
        if self.size_limit and self.size > self.size_limit:
            self._refuse(DataProblem.TOO_MUCH_DATA)
        if self.problem is None:
            self._content += line
            self._content += b"\r\n"
        self._line = bytearray()
        self._overlong = self._line_ends_cr = False
        return False

    def _refuse(self, problem: DataProblem) -> None:
        if self.problem is None:
            self.problem = problem
            self._content = bytearray()     # nothing more is kept
