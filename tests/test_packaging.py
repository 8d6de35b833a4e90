"""Packaging: `pip install .` into a fresh virtual environment gives working `wschat-server` and
`wschat-client` commands that find the pages they serve; the systemd unit passes
`systemd-analyze verify`.

The environment is made once for the module, from this checkout, without the package index:
`--system-site-packages` lends it the dependencies already installed here and `--no-deps
--no-build-isolation` uses the build backend installed from requirements-dev.txt. What runs is
the installed copy (the test checks where `wschat` is imported from), in a folder that is not
the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT

from wschat import __version__

UNIT = ROOT / "docs" / "deploy" / "wschat.service"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(where)], check=True
    )
    build = tmp_path_factory.mktemp("src")  # a copy: building never writes into the checkout
    src = build / "wschat"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(".git", "chat-data", "__pycache__", "*.pyc", ".pytest_cache", "bench"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(where / "bin" / "python"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(src),
        ],
        check=True,
        capture_output=True,
        env=clean_env(),
        timeout=300,
    )
    yield where


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60)


def test_the_installed_commands_answer_version_and_help(venv: Path, tmp_path: Path) -> None:
    out = run([str(venv / "bin" / "wschat-server"), "--version"], tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"wschat {__version__}"
    out = run([str(venv / "bin" / "wschat-client"), "--help"], tmp_path)
    assert out.returncode == 0 and "--list" in out.stdout and "address forms" in out.stdout
    assert out.stdout.startswith("usage: wschat-client "), "help names the command the user typed"
    out = run([str(venv / "bin" / "wschat-server"), "--help"], tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("usage: wschat-server "), out.stdout[:200]
    out = run([str(venv / "bin" / "wschat-client"), "--version"], tmp_path)
    assert out.stdout.strip() == f"wschat {__version__}"
    where = run([str(venv / "bin" / "python"), "-c", "import wschat; print(wschat.__file__)"], tmp_path)
    assert where.stdout.startswith(str(venv)), "the installed copy, not the checkout"


def test_the_installed_server_serves_its_pages_from_the_package(venv: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(venv / "bin" / "wschat-server"), "--host", "127.0.0.1", "--port", "0", "--db", ":memory:"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.match(r"Starting WebSocket chat server on ws://127\.0\.0\.1:(\d+)", first)
        assert m, first + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        port = int(m.group(1))
        for path, kind, marker in (
            ("/", "text/html; charset=utf-8", b"<title>wschat</title>"),
            ("/demo", "text/html; charset=utf-8", b"WebSocket"),
            ("/sw.js", "text/javascript; charset=utf-8", b"caches.open"),
            ("/manifest.webmanifest", "application/manifest+json", b'"start_url"'),
        ):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                assert resp.status == 200 and resp.headers["Content-Type"] == kind, path
                assert marker in resp.read(), path
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_pyproject_names_the_same_dependencies_as_requirements_txt() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~ ]", d)[0].lower() for d in project["dependencies"]}
    pinned = {
        line.split("==")[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert declared == pinned
    assert "version" in project["dynamic"]  # one version constant, in wschat/__init__.py
    scripts = {"wschat-server": "wschat.server:main", "wschat-client": "wschat.client:main"}
    assert project["scripts"] == scripts


def test_the_systemd_unit_is_hardened_and_passes_systemd_analyze_verify(venv: Path, tmp_path: Path) -> None:
    text = UNIT.read_text()
    for line in (
        "User=wschat",
        "StateDirectory=wschat",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    exec_start = re.search(r"^ExecStart=(\S+)", text, re.M)
    assert exec_start and exec_start.group(1) == "/opt/wschat/bin/wschat-server"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (Debian: the systemd package)")
    # verify checks that ExecStart's program exists: point it at the one installed above
    unit = tmp_path / "wschat.service"
    unit.write_text(text.replace("/opt/wschat/bin/wschat-server", str(venv / "bin" / "wschat-server")))
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr  # unknown keys are warnings
