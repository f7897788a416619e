"""A test seam for crash tests: die by SIGKILL at a named point of the code.

`checkpoint(name)` does nothing unless the environment variable ENCOMPASS_CRASH_AT equals
`name` when this module is first imported; then the process kills itself with SIGKILL — no
`finally`, no atexit, no flush — exactly as a power cut or the OOM killer would. The crash
tests set the variable for a subprocess and check that the next run resumes without loss.

It is read once, at import, so a checkpoint in a loop costs one comparison, and nothing the
process does later can arm it. Never set the variable in production.
"""

from __future__ import annotations

import os
import signal

CRASH_AT_VARIABLE = "ENCOMPASS_CRASH_AT"

_crash_at = os.environ.get(CRASH_AT_VARIABLE)


def checkpoint(name: str) -> None:
    """Kill this process with SIGKILL if ENCOMPASS_CRASH_AT names this checkpoint."""
    if _crash_at == name:
        os.kill(os.getpid(), signal.SIGKILL)
