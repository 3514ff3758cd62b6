"""Step 2: feedback from headers or a body, validated, turned into a merge record, applied.

``parse`` holds the value rules (pure), ``events`` builds the record the store merges (pure),
``token`` signs and checks browser feedback tokens (pure), ``service`` applies a record
through the store or queues it behind the writer (I/O), ``model_lookup`` finds which LLM model
a trace used, for a metric label (I/O).
"""
