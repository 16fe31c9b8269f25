"""aiosmtpd's ``SMTP`` protocol as this edge runs it.

The protocol itself is aiosmtpd's. At the wire edge we only (1) map the
few reply lines aiosmtpd hard-codes (its size, STARTTLS and address errors)
through :data:`smtp_edge.replies.BUILTIN`, so every reply comes from the one
catalogue, (2) count every 4xx/5xx reply by code and (3) read the text of
``DATA`` with :class:`smtp_edge.data_reader.DataDecoder`, which accepts
bare-LF lines but ends the data only at ``<CR><LF>.<CR><LF>``; the rest of
``DATA`` (the handler's hook, the envelope, the replies) is aiosmtpd's; (4)
remember the paths of MAIL and RCPT aiosmtpd has parsed (its parser is the
stdlib's header parser and defines a class on every call: ~0.2 ms a path).
"""
from __future__ import annotations

import asyncio
import collections
import functools
import types
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, syntax

from smtp_edge import replies
from smtp_edge.data_reader import DataDecoder, DataProblem
from smtp_edge.metrics import REJECTIONS

PATHS_KEPT = 4096


@functools.lru_cache(maxsize=PATHS_KEPT)
def _path(arg: str, local_part_limit: int) -> tuple[str | None, str | None]:
    """aiosmtpd's own parse of a MAIL or RCPT argument (a pure function of the two): the
    address and the rest (its parameters), or (None, None) when it does not parse."""
    return SMTP._getaddr(types.SimpleNamespace(local_part_limit=local_part_limit), arg)  # type: ignore[arg-type]


DATA_REFUSALS = {DataProblem.LINE_TOO_LONG: replies.LINE_TOO_LONG,
                 DataProblem.TOO_MUCH_DATA: replies.MESSAGE_TOO_BIG}


class EdgeSMTP(SMTP):
    def __init__(self, handler: Any, *, listener: str, **kwargs: Any) -> None:
        # aiosmtpd keeps command size limits in a class-level dict that every
        # session clears and grows; give each session its own.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        super().__init__(handler, **kwargs)
        assert not self._decode_data, "DATA is read as bytes (decode_data=False)"
        self.listener = listener

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        return _path(arg, self.local_part_limit)

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            status = replies.BUILTIN.get(status, status)
            if status[:1] in ("4", "5"):
                code, enhanced = replies.reply_code(status)
                REJECTIONS.labels(self.listener, code, enhanced).inc()
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        decoder = DataDecoder(self.data_size_limit)
        await self._read_data(decoder)
        if decoder.problem is not None:
            self._set_post_data_state()
            await self.push(DATA_REFUSALS[decoder.problem])
            return
        self.envelope.content = self.envelope.original_content = decoder.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self, decoder: DataDecoder) -> None:
        """Feed ``decoder`` line by line (a line too long for the reader in parts)."""
        try:
            while True:
                try:
                    piece = await self._reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as error:
                    piece = await self._reader.readexactly(error.consumed)
                if decoder.feed(piece):
                    return
        except asyncio.CancelledError:      # the connection went away during DATA
            self._writer.close()
            raise
