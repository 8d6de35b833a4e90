#!/usr/bin/env python3
"""Terminal chat client: python chat-client.py [host:port] [--username NAME]; --help for more."""

from wschat.client import main

if __name__ == "__main__":
    main()
