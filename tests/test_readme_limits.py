"""The README's limits tables say what the code does: every key, default and constant.

The first table lists configurable limits (``key | default | ...``) and is checked against the
settings dataclasses' defaults, in both directions: a new numeric setting that is not a limit
must be named in ``NOT_LIMITS`` here, or it must appear in the table. The second table lists
limits fixed in code (``limit | value | constant``) and is checked against those constants.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Settings, UpstreamSettings

README = Path(__file__).resolve().parent.parent / "README.md"
# Numeric settings that bound nothing: where to listen, and how many processes.
NOT_LIMITS = frozenset({"proxy.port", "admin.port", "proxy.workers"})
_CODE = re.compile(r"`([^`]+)`")


def limits_section() -> list[str]:
    """The lines of README's ``### Limits`` section, up to the next heading."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("### Limits") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("#"))
    return lines[start:end]


def table(header: str) -> list[list[str]]:
    """Rows (cells stripped) of the section's table whose header row starts with ``header``."""
    lines = limits_section()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def literal(text: str) -> Any:
    """A TOML literal as written in a cell (```30```, ```1.0```) turned into its value."""
    return tomllib.loads(f"v = {text}")["v"]


def code_default(key: str) -> Any:
    """The built-in default of a dotted settings key (``upstreams.<name>.*`` included)."""
    if key.startswith("export.otlp."):
        return getattr(Settings().otlp, key.removeprefix("export.otlp."))
    section, name = key.split(".", 1)
    if section == "upstreams":
        return getattr(UpstreamSettings(), name.split(".", 1)[1])
    return getattr(getattr(Settings(), section), name)


def numeric_setting_keys() -> set[str]:
    """Every int or float key of the settings sections, upstreams written as ``<name>``."""
    defaults = Settings()
    sections: dict[str, Any] = {
        f.name: getattr(defaults, f.name)
        for f in fields(defaults)
        if is_dataclass(getattr(defaults, f.name))
    }
    sections["upstreams.<name>"] = UpstreamSettings()
    sections["export.otlp"] = sections.pop("otlp")  # [export.otlp] is a nested table
    return {
        f"{section}.{f.name}"
        for section, values in sections.items()
        for f in fields(values)
        if isinstance(getattr(values, f.name), int | float)
        and not isinstance(getattr(values, f.name), bool)
    }


def constant(dotted: str) -> Any:
    """The value of ``module.NAME``, or the default of a dataclass field ``module.Class.field``."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:-1]:
            target = getattr(target, name)
        return _attribute(target, parts[-1])
    raise AssertionError(f"no module in {dotted}")


def _attribute(target: Any, name: str) -> Any:
    if is_dataclass(target):
        field = next(f for f in fields(target) if f.name == name)
        assert field.default is not MISSING
        return field.default
    return getattr(target, name)


def configurable_rows() -> list[tuple[str, str]]:
    return [(_CODE.findall(row[0])[0], row[1]) for row in table("| key | default |")]


def test_the_configurable_table_lists_every_numeric_setting_but_ports_and_workers() -> None:
    """A new limit in settings.py without a README row (or vice versa) fails here."""
    listed = [key for key, _ in configurable_rows()]
    assert len(listed) == len(set(listed)), "a key is listed twice"
    assert set(listed) == numeric_setting_keys() - NOT_LIMITS


@pytest.mark.parametrize(("key", "cell"), configurable_rows())
def test_each_configurable_default_matches_the_code(key: str, cell: str) -> None:
    """The default column's first literal is the dataclass default of that key."""
    assert literal(_CODE.findall(cell)[0]) == code_default(key)


def fixed_pairs() -> list[tuple[str, str]]:
    """(constant, literal) pairs of the fixed table, matched in order within each row."""
    pairs = []
    for row in table("| limit | value | constant |"):
        values, names = _CODE.findall(row[1]), _CODE.findall(row[2])
        assert len(values) == len(names), f"row {row[0]}: one value per constant"
        pairs += list(zip(names, values, strict=True))
    return pairs


def test_the_fixed_table_is_not_empty() -> None:
    """The parser found the second table (a broken header would silently check nothing)."""
    assert len(fixed_pairs()) >= 10


@pytest.mark.parametrize(("name", "cell"), fixed_pairs())
def test_each_fixed_limit_matches_its_constant(name: str, cell: str) -> None:
    """The value shown is the constant's value in the code."""
    assert literal(cell) == constant(name)
