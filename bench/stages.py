"""`make bench` (entry point `bench/run.py`): measure every stage of the pipeline on generated
data, on this machine, against floors measured in the same run.

Not a test: it prints a table (rows or leaves per second, wall time, peak RSS of the process
tree, ratio to a floor) and writes it as JSON to bench/results/<date>[.n].json so runs can be
compared. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import calendar
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.config import Settings  # noqa: E402
from flows.fingerprints import tree_leaves  # noqa: E402
from flows.generate import generate_landing_files  # noqa: E402
from flows.pipeline import RunReport, open_warehouse, run_nightly  # noqa: E402
from flows.snapshots import snapshot_dir  # noqa: E402
from flows.warehouse import query_frame  # noqa: E402
from transforms.leaves import leaf_text  # noqa: E402
from transforms.ledger import TREE  # noqa: E402
from transforms.period_roots import leaf_hash_rows, tree_roots  # noqa: E402
from transforms.synthetic import GeneratorSpec  # noqa: E402

console = Console(width=150)
PAGE = os.sysconf("SC_PAGE_SIZE")
END_MONTH = "2026-10"  # twelve closed months before...
AS_OF = date(2026, 11, 2)  # ...the nightly run's date
BEFORE_DAY = "warehouse-before-day.duckdb"  # kept in --workdir for `bench/day.py`


@dataclass
class Stage:
    name: str
    items: int
    unit: str
    seconds: float
    peak_rss_mb: float
    floor_per_second: float | None = None
    notes: str = ""

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


@dataclass
class Report:
    started: str
    machine: dict[str, Any]
    parameters: dict[str, Any]
    stages: list[Stage] = field(default_factory=list)
    floors: dict[str, float] = field(default_factory=dict)


def _rss_mb(pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE / 2**20
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def _cmdline(pid: int | str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _tree_rss_mb() -> float:
    """Resident memory of this process and its children (the signing pool, the API server).

    A child that still has this process's command line is between fork and exec (the signing
    pool spawns its workers): its pages are this process's, shared, and counting them once more
    made a peak of 3 GB look like 6. Children that run on after a fork without exec would be
    missed; nothing here starts one.
    """
    own = _cmdline("self")
    total, pending = _rss_mb(), [str(os.getpid())]
    while pending:
        pid = pending.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    for child in children.read().split():
                        if _cmdline(child) != own:
                            total += _rss_mb(child)
                        pending.append(child)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@contextmanager
def measured(
    report: Report, name: str, unit: str, count: Callable[[], int]
) -> Iterator[list[tuple[float, float]]]:
    """Time a stage and sample the resident memory of the process tree every 20 ms; the
    samples (perf_counter, MB) are handed to the caller for per-stage peaks."""
    samples = [(time.perf_counter(), _tree_rss_mb())]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            samples.append((time.perf_counter(), _tree_rss_mb()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield samples
    finally:
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    # Only a stage that finished is counted: a failed one raises its own error, not one of
    # counting what it never made.
    samples.append((time.perf_counter(), _tree_rss_mb()))
    peak = max(rss for _, rss in samples)
    report.stages.append(Stage(name, count(), unit, seconds, peak))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deltas", type=int, default=1_000_000, help="first events in total")
    parser.add_argument("--customers", type=int, default=10_000, help="in total, over tenants")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--format", default="csv", choices=["csv", "jsonl", "parquet"])
    parser.add_argument("--peer-leaves", type=int, default=1_000_000, help="subset for the peers")
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: a temp dir)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tallyproof-bench-"))
    settings = bench_settings(workdir)
    for folder in (settings.inbox, settings.output, snapshot_dir(settings)):
        shutil.rmtree(folder, ignore_errors=True)
    Path(settings.warehouse).unlink(missing_ok=True)
    spec = GeneratorSpec(
        tenants=args.tenants,
        customers=max(1, args.customers // args.tenants),
        months=args.months,
        deltas_per_month=max(1, args.deltas // (args.months * args.tenants)),
        seed=1,
        end_month=END_MONTH,
        format=args.format,
    )
    report = Report(
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        parameters={**vars(args), "workdir": str(workdir)},
    )
    report.floors["sha256 leaves/s"] = sha256_floor()

    made: list[Any] = []
    with measured(report, "generate", "rows", lambda: made[0].rows):
        made.append(generate_landing_files(spec, settings.inbox))
    console.print(
        f"generated {made[0].rows:,} rows in {made[0].files} files "
        f"({made[0].bytes / 1e6:.0f} MB) under {workdir}"
    )
    # The last day of the last month, and what landed after it, is held back for the
    # incremental run: one more day on top of twelve months.
    held = workdir / "held-back"
    held.mkdir(exist_ok=True)
    year, month = (int(part) for part in END_MONTH.split("-"))
    last_day = f"{END_MONTH}-{calendar.monthrange(year, month)[1]:02d}"
    for path in [p for p in Path(settings.inbox).iterdir() if p.name[:10] >= last_day]:
        path.rename(held / path.name)

    io_floor(report, settings, args.format)
    file_floor(report, Path(settings.data_dir))
    full = pipeline_run(report, settings, "full run")
    if args.workdir:  # the history before the day, for `bench/day.py` to run the day again
        shutil.copyfile(settings.warehouse, workdir / BEFORE_DAY)
    for path in held.iterdir():
        path.rename(Path(settings.inbox) / path.name)
    incremental = pipeline_run(report, settings, "incremental run (one day)")
    incremental.notes = (
        f"{incremental.seconds / full.seconds:.1%} of the full run (target under 5%); "
        + incremental.notes
    )

    with open_warehouse(settings) as con:
        leaves = merkle_leaves(con)
    merkle_stage(report, leaves)
    peers(report, leaves, args.peer_leaves)
    api_stages(report, settings)

    floor = report.floors["sha256 leaves/s"]
    for stage in report.stages:
        if stage.unit == "leaves" and floor:
            stage.floor_per_second = floor
    if floor and full.floor_per_second is None:
        # End to end against the sum of the floors: hashing every leaf plus reading and
        # writing every landing row once.
        floor_seconds = leaves.height / floor + full.items / report.floors["io rows/s"]
        full.floor_per_second = full.items / floor_seconds
        full.notes = (
            f"{full.seconds / floor_seconds:.1f}x the floors' {floor_seconds:.1f} s "
            f"(target within 3x); " + full.notes
        )

    print_report(report)
    out = results_path(Path(__file__).resolve().parent / "results", f"{datetime.now(UTC):%Y-%m-%d}")
    out.write_text(json.dumps(asdict(report) | {"rates": rates(report.stages)}, indent=2) + "\n")
    console.print(f"written to {out}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def results_path(folder: Path, day: str) -> Path:
    """`<day>.json` in `folder`, or for a later run of the same day `<day>.2.json`, `.3`...:
    a run never overwrites another's table."""
    folder.mkdir(parents=True, exist_ok=True)
    out, number = folder / f"{day}.json", 1
    while out.exists():
        number += 1
        out = folder / f"{day}.{number}.json"
    return out


