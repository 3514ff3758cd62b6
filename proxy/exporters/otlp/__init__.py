"""Room for the OpenTelemetry exporter: spans and feedback events over OTLP/HTTP.

Planned modules: ``mapping.py`` (pure: span and feedback records to OTLP messages),
``consumer.py`` (a consumer group on the event stream: ``XREADGROUP``/``XACK``, pending
entries re-claimed after a crash), ``client.py`` (batched, gzipped POSTs with the aiohttp
client). Started by ``proxy.runtime.services`` when ``[export.otlp]`` is set. Nothing here yet.
"""
