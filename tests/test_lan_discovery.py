"""Discovery on a LAN of the test's own: servers announce themselves by mDNS and the terminal
client finds them, in a network namespace made by the test (`ip netns`, as root), whose only
interface is its loopback with multicast on. No packet leaves the namespace.

In it run a plain server, a TLS server, one with --no-mdns, and a --workers supervisor with two
workers on a Redis of the namespace's own. `chat-client.py --list` must list the first two with
the right port and TLS flag, the cluster once, and not the hidden one; the terminal client in a
pty, started without an address, lists them and connects to the TLS one by its number, trusting
the certificate fingerprint it announced. In a second namespace port 5353 is held by a program
that does not share it: the server starts all the same, with one warning line.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from support import ROOT, TIMEOUT

from wschat.trust import render_known

SERVER = str(ROOT / "chat-server.py")
CLIENT = str(ROOT / "chat-client.py")
ENV = {**os.environ, "NO_COLOR": "1", "TERM": "xterm", "PYTHONUNBUFFERED": "1"}
ANNOUNCED = "announced on the LAN as"
START = 30.0  # seconds for a server to start and announce itself on a loaded machine

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 to make a network namespace of the test's own",
)


class Netns:
    """A network namespace with only a loopback interface, multicast on; removed at the end."""

    def __init__(self, name: str) -> None:
        self.name = name
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up", "multicast", "on"], check=True)

    def argv(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*cmd), capture_output=True, text=True, env=ENV, timeout=timeout)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


class Proc:
    """A process in a namespace; its output (stdout and stderr) is read all along."""

    def __init__(self, ns: Netns, *cmd: str) -> None:
        self.p = subprocess.Popen(
            ns.argv(*cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = START) -> str:
        """The first output line containing `text` (waiting for it to be printed)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [line for line in self.lines if text in line]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self.changed.wait(0.5)):
                    raise AssertionError(f"no {text!r} in: " + "\n".join(self.lines[-30:]))
                self.changed.wait(left)

    def output(self) -> str:
        with self.changed:
            return "\n".join(self.lines)

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


def server(ns: Netns, port: int, *args: str) -> Proc:
    return Proc(ns, sys.executable, SERVER, "--host", "0.0.0.0", "--port", str(port), "--no-qr", *args)


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    """Four servers in one namespace: plain, TLS, hidden (--no-mdns) and a two-worker cluster."""
    ns = Netns(f"wschat-lan-{os.getpid()}")
    procs: dict[str, Proc] = {}
    try:
        data = tmp_path_factory.mktemp("lan")
        if shutil.which("redis-server"):
            procs["redis"] = Proc(ns, "redis-server", "--port", "6379", "--save", "", "--appendonly", "no")
        procs["plain"] = server(ns, 8765, "--db", ":memory:", "--name", "Plain chat")
        procs["tls"] = server(
            ns, 8766, "--db", str(data / "chat.db"), "--self-signed", "--name", "Secure chat"
        )
        procs["hidden"] = server(ns, 8767, "--db", ":memory:", "--name", "Hidden chat", "--no-mdns")
        if "redis" in procs:
            procs["redis"].wait_for("Ready to accept connections")
            redis = "redis://127.0.0.1:6379/0"
            args = ("--db", ":memory:", "--redis", redis, "--workers", "2", "--name", "Cluster chat")
            procs["cluster"] = server(ns, 8768, *args)
        for key in ("plain", "tls", "cluster"):
            if key in procs:
                procs[key].wait_for(ANNOUNCED)
        if "cluster" in procs:  # and a worker listens (the supervisor announces as it starts them)
            procs["cluster"].wait_for("Starting WebSocket chat server")
        procs["hidden"].wait_for("Starting WebSocket chat server")
        procs["ns"] = ns  # type: ignore[assignment]
        yield procs
    finally:
        running = [proc for key, proc in procs.items() if key != "ns"]
        for proc in running:  # all at once: each says goodbye on the LAN as it stops
            if proc.p.poll() is None:
                proc.p.send_signal(signal.SIGTERM)
        for proc in running:
            proc.stop()
        ns.delete()


@pytest.fixture(scope="module")
def listed(lan: dict[str, Proc]) -> list[str]:
    """What `chat-client.py --list` printed in the namespace, one entry per line."""
    ns: Netns = lan["ns"]  # type: ignore[assignment]
    out = ns.run(sys.executable, CLIENT, "--list")
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_list_finds_each_announced_server_with_its_port_and_tls_flag(listed: list[str]) -> None:
    assert listed[0] == "Chat servers on this network:"
    assert any(re.fullmatch(r"  \d\. Plain chat  127\.0\.0\.1:8765", line) for line in listed), listed
    assert any(re.fullmatch(r"  \d\. Secure chat  wss://127\.0\.0\.1:8766  TLS", line) for line in listed)


