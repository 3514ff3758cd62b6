"""The ``feedback-proxy`` command: parse, pick a command, print. No server logic here."""

from proxy.cli.main import main

__all__ = ["main"]
