"""The IMAP client-command grammar (RFC 3501, RFC 9051 and the extensions of issue 20).

Bytes in, typed values out; no I/O and no session state beyond the ``utf8`` switch
(IMAP4rev2 / ``ENABLE UTF8=ACCEPT``). Modules, one concept each:

- ``errors``     ``ParseError`` and its kinds; every error carries the tag when known.
- ``framing``    the incremental framer: lines, literals (``{n}``, ``{n+}``, ``~{n}``),
                 continuation requests, the line / literal / command size limits.
- ``tokens``     a cursor over one framed command: atoms, numbers, quoted strings,
                 literals, astrings, nstrings, lists.
- ``mutf7``      modified UTF-7 mailbox names (RFC 3501 5.1.3).
- ``values``     small typed values: flags, dates, date-times, mailbox names.
- ``sequence``   sequence sets (``1:*,3``, ``$``) and their compact form.
- ``fetch``      FETCH attributes: sections, partials, macros.
- ``search``     SEARCH keys (RFC 3501, CONDSTORE's MODSEQ, WITHIN) and RETURN options.
- ``commands``   one argument type and one small parser per command, in a table.
- ``parser``     ``CommandParser``: the framer and the command table together.
"""
from imap_edge.protocol.errors import LineTooLong, LiteralTooLarge, ParseError, UnknownCommand
from imap_edge.protocol.framing import Limits
from imap_edge.protocol.parser import CommandParser, Line, NeedMore, parse_command

__all__ = ["CommandParser", "Limits", "Line", "LineTooLong", "LiteralTooLarge", "NeedMore", "ParseError",
           "UnknownCommand", "parse_command"]
