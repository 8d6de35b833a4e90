"""haproxy (docs/deploy/haproxy.cfg) in front of two processes: the terminal client and the web
page connect through it, and a process killed behind it costs its users a reconnect, nothing else."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, connected, say, texts
from playwright.async_api import async_playwright, expect
from redisserver import RedisServer, free_port
from support import ROOT, ServerProcess, logged_in
from terminal import Term

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def haproxy_config(front: int, backs: list[int]) -> str:
    """The shipped configuration with this test's ports in place of the example ones."""
    text = (ROOT / "docs" / "deploy" / "haproxy.cfg").read_text()
    assert "bind :8080" in text and "127.0.0.1:8001" in text and "127.0.0.1:8002" in text
    text = text.replace("bind :8080", f"bind 127.0.0.1:{front}")
    text = text.replace("127.0.0.1:8001", f"127.0.0.1:{backs[0]}").replace(
        "127.0.0.1:8002", f"127.0.0.1:{backs[1]}"
    )
    return text.replace("inter 2s", "inter 500ms")  # notice a dead process sooner in the test


def status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


async def passing_requests(
    proc: subprocess.Popen[bytes], front: int, what: str, log: Path
) -> subprocess.Popen[bytes]:
    """`proc` (a proxy on port `front`) once it answers /healthz with 200, i.e. listens and has
    checked a backend; killed, with its log in the failure, if it exits or never does."""
    for _ in range(100):
        if await asyncio.to_thread(status, front) == 200:
            return proc
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{what} did not pass requests on: " + log.read_text())


async def start_haproxy(folder: Path, front: int, backs: list[int]) -> subprocess.Popen[bytes]:
    """haproxy with the shipped configuration; returns once it answers /healthz with 200."""
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is not installed: run `bash test.sh`, which installs it")
    cfg = folder / "haproxy.cfg"
    cfg.write_text(haproxy_config(front, backs))
    with (folder / "haproxy.log").open("wb") as log:
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=log)
    return await passing_requests(proc, front, "haproxy", folder / "haproxy.log")


async def test_terminal_client_and_page_through_haproxy_survive_a_killed_process(
    redis_server: RedisServer, tmp_path: Path, terms: list[Term]
) -> None:
    ports = [free_port(), free_port()]
    procs = [ServerProcess("--redis", redis_server.url, port=p) for p in ports]
    procs = [p.wait_ready() for p in procs]  # started at once
    front = free_port()
    haproxy = await start_haproxy(tmp_path, front, ports)
    try:
        tom = Term(f"127.0.0.1:{front}", "--username", "tom")
        terms.append(tom)
        await tom.expect("Welcome, tom!")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{front}/")
                await page.fill("#nameInput", "Pia")
                await page.press("#nameInput", "Enter")
                await connected(page)
                await expect(page.locator("#onlineCount")).to_have_text("2")  # tom is elsewhere or here
                await say(page, "before the crash")
                await tom.expect("before the crash")
                tom.type("hello from tom")
                await expect(texts(page, "hello from tom")).to_have_count(1)
                for victim in procs:  # kill each process in turn: someone is on one of them
                    victim.proc.send_signal(signal.SIGKILL)
                    victim.proc.wait()
                    port = ports[procs.index(victim)]
                    procs[procs.index(victim)] = ServerProcess(
                        "--redis", redis_server.url, port=port
                    ).wait_ready()
                await tom.expect("Reconnected as tom", timeout=30)
                await connected(page)
                await say(page, "after the crash")
                await tom.expect("after the crash", timeout=30)
                tom.type("tom is back")
                await expect(texts(page, "tom is back")).to_have_count(1)
                await expect(texts(page, "before the crash")).to_have_count(1)  # shown once
                await expect(texts(page, "hello from tom")).to_have_count(1)
                assert tom.count("before the crash") == 1 and tom.count("hello from tom") == 1
                watcher = await logged_in(front, "watcher")
                await watcher.close()
            finally:
                await browser.close()
    finally:
        haproxy.send_signal(signal.SIGTERM)
        haproxy.wait(10)
        for p in procs:
            await p.astop()


def connections(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        return json.loads(resp.read())["connections"]


async def test_the_page_keeps_its_session_when_its_name_cannot_be_checked_for_a_while(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Its process dies while Redis is stopped: the other process cannot check the name
    (store_failed); the page waits and asks again instead of dropping its session."""
    ports = [free_port(), free_port()]
    procs = [ServerProcess("--redis", redis_server.url, port=p) for p in ports]
    procs = [p.wait_ready() for p in procs]  # started at once
    front = free_port()
    haproxy = await start_haproxy(tmp_path, front, ports)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
            try:
                page = await browser.new_page()
                await page.clock.install()  # time flows; the page's wait below is run through
                refused = asyncio.Event()
                page.on(
                    "websocket",
                    lambda ws: ws.on(
                        "framereceived", lambda data: refused.set() if "store_failed" in str(data) else None
                    ),
                )
                await page.goto(f"http://127.0.0.1:{front}/")
                await page.fill("#nameInput", "Pia")
                await page.press("#nameInput", "Enter")
                await connected(page)
                [mine] = [i for i, p in enumerate(ports) if await asyncio.to_thread(connections, p) == 1]
                redis_server.pause()
                procs[mine].proc.send_signal(signal.SIGKILL)
                procs[mine].proc.wait()
                await asyncio.wait_for(refused.wait(), 30)
                await expect(page.locator("#joinView")).to_be_hidden()  # the session is kept
                await expect(page.locator("#statusText")).to_contain_text("trying again in 5 s")
                redis_server.resume()
                await page.clock.run_for(5_000)  # the page's wait: store_failed's retry_after
                await connected(page)
                await say(page, "still me")
                await expect(texts(page, "still me")).to_have_count(1)
                await expect(page.locator("#joinView")).to_be_hidden()
            finally:
                await browser.close()
    finally:
        redis_server.resume()
        haproxy.send_signal(signal.SIGTERM)
        haproxy.wait(10)
        for p in procs:
            await p.astop()
