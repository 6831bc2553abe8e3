"""The benchmark's own bookkeeping (the benchmark itself is `make bench`, not a test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.stages import Report, measured, results_path


def _report() -> Report:
    return Report(started="2026-11-25T00:00:00+00:00", machine={}, parameters={})


def test_a_finished_stage_is_counted_with_its_peak_memory() -> None:
    report = _report()
    with measured(report, "stage", "rows", lambda: 3):
        pass
    [stage] = report.stages
    assert (stage.name, stage.items, stage.unit) == ("stage", 3, "rows")
    assert stage.seconds >= 0 and stage.peak_rss_mb > 0


def test_a_failed_stage_raises_its_own_error_and_is_not_counted() -> None:
    made: list[int] = []
    report = _report()
    with (
        pytest.raises(OSError, match="No space left"),
        measured(report, "stage", "rows", lambda: made[0]),
    ):
        raise OSError("No space left on device")
    assert report.stages == []


def test_a_later_run_of_the_same_day_gets_its_own_results_file(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    first = results_path(folder, "2026-11-25")
    assert first == folder / "2026-11-25.json"
    first.write_text("{}")
    second = results_path(folder, "2026-11-25")
    assert second == folder / "2026-11-25.2.json"
    second.write_text("{}")
    assert results_path(folder, "2026-11-25") == folder / "2026-11-25.3.json"
    assert results_path(folder, "2026-11-26") == folder / "2026-11-26.json"
