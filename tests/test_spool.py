"""The spool on its own: append-only JSON lines, per-process locks, checkpoints, bad tails."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.writer import spool as spool_module
from proxy.writer.spool import Spool


def records(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "n": i} for i in range(start, start + count)]


def ids(batch_records: list[dict[str, Any]]) -> list[str]:
    return [record["id"] for record in batch_records]


def drain(spool: Spool, limit: int = 1000) -> list[str]:
    """Read and commit everything the spool holds, in order."""
    seen: list[str] = []
    while spool.pending:
        batch = spool.read_batch(limit)
        seen += ids(batch.records)
        spool.commit(batch)
    return seen


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("spool-*.jsonl"))


def write_orphan(directory: Path, lines: list[bytes], name: str = "spool-1-dead") -> Path:
    """A spool file as a dead process left it (no lock held)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def lines_of(batch_records: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(record) + b"\n" for record in batch_records]


def test_append_then_read_in_order_and_delete_when_replayed(tmp_path: Path) -> None:
    """Records come back in append order, across appends; the file goes once all is replayed."""
    spool = Spool(tmp_path)
    spool.append(records(3))
    spool.append(records(4, start=3))
    assert spool.size_bytes > 0
    assert spool_files(tmp_path)[0].read_bytes().count(b"\n") == 7
    assert drain(spool, limit=2) == [f"r{i}" for i in range(7)]
    assert not spool.pending
    assert spool_files(tmp_path) == []
    assert list(tmp_path.iterdir()) == []  # no sidecar left either


def test_read_batch_respects_the_limit(tmp_path: Path) -> None:
    """A batch never holds more than ``limit`` records."""
    spool = Spool(tmp_path)
    spool.append(records(10))
    assert len(spool.read_batch(4).records) == 4


def test_uncommitted_batch_is_read_again(tmp_path: Path) -> None:
    """A batch Redis did not take is not consumed: the next read returns it again."""
    spool = Spool(tmp_path)
    spool.append(records(5))
    first = spool.read_batch(3)
    again = spool.read_batch(3)
    assert ids(first.records) == ids(again.records) == ["r0", "r1", "r2"]


def test_file_of_a_live_spool_is_not_claimed(tmp_path: Path) -> None:
    """flock is per open file: a second spool in this process cannot take a live one's file."""
    owner = Spool(tmp_path)
    owner.append(records(2))
    other = Spool(tmp_path)
    assert other.claim_orphans() == 0
    assert not other.pending
    owner.close()
    assert other.claim_orphans() == 1
    assert drain(other) == ["r0", "r1"]


def test_close_keeps_unreplayed_records_for_the_next_claimer(tmp_path: Path) -> None:
    """Closing unlocks the file and checkpoints progress; the next spool resumes from there."""
    first = Spool(tmp_path)
    first.append(records(6))
    first.commit(first.read_batch(2))
    first.close()
    assert len(spool_files(tmp_path)) == 1
    second = Spool(tmp_path)
    assert second.claim_orphans() == 1
    assert drain(second) == ["r2", "r3", "r4", "r5"]


def test_crash_mid_replay_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    """An orphan with a sidecar checkpoint is replayed from the checkpoint, not from the start."""
    lines = lines_of(records(6))
    path = write_orphan(tmp_path, lines)
    checkpoint = sum(len(line) for line in lines[:4])
    path.with_name(path.name + ".offset").write_bytes(str(checkpoint).encode())
    spool = Spool(tmp_path)
    spool.claim_orphans()
    assert drain(spool) == ["r4", "r5"]
    assert list(tmp_path.iterdir()) == []


def test_garbage_checkpoint_means_replay_from_the_start(tmp_path: Path) -> None:
    """An unreadable sidecar is safe: replaying from zero only re-sends idempotent writes."""
    path = write_orphan(tmp_path, lines_of(records(2)))
    path.with_name(path.name + ".offset").write_bytes(b"not a number")
    spool = Spool(tmp_path)
    spool.claim_orphans()
    assert drain(spool) == ["r0", "r1"]


