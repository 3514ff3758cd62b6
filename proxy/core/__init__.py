"""Layer 0, the words every stage shares: the error family, IDs and their rules, record shapes.

Pure: imports nothing of the proxy, neither aiohttp nor redis. Everything else may import it.
"""
