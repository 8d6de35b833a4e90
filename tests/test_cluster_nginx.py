"""nginx (docs/deploy/nginx.conf, as shipped) in front of two processes on one Redis: the page
and /healthz are served through it, the terminal client and a WebSocket client chat through it
(the Upgrade headers pass), and a process killed behind it costs its users a reconnect, nothing
else."""

from __future__ import annotations

import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from clusterclient import ResumingClient
from redisserver import RedisServer, free_port
from support import ROOT, ServerProcess
from terminal import Term
from test_cluster_haproxy import passing_requests

pytestmark = pytest.mark.slow


def nginx_config(folder: Path, front: int, backs: list[int]) -> Path:
    """A main nginx.conf for this test that includes the shipped file with this test's ports."""
    text = (ROOT / "docs" / "deploy" / "nginx.conf").read_text()
    assert "listen 8080;" in text and "127.0.0.1:8001" in text and "127.0.0.1:8002" in text
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{front};")
    for example, back in zip(("127.0.0.1:8001", "127.0.0.1:8002"), backs, strict=True):
        text = text.replace(example, f"127.0.0.1:{back}")
    (folder / "wschat.conf").write_text(text)
    temp = " ".join(
        f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = folder / "nginx.conf"
    main.write_text(
        f"daemon off; master_process off; pid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{ access_log off; {temp} include {folder / 'wschat.conf'}; }}\n"
    )
    return main


async def start_nginx(folder: Path, front: int, backs: list[int]) -> subprocess.Popen[bytes]:
    """nginx with the shipped server block; returns once it answers /healthz with 200."""
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed: run `bash test.sh`, which installs it")
    main = nginx_config(folder, front, backs)
    with (folder / "nginx.out").open("wb") as log:
        proc = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(main)], stdout=log, stderr=log)
    return await passing_requests(proc, front, "nginx", folder / "error.log")


async def test_clients_through_nginx_chat_and_survive_a_killed_process(
    redis_server: RedisServer, tmp_path: Path, terms: list[Term]
) -> None:
    ports = [free_port(), free_port()]
    procs = [ServerProcess("--redis", redis_server.url, port=p) for p in ports]
    procs = [p.wait_ready() for p in procs]  # started at once
    front = free_port()
    nginx = await start_nginx(tmp_path, front, ports)
    ann = ResumingClient("ann")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{front}/", timeout=10) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()  # the page, through nginx
        tom = Term(f"127.0.0.1:{front}", "--username", "tom")
        terms.append(tom)
        await tom.expect("Welcome, tom!")
        await ann.connect(front)
        await ann.say("a1", "before the crash")
        await tom.expect("before the crash")
        tom.type("hello from tom")
        await ann.until(lambda: [m["message"] for m in ann.shown["general"]][-1:] == ["hello from tom"])
        for i, victim in enumerate(procs):  # kill each process in turn: both users are hit
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            procs[i] = ServerProcess("--redis", redis_server.url, port=ports[i]).wait_ready()
        await tom.expect("Reconnected as tom", timeout=30)
        await ann.until(lambda: not ann.connected, timeout=10)
        await ann.reconnect([front])
        await ann.say("a2", "after the crash")
        await tom.expect("after the crash", timeout=30)
        tom.type("tom is back")
        await ann.until(lambda: "tom is back" in [m["message"] for m in ann.shown["general"]])
        shown = [m["message"] for m in ann.shown["general"]]
        assert shown.count("before the crash") == 1 and shown.count("hello from tom") == 1
        assert tom.count("before the crash") == 1 and tom.count("hello from tom") == 1
        assert ann.problems == []  # no gap, no duplicate
    finally:
        await ann.drop()
        nginx.send_signal(signal.SIGTERM)
        nginx.wait(10)
        for p in procs:
            await p.astop()
