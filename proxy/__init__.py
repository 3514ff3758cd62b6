"""feedback-proxy: an LLM reverse proxy that records calls as traces and merges user feedback."""

__version__ = "0.1.0"
