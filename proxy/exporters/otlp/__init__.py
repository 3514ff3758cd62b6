"""The OpenTelemetry exporter: spans and feedback events over OTLP/HTTP (docs/opentelemetry.md).

``mapping`` with ``spans``, ``evaluations`` and ``values`` (pure: stream entries to OTLP
messages), ``client`` (one gzipped POST on the exporter's own aiohttp session), ``exporter``
(the read-send-ack loop under a lease, on the consumer group of ``proxy.store.event_stream``),
``service`` (built from ``[export.otlp]`` and started by ``proxy.runtime.services``).
"""