def bench_settings(workdir: Path) -> Settings:
    return Settings(data_dir=workdir, salt_key="bench-salt-key", lock_wait_seconds=0)


def rates(stages: list[Stage]) -> dict[str, float]:
    """Items per second by stage; a stage of a run (indented) is named after its run, as in
    "full run: ingest" and "incremental run (one day): ingest"."""
    named: dict[str, float] = {}
    parent = ""
    for stage in stages:
        if stage.name.startswith(" "):
            named[f"{parent}: {stage.name.strip()}"] = stage.rate
        else:
            parent = stage.name
            named[stage.name] = stage.rate
    return named


def io_floor(report: Report, settings: Settings, fmt: str) -> None:
    """DuckDB reading the landing files and writing them as Parquet, nothing else."""
    os.sync()
    import duckdb

    reader = {
        "csv": "read_csv({files}, all_varchar = true)",
        "jsonl": "read_json({files}, format = 'newline_delimited')",
        "parquet": "read_parquet({files})",
    }[fmt]
    files = f"'{settings.inbox}/*.{fmt}'"
    target = Path(settings.data_dir) / "io-floor.parquet"
    rows: list[int] = []
    with measured(report, "I/O floor (DuckDB: landing files to Parquet)", "rows", lambda: rows[0]):
        con = duckdb.connect()
        copied = con.execute(
            f"COPY (SELECT * FROM {reader.format(files=files)}) TO '{target}' (FORMAT parquet)"
        ).fetchall()
        rows.append(int(copied[0][0]))
        con.close()
    target.unlink()
    report.floors["io rows/s"] = report.stages[-1].rate


