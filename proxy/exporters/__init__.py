"""Off-path consumers of what the store records: they read the event stream, never the
request path. Not to be confused with dataset *export* (JSONL/CSV downloads)."""
