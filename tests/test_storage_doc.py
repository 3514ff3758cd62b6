"""docs/storage.md lists exactly the keys proxy/store/keys.py builds: a key added to the code
without a row in the document (or a row left behind by a removed key) fails here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from proxy.store.keys import Keys

DOC = Path(__file__).resolve().parent.parent / "docs" / "storage.md"
# The placeholder each key-building method gets, as the document spells it.
INDEXES = {
    "session": "<id>", "user": "<id>", "model": "<m>", "upstream": "<u>", "tag": "<t>",
    "feedback": "<v>", "category": "<v>", "reason": "<v>", "rating": "<v>",
    "annotation": "<status>", "has_feedback": "1", "score": "<name>",
    "score_label": "<name>:<label>", "implicit": "<signal>", "cost_ge": "<step>",
    "cost_le": "<step>",
}  # fmt: skip


def built_by_code() -> tuple[set[str], set[str]]:
    """(every key pattern the Keys methods build, the names of the methods that built them)."""
    keys, used = Keys("fp"), set()
    patterns = set(keys.trace("<trace_id>").all())
    used.add("trace")
    patterns |= {keys.index(dim, value) for dim, value in INDEXES.items()}
    used.add("index")
    for name in ("dataset_rows", "dataset_order", "dataset_columns"):
        patterns.add(getattr(keys, name)("<dataset>"))
        used.add(name)
    for name in ("stats_counts", "stats_contributions", "implicit_seen", "stats_dimension_values"):
        patterns.add(getattr(keys, name)("<hour_ms>"))
        used.add(name)
    patterns.add(keys.score_pairs("<hour_ms>", "<name>"))  # type: ignore[arg-type]
    patterns.add(keys.session_inputs("<session_id>"))
    used |= {"score_pairs", "session_inputs"}
    patterns |= {keys.dimension_values("model"), keys.dimension_values("upstream")}
    used.add("dimension_values")
    for name in ("index_by_time", "index_registry", "datasets", "events"):
        patterns.add(getattr(keys, name))
        used.add(name)
    return patterns, used


def documented() -> set[str]:
    """Backticked ``fp:`` names in the first column of the document's key tables."""
    names = set()
    for line in DOC.read_text().splitlines():
        if line.startswith("| `fp:"):
            first_column = line.split(" | ")[0]
            names |= set(re.findall(r"`(fp:[^`]+)`", first_column))
    return names


def test_every_key_the_code_builds_is_documented_and_nothing_else() -> None:
    patterns, _ = built_by_code()
    assert documented() == patterns


def test_every_key_building_method_is_covered_here() -> None:
    """A new method on Keys must be added to built_by_code() (and so to the document)."""
    public = {name for name, _ in inspect.getmembers(Keys) if not name.startswith("_")} - {"prefix"}
    assert built_by_code()[1] == public
