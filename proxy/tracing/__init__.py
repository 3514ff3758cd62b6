"""Step 1 of a call: request headers become a ``TraceContext`` (IDs, parent, name, attributes).

Reads our ``X-Trace-*`` headers, W3C ``traceparent`` and the dialects of other gateways.
Pure: no aiohttp, no redis.
"""