def file_floor(report: Report, folder: Path, files: int = 20_000) -> None:
    """How fast this file system creates small files (2.5 KB, four to a folder, as the
    per-customer exports are) from one thread, nothing else: the floor of a local publish."""
    root = folder / "file-floor"
    os.sync()
    data = b"x" * 2500
    with measured(report, "file floor (create small files)", "files", lambda: files):
        for i in range(files):
            sub = root / f"c{i // 4}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{i}.csv").write_bytes(data)
    shutil.rmtree(root)
    report.floors["file creates/s"] = report.stages[-1].rate


def pipeline_run(report: Report, settings: Settings, name: str) -> Stage:
    """One real nightly run, as `tallyproof run` does it, with a row per stage."""
    os.sync()  # the previous stage's dirty pages are not this run's I/O
    runs: list[RunReport] = []
    with measured(report, name, "rows", lambda: runs[0].ingest.rows_read) as samples:
        runs.append(run_nightly(settings, as_of=AS_OF, orchestrated=False))
    run = runs[0]
    whole = report.stages[-1]
    counts = {
        "ingest": (run.ingest.rows_read, "rows"),
        "summaries": (run.summaries_written, "customer-periods"),
        "checkpoints": (run.checkpoints.new_versions, "checkpoints"),
        "publish": (run.publication.files, "files"),
        "snapshot": (1, "copies"),
    }
    for stage_name, (items, unit) in counts.items():
        started, ended = run.stage_spans.get(stage_name, (0.0, 0.0))
        peak = max((rss for t, rss in samples if started <= t <= ended), default=0.0)
        stage = Stage(f"  {stage_name}", items, unit, run.stage_seconds.get(stage_name, 0.0), peak)
        if stage_name == "publish":
            stage.floor_per_second = report.floors.get("file creates/s")
            stage.notes = (
                f"{run.publication.bytes / 1e6:,.0f} MB, "
                f"{run.publication.bytes / 1e6 / max(stage.seconds, 1e-9):,.1f} MB/s, "
                f"{run.publication.unchanged:,} unchanged"
            )
        if stage_name == "checkpoints":
            stage.notes = f"{run.checkpoints.leaves_hashed:,} leaves hashed"
        report.stages.append(stage)
    whole.notes = f"{run.ingest.rows_accepted:,} rows accepted"
    return whole


def merkle_leaves(con: Any) -> pl.DataFrame:
    """The leaf bytes of every tree of the warehouse, sorted by tree and leaf index."""
    trees = query_frame(con, "select_verified_trees")
    return leaf_text(tree_leaves(con, trees).lazy()).collect()


def merkle_stage(report: Report, texts: pl.DataFrame) -> None:
    """Leaf bytes to roots for every tree of the warehouse, the checkpoint hot path."""
    parts: dict[str, Any] = {}
    with measured(report, "merkle roots (leaf bytes to roots)", "leaves", lambda: texts.height):
        started = time.perf_counter()
        keys, hashes = leaf_hash_rows(texts)
        parts["leaves"] = time.perf_counter() - started
        parts["roots"] = tree_roots(keys, hashes)
    levels = report.stages[-1].seconds - parts["leaves"]
    mean = texts["leaf"].str.len_bytes().mean()
    report.stages[-1].notes = (
        f"{parts['roots'].height:,} trees; leaf hashes {texts.height / parts['leaves']:,.0f}/s "
        f"(mean leaf {mean:.0f} B), levels {texts.height / levels:,.0f} leaves/s"
    )


