"""Run the bench's one-day incremental run again, on the history `bench/run.py --workdir W`
kept, as often as asked: each run starts from the warehouse as it was before the day (the
output folder keeps the previous run's files, which the day replaces again). One run of the
day moves with this machine's disk and page cache by a second or more, so changes to it are
compared on several.

    uv run python bench/day.py --workdir W [--runs 3] [--cold]

Imports wait for `main`, as in `bench/run.py`: the signing workers import the main module again.
"""

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

STAGES = ["ingest", "summaries", "checkpoints", "publish", "snapshot"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="as given to bench/run.py")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cold", action="store_true", help="empty the page cache before each run (root only)"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from rich.table import Table

    from bench.stages import AS_OF, BEFORE_DAY, bench_settings, console
    from flows.pipeline import run_nightly

    before = args.workdir / BEFORE_DAY
    if not before.exists():
        parser.error(f"{before} is missing: run `bench/run.py --workdir {args.workdir}` first")
    settings = bench_settings(args.workdir)
    table = Table("run", "total s", *(f"{s} s" for s in STAGES), "files", title="the day again")
    totals: list[list[float]] = []
    for run in range(1, args.runs + 1):
        shutil.copyfile(before, settings.warehouse)
        os.sync()
        if args.cold:
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        started = time.perf_counter()
        report = run_nightly(settings, as_of=AS_OF, orchestrated=False)
        seconds = [
            time.perf_counter() - started,
            *(report.stage_seconds.get(s, 0.0) for s in STAGES),
        ]
        totals.append(seconds)
        table.add_row(str(run), *(f"{v:.2f}" for v in seconds), f"{report.publication.files:,}")
    medians = [statistics.median(column) for column in zip(*totals, strict=True)]
    table.add_row("median", *(f"{v:.2f}" for v in medians), "", style="bold")
    console.print(table)


if __name__ == "__main__":
    main()
