"""Append-only JSON-lines spool files: where the writer parks records while Redis is away.

Several proxy processes may share one spool directory. Each writer appends only to a file of
its own (``spool-<pid>-<random>.jsonl``) and holds an exclusive ``flock`` on every file it owns
for as long as it lives. A file whose lock can be taken belongs to a process that is gone: the
next writer to start claims it (takes the lock) and replays it.

Replay progress is checkpointed in a ``<file>.offset`` sidecar (write, then atomic rename)
after every batch Redis accepted. A crash between a batch reaching Redis and its checkpoint
means that batch is sent again from the last checkpoint; record writes are idempotent, so the
re-sent records still leave one copy each ("exactly once in effect"). A partial last line (a
crash in the middle of an append) and lines that do not parse are skipped and reported, never
fatal. A file is deleted, with its sidecar, once fully replayed.

Every disk failure surfaces as ``OSError`` to the caller (the writer), which counts the records
lost. Failures that lose nothing (a missed checkpoint, an undeletable file) only mean a later
replay re-sends records, which idempotency makes harmless; they are suppressed here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import orjson

from proxy.core.records import Record

SPOOL_GLOB = "spool-*.jsonl"
TEMP_GLOB = ".spool-*.tmp"
_READ_CHUNK = 1 << 20
_WRITE_CHUNK = 256 << 10  # bytes of JSON lines encoded and written at a time
_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC


@dataclass(eq=False, slots=True)
class _Segment:
    """One locked spool file: ``size`` bytes of it are known, ``offset`` bytes are replayed."""

    path: Path
    fd: int
    size: int
    offset: int = 0
    sealed: bool = True  # no more appends: a claimed file, or our own after a failed append

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".offset")


@dataclass(slots=True)
class SpoolBatch:
    """The next records to replay; ``commit`` it once Redis has taken them."""

    records: list[Record] = field(default_factory=list)
    bad_lines: int = 0  # lines skipped because they do not parse (records lost)
    segment: _Segment | None = None
    end: int = 0


class Spool:
    """The spool files one writer owns: claimed orphans first, then its own file, in order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._segments: list[_Segment] = []
        self._own: _Segment | None = None

    @property
    def size_bytes(self) -> int:
        """Bytes spooled and not yet replayed."""
        return sum(segment.size - segment.offset for segment in self._segments)

    @property
    def pending(self) -> bool:
        return any(segment.offset < segment.size for segment in self._segments)

    def claim_orphans(self) -> int:
        """Lock and queue for replay every spool file of a dead process; returns how many."""
        self.directory.mkdir(parents=True, exist_ok=True)
        _remove_orphan_temps(self.directory)
        paths = sorted(self.directory.glob(SPOOL_GLOB), key=_mtime)
        claimed = [segment for path in paths if (segment := _claim(path)) is not None]
        own = [self._own] if self._own is not None else []
        self._segments = [s for s in self._segments if s not in own] + claimed + own
        return len(claimed)

    def append(self, records: Sequence[Record]) -> int:
        """Append records as JSON lines; returns how many could not be encoded (skipped).

        Raises ``OSError`` when the disk refuses the write; then none of them was spooled.
        """
        segment: _Segment | None = None
        written = unencodable = 0
        try:
            for data, bad in _encoded_chunks(records):
                unencodable += bad
                if data:
                    segment = segment or self._own or self._open_own()
                    _write_all(segment.fd, data)
                    written += len(data)
        except OSError:
            if segment is not None:
                self._roll_back(segment)  # none of them spooled: no partial append stays
            raise
        if segment is not None:
            segment.size += written
        return unencodable

    def read_batch(self, limit: int) -> SpoolBatch:
        """Up to ``limit`` records from the oldest unreplayed position (empty when none)."""
        batch = SpoolBatch()
        while self._segments and not batch.records:
            segment = self._segments[0]
            lines, end = _read_lines(segment.fd, segment.offset, segment.size, limit)
            if not lines:
                batch.bad_lines += self._finish_exhausted(segment)
                continue
            batch.records, bad = _decode(lines)
            batch.bad_lines += bad
            batch.segment, batch.end = segment, end
            if not batch.records:  # only bad lines: skip past them and go on
                self.commit(batch)
                batch.segment = None
        return batch

    def commit(self, batch: SpoolBatch) -> None:
        """Record that ``batch`` reached Redis: checkpoint, or delete a fully replayed file."""
        segment = batch.segment
        if segment is None:
            return
        segment.offset = max(segment.offset, batch.end)
        if segment.offset >= segment.size:
            self._finish(segment)
        else:
            _checkpoint(segment)

    def abandon_head(self) -> None:
        """Stop replaying the oldest file (unreadable): it stays on disk for the next start."""
        if self._segments:
            self._release(self._segments[0])

    def close(self) -> None:
        """Checkpoint and unlock every file; unreplayed records stay on disk for the next start."""
        for segment in list(self._segments):
            if segment.offset >= segment.size:
                self._finish(segment)
            else:
                _checkpoint(segment)
                self._release(segment)

    def _open_own(self) -> _Segment:
        segment = _create_segment(self.directory)
        self._own = segment
        self._segments.append(segment)
        return segment

    def _roll_back(self, segment: _Segment) -> None:
        """Cut a failed append off our file; if even that fails, stop appending to the file."""
        try:
            os.ftruncate(segment.fd, segment.size)
        except OSError:
            segment.sealed = True  # its tail may hold a partial line, which replay skips
            self._own = None
            with contextlib.suppress(OSError):
                segment.size = os.fstat(segment.fd).st_size

    def _finish_exhausted(self, segment: _Segment) -> int:
        """Drop a file with no complete line left; returns 1 if a partial line was skipped."""
        partial = 1 if segment.sealed and segment.offset < segment.size else 0
        segment.offset = segment.size
        self._finish(segment)
        return partial

    def _finish(self, segment: _Segment) -> None:
        # An undeletable file is replayed again by the next start: harmless, writes are idempotent.
        with contextlib.suppress(OSError):
            segment.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            segment.sidecar.unlink(missing_ok=True)
        self._release(segment)

    def _release(self, segment: _Segment) -> None:
        if segment is self._own:
            self._own = None
        self._segments.remove(segment)
        os.close(segment.fd)


