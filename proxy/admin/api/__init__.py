"""The JSON admin API: one module per resource (traces, trace patches, datasets, stats,
metrics) and the OpenAPI document that describes them."""
