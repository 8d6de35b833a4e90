"""The terminal client in a pseudo-terminal, for end-to-end tests (pexpect in async mode).

`Term` runs the real chat-client.py; the `terms` fixture (in conftest.py) kills whatever a test
started.
"""

from __future__ import annotations

import io
import os
import re
import sys

import pexpect
from support import ROOT, TIMEOUT

CLIENT = str(ROOT / "chat-client.py")
ENV = {**os.environ, "NO_COLOR": "1", "TERM": "xterm", "PYTHONUNBUFFERED": "1"}


class Term:
    """The terminal client in a pty; `log` keeps everything it printed."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = io.StringIO()
        self.p = pexpect.spawn(
            sys.executable,
            [CLIENT, *args],
            cwd=str(ROOT),
            env=env or ENV,
            encoding="utf-8",
            timeout=TIMEOUT,
            dimensions=(40, 200),
        )
        self.p.logfile_read = self.log

    async def expect(self, text: str, timeout: float = TIMEOUT) -> str:
        """Wait for `text` (literally) in the output; returns what came before it."""
        await self.p.expect_exact(text, timeout=timeout, async_=True)
        return self.p.before

    async def expect_re(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        await self.p.expect(pattern, timeout=timeout, async_=True)
        return self.p.match

    def type(self, line: str) -> None:
        self.p.sendline(line)

    async def exit_status(self, timeout: float = TIMEOUT) -> int:
        await self.p.expect(pexpect.EOF, timeout=timeout, async_=True)
        self.p.close()
        return self.p.exitstatus

    def output(self) -> str:
        return self.log.getvalue()

    def count(self, text: str) -> int:
        return self.output().count(text)

    def kill(self) -> None:
        if self.p.isalive():
            self.p.terminate(force=True)
