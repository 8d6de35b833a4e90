"""Shared fixtures: a real chat server on an ephemeral loopback port."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import start_server

from wschat.server import ChatServer


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    srv = await start_server()
    try:
        yield srv
    finally:
        await srv.stop()