def _create_segment(directory: Path) -> _Segment:
    """A new file of ours, locked before its final name makes it visible to other processes."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"spool-{os.getpid()}-{secrets.token_hex(6)}"
    temp = directory / f".{name}.tmp"
    fd = os.open(temp, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = directory / f"{name}.jsonl"
        os.rename(temp, path)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return _Segment(path, fd, size=0, sealed=False)


def _claim(path: Path) -> _Segment | None:
    """Lock ``path`` if its owner is gone; None when it is alive (or the file just vanished)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        stat = os.fstat(fd)
        if os.stat(path).st_ino != stat.st_ino:  # replayed and deleted by another claimer
            raise FileNotFoundError(path)
    except OSError:  # BlockingIOError: a live process holds it
        os.close(fd)
        return None
    segment = _Segment(path, fd, size=stat.st_size)
    segment.offset = min(_read_checkpoint(segment.sidecar), segment.size)
    return segment


def _remove_orphan_temps(directory: Path) -> None:
    """Temp files are empty (renamed before any write); unlocked ones are a crash's leftovers."""
    for temp in directory.glob(TEMP_GLOB):
        segment = _claim(temp)
        if segment is not None:
            with contextlib.suppress(OSError):
                temp.unlink()
            os.close(segment.fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _read_checkpoint(sidecar: Path) -> int:
    try:
        return max(0, int(sidecar.read_bytes()))
    except (OSError, ValueError):
        return 0


def _checkpoint(segment: _Segment) -> None:
    # A missed checkpoint only means re-sending a batch after a crash, which is idempotent.
    temp = segment.sidecar.with_name(segment.sidecar.name + ".tmp")
    with contextlib.suppress(OSError):
        temp.write_bytes(str(segment.offset).encode())
        os.replace(temp, segment.sidecar)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _encoded_chunks(records: Sequence[Record]) -> Iterator[tuple[bytes, int]]:
    """The records as JSON lines, in writes of about ``_WRITE_CHUNK`` bytes, each with how
    many records could not be encoded: a full queue (10,000 spans) spills without ever
    holding all of its lines, and their join, in memory at once."""
    lines: list[bytes] = []
    size = bad = 0
    for record in records:
        try:
            line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:
            bad += 1
            continue
        lines.append(line)
        size += len(line)
        if size >= _WRITE_CHUNK:
            yield b"".join(lines), bad
            lines, size, bad = [], 0, 0
    if lines or bad:
        yield b"".join(lines), bad


def _decode(lines: list[bytes]) -> tuple[list[Record], int]:
    records: list[Record] = []
    for line in lines:
        with contextlib.suppress(orjson.JSONDecodeError):
            record = orjson.loads(line)
            if isinstance(record, dict):
                records.append(cast(Record, record))  # written by _encode from a Record
    return records, len(lines) - len(records)


def _read_lines(fd: int, offset: int, end: int, limit: int) -> tuple[list[bytes], int]:
    """Up to ``limit`` complete lines between ``offset`` and ``end``, and the offset after them."""
    chunk = _READ_CHUNK
    while True:
        want = min(chunk, end - offset)
        data = os.pread(fd, want, offset)
        lines = data.split(b"\n")[:-1][:limit]
        if lines or len(data) < want or want == end - offset:
            return lines, offset + sum(len(line) + 1 for line in lines)
        chunk *= 2  # one line longer than the chunk: read more
