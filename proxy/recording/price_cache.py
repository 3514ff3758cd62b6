"""Where the price table comes from: a file built once per genai-prices release.

The table (``price_table``) is built by ``price_table_build`` in a child process, so this
process never loads genai-prices. The child's output is kept in a file named after the
genai-prices release and the table format, so a process starts by reading it (a few
milliseconds) instead of building it (about two seconds), and a new release of genai-prices or
of the format makes a new file. Directories, first found first:

1. ``<sys.prefix>/share/feedback-proxy``: built when the image or environment was made (the
   Dockerfile does this), read-only at run time;
2. ``$XDG_CACHE_HOME/feedback-proxy``, else ``~/.cache/feedback-proxy``: built on first start.

A file that does not parse, or whose index names another release, is built again. When the
cache directory cannot be written, the table is kept in memory only and the reason logged; when
the build itself fails, there is no table and spans cost None (with the reason logged): pricing
is a convenience, never a reason for the proxy not to start.

A process loads the table once (``load_price_table`` keeps it): forked workers share the
parent's copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import structlog

from proxy.recording.price_table import FORMAT, PriceTable, PriceTableError

log = structlog.get_logger("proxy.pricing")
BUILD_TIMEOUT_S = 120.0
_loaded: list[PriceTable | None] = []  # at most one entry: this process's table


def table_name() -> str:
    """The table's file name: one per genai-prices release and table format."""
    return f"price-table-{version('genai-prices')}-f{FORMAT}.jsonl"


def table_dirs() -> list[Path]:
    """Where a table is looked for, the pre-built one first; the last is written to."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return [Path(sys.prefix) / "share" / "feedback-proxy", Path(cache_home) / "feedback-proxy"]


def load_price_table() -> PriceTable | None:
    """This process's price table: read from a file, else built (and saved); None when it
    cannot be built. Blocks (a file read, or a child process): call it off the event loop."""
    if not _loaded:
        _loaded.append(_read_or_build())
    return _loaded[0]


def _read_or_build() -> PriceTable | None:
    name, dirs = table_name(), table_dirs()
    for directory in dirs:
        table = _read(directory / name)
        if table is not None:
            return table
    data = _build()
    if data is None:
        return None
    try:
        table = PriceTable(data)
    except PriceTableError as error:
        log.error("price table build gave no table: spans have no cost", error=str(error))
        return None
    try:
        write_atomically(dirs[-1], data)
    except OSError as error:
        log.warning("price table kept in memory only", path=str(dirs[-1]), error=str(error))
    return table


def _read(path: Path) -> PriceTable | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        table = PriceTable(data)
    except PriceTableError as error:
        log.warning(
            "price table file unreadable: building it again", path=str(path), error=str(error)
        )
        return None
    if table.genai_prices != version("genai-prices"):
        log.warning("price table file is of another genai-prices release", path=str(path))
        return None
    return table


def _build() -> bytes | None:
    """The table's text from a child process, or None (logged) when it fails."""
    command = [sys.executable, "-m", "proxy.recording.price_table_build"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=BUILD_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.error("price table build failed: spans have no cost", error=str(error))
        return None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        log.error(
            "price table build failed: spans have no cost",
            exit_code=done.returncode,
            error=tail[0],
        )
        return None
    return done.stdout


def write_atomically(directory: Path, data: bytes) -> Path:
    """Write the table into ``directory`` under its name, whole or not at all (a temporary
    file renamed over it: a process reading meanwhile sees the old file or the new one)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / table_name()
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".price-table-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
