"""wschat: a small self-hosted real-time chat (server, terminal client, web page)."""

import os
import sys

__version__ = "1.0.0"


def program_name(script: str) -> str:
    """The name help and usage lines give: the installed command (`wschat-server`) when run as
    one, else the classic script's name, so the text tells the user what they actually typed."""
    ran = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return ran if ran.startswith("wschat-") else script
