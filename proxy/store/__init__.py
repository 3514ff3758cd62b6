"""Step 5: everything that speaks Redis, and nothing else does.

Connections (``connection``, ``resp_pipe``, ``embedded``), key names (``keys``), span and
feedback writes (``redis_store``, ``feedback_merge``, Lua in ``lua/``), reads (``trace_query``),
datasets, stats counters and start-up checks. Redis failures become ``StoreUnavailable`` here.
"""
