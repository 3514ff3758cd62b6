"""The process: build every service once, run both listeners, drain, fork workers.

``services`` is the composition root, ``server`` runs the listeners and the workers,
``log`` configures structlog.
"""
