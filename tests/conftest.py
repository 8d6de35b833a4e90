"""Shared fixtures: a real chat server on an ephemeral loopback port."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The tests start Python hundreds of times (servers, terminal clients, admin commands). With
# PYTHONDONTWRITEBYTECODE set, as on the machines the suite runs on, each of them compiled every
# module of wschat from source: about 0.15 s of CPU per server start. Their bytecode goes into
# pytest's cache folder instead (ignored by git; the checkout stays clean), before support and
# terminal copy the environment for the subprocesses.
if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
    checkout = Path(__file__).resolve().parent.parent
    os.environ["PYTHONPYCACHEPREFIX"] = str(checkout / ".pytest_cache" / "pycache")
    del os.environ["PYTHONDONTWRITEBYTECODE"]

from redisserver import RedisServer, available
from support import ServerProcess, start_server
from terminal import Term

from wschat.server import ChatServer


@pytest.fixture(autouse=True, scope="session")
def no_leaked_servers() -> Iterator[None]:
    """Whatever server subprocess a failing test left running dies with the test session."""
    yield
    for proc in list(ServerProcess.running):
        if proc.proc.poll() is None:
            proc.kill()
        ServerProcess.running.discard(proc)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server (appendonly, appendfsync always) on an ephemeral port, stopped after."""
    if not available():
        pytest.fail("redis-server is not installed: run `bash test.sh`, which installs it")
    folder = tmp_path / "redis"
    folder.mkdir()
    srv = RedisServer(folder).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True, scope="session")
def no_leaked_redis() -> Iterator[None]:
    yield
    for srv in list(RedisServer.running):
        srv.stop()


@pytest.fixture
async def terms() -> AsyncIterator[list[Term]]:
    """Terminal clients a test starts; killed when it ends."""
    started: list[Term] = []
    yield started
    for t in started:
        t.kill()


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    srv = await start_server()
    try:
        yield srv
    finally:
        await srv.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what tests measured (recorded with the `record_property` fixture), with or without -s."""
    lines = []
    for key in ("passed", "failed"):
        for rep in terminalreporter.stats.get(key, []):
            if rep.when == "call":
                name = rep.nodeid.split("::")[-1]
                lines += [f"{name}: {k} = {v}" for k, v in rep.user_properties]
    if lines:
        terminalreporter.section("measurements")
        for line in lines:
            terminalreporter.write_line(line)
