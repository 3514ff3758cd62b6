"""The docs link only inside the repository, and every link lands.

Every relative link in README.md and docs/*.md must resolve to a file (or folder) of the repo,
and a ``#fragment`` to a heading of the file it points at. No link may point outside the
repository (no ``http:``, ``mailto:`` or ``//`` links, nothing above the repo root), and no file
of README.md, docs/ or proxy/ may mention ``../shared``, a folder outside the repository.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = "../shared"

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]*:[^>\s]*)>")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def tracked_files() -> set[str]:
    """Paths (relative, POSIX) that git tracks; every file under ROOT when git cannot say."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        listed = b""
    if listed:
        return {name for name in listed.decode().split("\0") if name}
    skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
    return {
        path.relative_to(ROOT).as_posix()
        for path in ROOT.rglob("*")
        if path.is_file() and not skip.intersection(path.relative_to(ROOT).parts)
    }


TRACKED = tracked_files()


def _folders(names: set[str]) -> set[str]:
    folders = set()
    for name in names:
        parts = name.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return folders


FOLDERS = _folders(TRACKED)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """Markdown without fenced code blocks and code spans: what is left can hold links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(text: str) -> Iterator[str]:
    """Targets of inline links and images, reference definitions and autolinks."""
    body = prose(text)
    for pattern in (_INLINE, _REFERENCE, _AUTOLINK):
        for match in pattern.finditer(body):
            yield match.group(1)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def is_external(target: str) -> bool:
    return target.startswith("//") or _SCHEME.match(target) is not None


def problem(source: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``source``) is broken, or None when it lands."""
    if is_external(target):
        return "points outside the repository"
    path_part, _, fragment = target.partition("#")
    resolved = (source.parent / path_part).resolve() if path_part else source
    if not resolved.is_relative_to(ROOT):
        return "points above the repository root"
    relative = resolved.relative_to(ROOT).as_posix()
    if relative not in TRACKED and relative not in FOLDERS:
        return f"{relative} is not a file of the repository"
    if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
        return f"{relative} has no heading for #{fragment}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_lands_inside_the_repository(doc: Path) -> None:
    broken = [
        f"{target}: {why}"
        for target in links(doc.read_text(encoding="utf-8"))
        if (why := problem(doc, target)) is not None
    ]
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_docs_have_links_at_all() -> None:
    """Guards the parser: the README links to the docs it names."""
    found = set(links((ROOT / "README.md").read_text(encoding="utf-8")))
    assert {"docs/reference.md", "docs/architecture.md", "docs/storage.md"} <= found


def _text_files(*prefixes: str) -> list[str]:
    return sorted(
        name
        for name in TRACKED
        if name == "README.md" or name.startswith(prefixes)
        if not name.endswith((".pyc", ".png", ".jpg", ".gif", ".ico"))
    )


@pytest.mark.parametrize("name", _text_files("docs/", "proxy/"))
def test_nothing_mentions_the_folder_outside(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
    assert OUTSIDE not in text, f"{name} mentions {OUTSIDE}, outside the repository"


def test_the_readme_cites_the_reference_not_an_outside_spec() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"\bSPEC\b", text) is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("https://example.com/x", "points outside the repository"),
        ("//example.com/x", "points outside the repository"),
        ("mailto:someone@example.com", "points outside the repository"),
        ("../../elsewhere.md", "points above the repository root"),
        ("docs/no-such-file.md", "docs/no-such-file.md is not a file of the repository"),
        ("docs/storage.md", None),
        ("#limits", None),
        ("#no-such-heading", "README.md has no heading for #no-such-heading"),
    ],
)
def test_the_checker_itself(target: str, expected: str | None) -> None:
    assert problem(ROOT / "README.md", target) == expected


def test_links_in_code_are_not_links() -> None:
    text = "See [a](docs/a.md).\n\n```\n[b](https://x.example)\n```\n`[c](https://y.example)`\n"
    assert list(links(text)) == ["docs/a.md"]
