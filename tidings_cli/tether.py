"""`python -m tidings_cli.tether PARENT_PID CMD...`: become CMD, tied to the launcher.

Sets PR_SET_PDEATHSIG (kept across exec) so CMD gets SIGTERM when the launcher dies,
even by SIGKILL, then execs CMD. Done here, in a fresh process, because Popen's
preexec_fn would run Python between fork and exec in a launcher full of gRPC threads.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the launcher died before the tie was made
        sys.exit(1)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
