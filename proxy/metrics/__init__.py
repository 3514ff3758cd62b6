"""Numbers counted on the hot path and rendered only when scraped.

``calls`` counts calls (pure), ``feedback`` counts merged feedback events (pure),
``prometheus`` renders snapshots as the text exposition, ``workers`` shares snapshots across
worker processes through files.
"""
