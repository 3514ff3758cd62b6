"""The admin listener: trace API, health, and (later) datasets, stats and metrics."""