def peers(report: Report, texts: pl.DataFrame, leaves: int) -> None:
    """The same roots on a subset of whole trees: ours, pymerkle per tree, a hashlib loop."""
    from pymerkle import InmemoryTree

    # Every k-th tree, so the subset has the whole range of tree sizes, small and skewed.
    sizes = texts.group_by(TREE, maintain_order=True).len()
    step = max(1, texts.height // leaves)
    subset = texts.join(
        sizes.gather_every(step).select(TREE), on=TREE, how="semi", maintain_order="left"
    )
    trees = subset.partition_by(TREE, maintain_order=True, as_dict=True)
    ours: list[pl.DataFrame] = []
    with measured(report, "  ours (peer subset)", "leaves", lambda: subset.height):
        ours.append(tree_roots(*leaf_hash_rows(subset)))
    expected = {tuple(row[:4]): row[4] for row in ours[0].select(*TREE, "root").iter_rows()}
    with measured(report, "  peer: pymerkle per tree", "leaves", lambda: subset.height):
        found = {}
        for key, tree in trees.items():
            merkle = InmemoryTree(algorithm="sha256")
            for leaf in tree["leaf"].to_list():
                merkle.append_entry(leaf.encode())
            found[key] = merkle.get_root()
    assert found == expected, "pymerkle disagrees"
    with measured(report, "  peer: hashlib loop per tree", "leaves", lambda: subset.height):
        found = {key: hashlib_root(tree["leaf"].to_list()) for key, tree in trees.items()}
    assert found == expected, "the hashlib loop disagrees"
    ours_rate = report.stages[-3].rate
    for stage in report.stages[-2:]:
        stage.notes = f"ours is {ours_rate / stage.rate:,.0f}x faster (target 10x over pymerkle)"
    report.stages[-3].notes = f"{len(trees):,} trees, same roots as both peers"


def hashlib_root(leaves: list[str]) -> bytes:
    """What a plain implementation does: hash the leaves, then pair level by level."""
    level = [hashlib.sha256(b"\x00" + leaf.encode()).digest() for leaf in leaves]
    while len(level) > 1:
        paired = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        level = paired + level[len(level) - len(level) % 2 :]
    return level[0]


def api_stages(report: Report, settings: Settings, requests: int = 400) -> None:
    """Latency and throughput of the list and detail routes, with the API in its own process
    and four clients at once."""
    import random
    import statistics
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from api.security import mint_token
    from tests.conftest import _free_port

    port = _free_port()
    env = {
        **os.environ,
        "TALLYPROOF_DATA_DIR": str(settings.data_dir),
        "TALLYPROOF_JWT_SECRET": "bench-secret-of-at-least-32-bytes-long",
        "TALLYPROOF_SALT_KEY": "bench-salt-key",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "api", "--port", str(port)],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        token = mint_token(
            settings.with_overrides(jwt_secret=env["TALLYPROOF_JWT_SECRET"]), "acme", None, 3600
        )
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            total = client.get("/dashboard/customers").json()["total"]
            customers = [
                c["customerId"]
                for c in client.get("/dashboard/customers", params={"limit": 100}).json()["data"]
            ]
        rng = random.Random(1)
        routes = {
            "api list": lambda: (
                "/dashboard/customers",
                {"page": rng.randint(1, max(1, total // 25)), "limit": 25},
            ),
            "api detail": lambda: (
                f"/dashboard/customers/{rng.choice(customers)}",
                {"deltaLimit": 20},
            ),
        }
        local = threading.local()

        def init() -> None:
            local.client = httpx.Client(base_url=base, headers=headers, timeout=60)

        def call(args: tuple[str, dict]) -> float:
            started = time.perf_counter()
            local.client.get(args[0], params=args[1]).raise_for_status()
            return time.perf_counter() - started

        for name, pick in routes.items():
            calls = [pick() for _ in range(requests)]
            started = time.perf_counter()
            with ThreadPoolExecutor(4, initializer=init) as pool:
                latencies = sorted(pool.map(call, calls))
            seconds = time.perf_counter() - started
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
            report.stages.append(
                Stage(
                    name,
                    requests,
                    "requests",
                    seconds,
                    0.0,
                    notes=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, 4 clients",
                )
            )
    finally:
        server.terminate()
        server.wait(10)


def sha256_floor() -> float:
    """This machine's SHA-256 rate on 64-byte inputs on all cores, as leaves per second (two
    hashes per leaf), from `openssl speed`."""
    import re
    import subprocess

    cpus = os.cpu_count() or 1
    try:
        out = subprocess.run(
            [
                "openssl",
                "speed",
                "-evp",
                "sha256",
                "-bytes",
                "64",
                "-multi",
                str(cpus),
                "-seconds",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        kbytes = float(re.findall(r"^sha256\s+([0-9.]+)k", out, re.M)[-1])
    except (OSError, subprocess.SubprocessError, IndexError):
        return 0.0
    return kbytes * 1000 / 64 / 2


def print_report(report: Report) -> None:
    table = Table(title=f"tallyproof bench ({report.machine['cpus']} cores)")
    for column in ("stage", "items", "per second", "wall s", "peak RSS MB", "vs floor", "notes"):
        table.add_column(column, justify="left" if column in ("stage", "notes") else "right")
    for s in report.stages:
        ratio = f"{s.rate / s.floor_per_second:.0%}" if s.floor_per_second else "-"
        table.add_row(
            s.name,
            f"{s.items:,} {s.unit}",
            f"{s.rate:,.0f}",
            f"{s.seconds:.2f}",
            f"{s.peak_rss_mb:,.0f}",
            ratio,
            s.notes,
        )
    console.print(table)
