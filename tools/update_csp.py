"""Rewrites the Content-Security-Policy <meta> of the web pages to match their inline code.

The pages allow only their own inline <script> and <style>, by SHA-256 hash, so any edit to
either block changes the hash and the browser would refuse to run the page. Run this after
editing a page:

    python tools/update_csp.py                 # both pages
    python tools/update_csp.py --check         # exit 1 if a page's meta is out of date

tests/test_web_static.py recomputes the hashes on its own and fails when they do not match.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("chat-web-client.html", "websocket-demo.html")
META = re.compile(r'(<meta http-equiv="Content-Security-Policy" content=")([^"]*)(">)')


def sha256(text: str) -> str:
    # Browsers hash the element's text after HTML parsing, which turns CRLF into LF.
    digest = hashlib.sha256(text.replace("\r\n", "\n").encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def policy(html: str) -> str:
    scripts = [sha256(s) for s in re.findall(r"<script>(.*?)</script>", html, re.S)]
    styles = [sha256(s) for s in re.findall(r"<style>(.*?)</style>", html, re.S)]
    return "; ".join(
        (
            "default-src 'none'",
            "script-src " + " ".join(scripts),
            "style-src " + " ".join(styles),
            "img-src data: http: https:",  # shared images come from the chat server, wherever the page is
            "connect-src ws: wss:",
            "manifest-src 'self'",  # the installable page's manifest and service worker (wschat.webapp)
            "worker-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )


def update(path: Path, check: bool) -> bool:
    """Returns True if the page's meta already matched."""
    html = path.read_text(encoding="utf-8")
    if not META.search(html):
        raise SystemExit(f"{path.name} has no Content-Security-Policy meta tag.")
    new = META.sub(lambda m: m.group(1) + policy(html) + m.group(3), html, count=1)
    if new == html:
        return True
    if not check:
        path.write_text(new, encoding="utf-8", newline="\n")
        print(f"updated {path.name}")
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report pages whose meta is out of date")
    opts = ap.parse_args()
    stale = [name for name in PAGES if (ROOT / name).exists() and not update(ROOT / name, opts.check)]
    if opts.check and stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
