"""The proxy listener: auth, trace context, feedback, forward, respond. The only aiohttp
server code on the proxy port.

``app`` mounts the routes on the services ``proxy.runtime`` built, ``forward`` relays one call,
``call`` holds one call as it happens, ``headers`` decides which headers cross each way,
``upstream`` resolves a path to an upstream and translates client errors, ``feedback_route``
serves ``POST /feedback``.
"""
