"""Draws the web page's PNG icons into wschat/static/icons/ (wschat.webapp.icon_png, Pillow).

The server serves these files as they are (drawing one takes up to a third of a second, too
long to do on the event loop); tests/test_lan_web.py checks they match what icon_png() draws.
Run after changing the drawing:

    python tools/gen_icons.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wschat.webapp import PNG_ICONS, STATIC, icon_png  # noqa: E402


def main() -> None:
    for name, (size, maskable) in PNG_ICONS.items():
        path = STATIC / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(icon_png(size, maskable=maskable))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
