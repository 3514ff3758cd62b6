"""Step 4: records go into a bounded queue, out in batches to the store; spooled to disk while
Redis is away and replayed in order once it is back. See ``writer.py`` for the contract.

No redis import here: the writer talks to any ``RecordStore``.
"""

from proxy.writer.writer import RecordStore, Writer

__all__ = ["RecordStore", "Writer"]
