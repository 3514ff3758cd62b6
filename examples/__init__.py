"""Runnable examples (not installed with the package): ``python -m examples.chat``."""