def test_partial_last_line_is_skipped_and_reported(tmp_path: Path) -> None:
    """A crash mid-append leaves half a line: it is skipped (counted), the rest replays."""
    write_orphan(tmp_path, [*lines_of(records(3)), b'{"id": "r3", "n"'])
    spool = Spool(tmp_path)
    spool.claim_orphans()
    first = spool.read_batch(10)
    assert ids(first.records) == ["r0", "r1", "r2"]
    spool.commit(first)
    tail = spool.read_batch(10)
    assert tail.records == []
    assert tail.bad_lines == 1
    assert not spool.pending
    assert spool_files(tmp_path) == []


def test_corrupt_line_in_the_middle_is_skipped(tmp_path: Path) -> None:
    """A line that does not parse is counted and skipped; the lines after it still replay."""
    write_orphan(tmp_path, [*lines_of(records(1)), b"{broken\n", *lines_of(records(1, 1))])
    spool = Spool(tmp_path)
    spool.claim_orphans()
    batch = spool.read_batch(10)
    assert ids(batch.records) == ["r0", "r1"]
    assert batch.bad_lines == 1


def test_orphans_replay_before_our_own_records(tmp_path: Path) -> None:
    """Older files (claimed orphans) come first, then what this process spooled."""
    write_orphan(tmp_path, lines_of(records(2)))
    spool = Spool(tmp_path)
    spool.claim_orphans()
    spool.append(records(2, start=2))
    assert drain(spool) == ["r0", "r1", "r2", "r3"]


def test_unencodable_record_is_skipped_and_counted(tmp_path: Path) -> None:
    """A record orjson cannot encode is reported, never written as a broken line."""
    spool = Spool(tmp_path)
    assert spool.append([{"id": "ok"}, {"id": "bad", "value": object()}]) == 1
    assert drain(spool) == ["ok"]


def test_failed_write_raises_oserror_and_leaves_no_partial_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk surfaces as OSError(ENOSPC); the file is rolled back to its last full line."""
    spool = Spool(tmp_path)
    spool.append(records(2))
    dev_full = os.open("/dev/full", os.O_WRONLY)
    monkeypatch.setattr(spool_module, "_write_all", lambda fd, data: os.write(dev_full, data))
    with pytest.raises(OSError, match="No space left") as failure:
        spool.append(records(3, start=2))
    os.close(dev_full)
    assert failure.value.errno == errno.ENOSPC
    monkeypatch.undo()
    spool.append(records(1, start=9))
    assert drain(spool) == ["r0", "r1", "r9"]


def test_orphan_temp_file_is_removed(tmp_path: Path) -> None:
    """A crash between creating and naming a spool file leaves an empty temp file: cleaned up."""
    (tmp_path / ".spool-1-dead.tmp").write_bytes(b"")
    Spool(tmp_path).claim_orphans()
    assert list(tmp_path.iterdir()) == []


def big_records(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Records of about 64 KiB each: four of them make one write chunk."""
    return [{"id": f"r{i}", "text": "x" * (64 << 10)} for i in range(start, start + count)]


def test_a_big_spill_is_written_in_bounded_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 records of 64 KiB (a full queue of big spans, in small) go out in writes of about
    256 KiB, never as one 2.5 MiB buffer, and all of them replay in order."""
    spool = Spool(tmp_path)
    writes: list[int] = []
    real_write = spool_module._write_all

    def counting_write(fd: int, data: bytes) -> None:
        writes.append(len(data))
        real_write(fd, data)

    monkeypatch.setattr(spool_module, "_write_all", counting_write)
    spool.append(big_records(40))
    assert len(writes) >= 10
    assert max(writes) <= spool_module._WRITE_CHUNK + (65 << 10)
    assert drain(spool) == [f"r{i}" for i in range(40)]


def test_a_disk_failing_midway_through_a_big_spill_leaves_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second chunk fails: the first chunk's lines are cut off too, so the append is all or
    nothing (the writer counts all of its records dropped) and the next append is clean."""
    spool = Spool(tmp_path)
    spool.append(records(2))
    real_write = spool_module._write_all
    calls = {"n": 0}

    def failing_second(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    monkeypatch.setattr(spool_module, "_write_all", failing_second)
    with pytest.raises(OSError, match="No space left"):
        spool.append(big_records(12, start=2))
    monkeypatch.undo()
    spool.append(records(1, start=99))
    assert drain(spool) == ["r0", "r1", "r99"]
