"""A raw IMAP connection for tests that check the exact bytes of answers."""
from __future__ import annotations

import itertools
import re
import socket

from tests.cluster.grid import PASSWORD, Grid

_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n\Z")


class Wire:
    """A raw IMAP connection: ``run`` sends one command and returns every response line up to its
    tagged one, each literal joined into its line."""

    def __init__(self, grid: Grid, email: str | None = None) -> None:
        self.sock = socket.create_connection((grid.host, grid.imap_port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()
        self._tags = itertools.count(1)
        self.tag = b""   # the last command's
        if email is not None:
            assert self.run(f'LOGIN "{email}" "{PASSWORD}"')[-1].startswith(b"t1 OK")

    def line(self) -> bytes:
        line = self.file.readline()
        assert line, "the server closed the connection"
        while match := _LITERAL.search(line):
            line += self.file.read(int(match.group(1))) + self.file.readline()
        return line

    def run(self, command: str | bytes) -> list[bytes]:
        tag = self.tag = f"t{next(self._tags)}".encode()
        data = command.encode() if isinstance(command, str) else command
        self.sock.sendall(tag + b" " + data + b"\r\n")
        lines = [self.line()]
        while not lines[-1].startswith(tag + b" "):
            lines.append(self.line())
        return lines

    def ok(self, command: str | bytes) -> list[bytes]:
        lines = self.run(command)
        assert b" OK " in lines[-1], lines
        return lines[:-1]

    def search(self, command: str) -> bytes | None:
        """The one untagged answer of a SEARCH (``(TAG "t5")`` as ``(TAG)``), None if there is none."""
        lines = self.ok(command)
        assert len(lines) <= 1, lines
        return lines[0].replace(b'(TAG "' + self.tag + b'")', b"(TAG)") if lines else None

    def close(self) -> None:
        self.run("LOGOUT")
        self.sock.close()
