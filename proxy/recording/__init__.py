"""Step 3, beside the forwarding loop: one call's bytes become a span record. Pure, never raises.

``recorder`` watches request and response bytes, ``sse`` decodes event streams,
``providers/`` knows each provider endpoint's wire format (model, usage, input, output).
"""
