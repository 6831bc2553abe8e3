"""The read snapshot's copy of the warehouse."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from flows import snapshots
from flows.config import Settings
from flows.snapshots import copy_file, current_snapshot, take_snapshot


@pytest.mark.parametrize("size", [0, 1, 4096, 5 * 4096 + 123])
def test_copy_file_copies_every_chunk_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    monkeypatch.setattr(snapshots, "COPY_CHUNK", 4096)
    source, target = tmp_path / "source", tmp_path / "target"
    data = os.urandom(size)
    source.write_bytes(data)
    target.write_bytes(b"x" * (size + 10_000))  # longer than the copy: it must not remain
    copy_file(source, target)
    assert target.read_bytes() == data


def test_copy_file_copies_as_shutil_where_the_kernel_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(*args: int) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", cross_device)
    source, target = tmp_path / "source", tmp_path / "target"
    data = os.urandom(3 * 4096)
    source.write_bytes(data)
    copy_file(source, target)
    assert target.read_bytes() == data


def test_copy_file_raises_other_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*args: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", no_space)
    source = tmp_path / "source"
    source.write_bytes(b"warehouse")
    with pytest.raises(OSError, match="No space left"):
        copy_file(source, tmp_path / "target")


def test_the_two_newest_snapshots_are_kept_and_the_last_is_current(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, warehouse=tmp_path / "warehouse.duckdb")
    for number in range(4):
        Path(settings.warehouse).write_bytes(f"state {number}".encode())
        take_snapshot(settings, f"run_{number}")
        newest = current_snapshot(settings)
        assert newest is not None and newest.read_bytes() == f"state {number}".encode()
        os.utime(newest, (number, number))  # mtimes in order, whatever the clock's resolution
    folder = snapshots.snapshot_dir(settings)
    assert sorted(p.name for p in folder.iterdir()) == ["CURRENT", "run_2.duckdb", "run_3.duckdb"]


def test_warehouses_sharing_a_data_folder_keep_their_own_snapshots(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path, warehouse=tmp_path / "first.duckdb")
    second = Settings(data_dir=tmp_path, warehouse=tmp_path / "elsewhere" / "second.duckdb")
    for settings in (first, second):
        Path(settings.warehouse).parent.mkdir(exist_ok=True)
        Path(settings.warehouse).write_bytes(Path(settings.warehouse).name.encode())
        take_snapshot(settings, "run_1")
    for settings in (first, second):
        current = current_snapshot(settings)
        assert current is not None
        assert current.parent == Path(f"{settings.warehouse}.snapshots")
        assert current.read_bytes() == Path(settings.warehouse).name.encode()


def test_a_copy_a_crashed_writer_left_is_deleted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, warehouse=tmp_path / "warehouse.duckdb")
    Path(settings.warehouse).write_bytes(b"state")
    folder = snapshots.snapshot_dir(settings)
    folder.mkdir()
    (folder / ".run_0.duckdb.tmp").write_bytes(b"half a copy")
    take_snapshot(settings, "run_1")
    assert sorted(p.name for p in folder.iterdir()) == ["CURRENT", "run_1.duckdb"]
