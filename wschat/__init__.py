"""wschat: a small self-hosted real-time chat (server, terminal client, web page)."""

__version__ = "1.0.0"
