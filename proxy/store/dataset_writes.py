"""The Redis writes that add dataset rows, shared by review rules and ``POST .../rows``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from proxy.core.records import DatasetRow
from proxy.datasets.columns import ORDER_STEP
from proxy.store.keys import Keys


def queue_rows(
    pipe: Any,
    keys: Keys,
    name: str,
    rows: Sequence[DatasetRow],
    columns: Mapping[str, str],
    added_at: float,
) -> None:
    """Queue the writes of new rows: ``HSETNX`` each (a trace is in a dataset once), its place
    in the order, the column names, the dataset's name. One reply per row comes first."""
    for row in rows:
        pipe.hsetnx(keys.dataset_rows(name), row["row_id"], orjson.dumps(row))
    pipe.zadd(
        keys.dataset_order(name),
        {row["row_id"]: added_at + i * ORDER_STEP for i, row in enumerate(rows)},
        nx=True,
    )
    pipe.zadd(
        keys.dataset_columns(name),
        {column: added_at + i * ORDER_STEP for i, column in enumerate(columns)},
        nx=True,
    )
    pipe.sadd(keys.datasets, name)
