"""Redaction before storage: what a span, a feedback comment or a score explanation carries
passes through here once, on the writer's side, before Redis, the spool or the event stream see
it. ``detectors`` finds values of each kind, ``redactor`` replaces them (mask or keyed hash),
``records`` applies it to the writer's records. Pure: imports neither aiohttp nor redis.
"""

from proxy.redaction.records import hash_key, redact_record, redactor_for
from proxy.redaction.redactor import BUILTIN_KINDS, Redactor

__all__ = ["BUILTIN_KINDS", "Redactor", "hash_key", "redact_record", "redactor_for"]
