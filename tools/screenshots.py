"""Refreshes docs/screenshot-desktop.png and docs/screenshot-mobile.png, the README's pictures.

The screenshots come from the browser tests' two scene tests (tests/test_web_layout.py), which
normally write them to a temporary folder so that a test run leaves the checkout alone; this
runs those two tests with WSCHAT_SCREENSHOTS pointing at docs/:

    python tools/screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = [
    "tests/test_web_layout.py::test_desktop_view",
    "tests/test_web_layout.py::test_phone_view_has_no_horizontal_scroll_and_a_drawer",
]


def main() -> int:
    env = {**os.environ, "WSCHAT_SCREENSHOTS": str(ROOT / "docs")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *TESTS]
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if done.returncode == 0:
        print("updated docs/screenshot-desktop.png and docs/screenshot-mobile.png")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
