#!/usr/bin/env python3
"""Start the chat server: python chat-server.py [--port 8765] (see --help)."""

from wschat.server import main

if __name__ == "__main__":
    main()