def test_a_server_started_with_no_mdns_announces_nothing(lan: dict[str, Proc], listed: list[str]) -> None:
    assert not any("Hidden chat" in line or ":8767" in line for line in listed), listed
    assert ANNOUNCED not in lan["hidden"].output()


def test_a_cluster_of_workers_is_announced_once(lan: dict[str, Proc], listed: list[str]) -> None:
    if "cluster" not in lan:
        pytest.skip("redis-server is not installed (bash test.sh installs it)")
    output = lan["cluster"].output()
    cluster = [line for line in listed if "Cluster chat" in line]
    assert len(cluster) == 1 and ":8768" in cluster[0], (listed, output)
    assert [line for line in listed if ":8768" in line] == cluster
    assert output.count(ANNOUNCED) == 1


def test_the_terminal_client_without_an_address_lists_the_servers_and_joins_one_by_number(
    lan: dict[str, Proc], tmp_path: Path
) -> None:
    fingerprint = lan["tls"].wait_for("Certificate SHA-256 fingerprint:").split(": ", 1)[1].strip()
    known = tmp_path / "known_servers.json"
    term = client_in(lan, known)
    try:
        term.expect_exact("Enter server address (a number, or default: ", timeout=START)
        shown = term.before
        number = re.search(r"(\d)\. Secure chat  wss://127\.0\.0\.1:8766  TLS", shown)
        assert number, shown
        assert re.search(r"\d\. Plain chat  127\.0\.0\.1:8765", shown)
        term.sendline(number.group(1))
        term.expect_exact(f"Trusting the certificate Secure chat announced: SHA-256 {fingerprint}")
        term.expect_exact("Enter your username")
        assert "Trust it?" not in term.before and "fingerprint" not in term.before.lower()
        term.sendline("alice")
        term.expect_exact("#general")
        term.sendline("/quit")
        term.expect(pexpect.EOF)
    finally:
        if term.isalive():
            term.terminate(force=True)
    assert not known.exists()  # pinned for this connection only, never written down


def test_a_certificate_trusted_before_wins_over_the_one_a_server_announces(
    lan: dict[str, Proc], tmp_path: Path
) -> None:
    known = tmp_path / "known_servers.json"
    other = ":".join(["AB"] * 32)
    known.write_text(render_known("", "127.0.0.1:8766", other, "2026-01-01T00:00:00+00:00"))
    term = client_in(lan, known)
    try:
        term.expect_exact("Enter server address (a number, or default: ", timeout=START)
        number = re.search(r"(\d)\. Secure chat  wss://127\.0\.0\.1:8766  TLS", term.before)
        assert number, term.before
        term.sendline(number.group(1))
        term.expect_exact("Enter your username")
        assert "Trusting the certificate" not in term.before
        term.sendline("alice")
        term.expect_exact("THE CERTIFICATE OF 127.0.0.1:8766 HAS CHANGED!")
        term.expect(pexpect.EOF)
    finally:
        if term.isalive():
            term.terminate(force=True)
    term.close()
    assert term.exitstatus == 1


def client_in(lan: dict[str, Proc], known: Path) -> pexpect.spawn:
    """The terminal client in a pty in the namespace, with no address and its own known servers."""
    ns: Netns = lan["ns"]  # type: ignore[assignment]
    return pexpect.spawn(
        "ip",
        ns.argv(sys.executable, CLIENT, "--known-servers", str(known))[1:],
        cwd=str(ROOT),
        env=ENV,
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(40, 200),
    )


def test_a_multicast_socket_that_cannot_be_opened_costs_one_warning_line_only() -> None:
    ns = Netns(f"wschat-nomc-{os.getpid()}")
    holder = Proc(
        ns,
        sys.executable,
        "-c",
        "import signal, socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('0.0.0.0', 5353))  # without SO_REUSEADDR/SO_REUSEPORT: nobody else may bind it\n"
        "print('holding 5353', flush=True)\n"
        "signal.pause()",
    )
    srv: Proc | None = None
    try:
        holder.wait_for("holding 5353")
        srv = server(ns, 8765, "--db", ":memory:")
        srv.wait_for("Not announced on the LAN by mDNS")
        health = ns.run(
            sys.executable,
            "-c",
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8765/healthz').status)",
        )
        assert health.stdout.strip() == "200", health.stderr
        listed = ns.run(sys.executable, CLIENT, "--list", "--browse", "0.5")
        assert listed.returncode == 0
        assert listed.stdout.startswith("Could not look for servers on the LAN (mDNS: ")
        assert srv.stop() == 0
        out = srv.output()
        assert out.count("Not announced on the LAN by mDNS") == 1 and "Traceback" not in out
        warning = [line for line in out.splitlines() if "mDNS" in line]
        assert len(warning) == 1 and "clients can still join with the address above" in warning[0]
    finally:
        if srv is not None:
            srv.stop()
        holder.stop()
        ns.delete()
