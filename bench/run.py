"""`make bench`: measure every stage of the pipeline on generated data, on this machine.

Not a test: it prints a table (rows or leaves per second, wall time, peak RSS per stage) and
writes it as JSON to bench/results/<date>.json so runs can be compared. Floors and peers are
added stage by stage (see docs/performance.md).
"""

from __future__ import annotations

import argparse
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.checkpoints import checkpoint_customers  # noqa: E402
from flows.config import Settings  # noqa: E402
from flows.generate import generate_landing_files  # noqa: E402
from flows.ingest import ingest_inbox  # noqa: E402
from flows.pipeline import open_warehouse  # noqa: E402
from flows.publish import publish  # noqa: E402
from flows.runs import new_run_id, start_run  # noqa: E402
from flows.signing import active_signing_key  # noqa: E402
from flows.snapshots import take_snapshot  # noqa: E402
from flows.summaries import refresh_customer_periods  # noqa: E402
from flows.warehouse import query_frame, staged  # noqa: E402
from transforms.leaves import leaf_text  # noqa: E402
from transforms.period_roots import leaf_hashes, period_roots  # noqa: E402
from transforms.synthetic import GeneratorSpec  # noqa: E402

console = Console(width=150)
PAGE = os.sysconf("SC_PAGE_SIZE")


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


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


@contextmanager
def measured(report: Report, name: str, unit: str, count: Callable[[], int]) -> Iterator[None]:
    """Time a stage and sample its peak resident memory every 20 ms."""
    peak = [_rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        report.stages.append(Stage(name, count(), unit, seconds, max(peak[0], _rss_mb())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deltas", type=int, default=1_000_000, help="first events in total")
    parser.add_argument("--customers", type=int, default=10_000, help="in total, over tenants")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--format", default="csv", choices=["csv", "jsonl", "parquet"])
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: a temp dir)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tallyproof-bench-"))
    settings = Settings(data_dir=workdir, salt_key="bench-salt-key")
    shutil.rmtree(settings.inbox, ignore_errors=True)
    Path(settings.warehouse).unlink(missing_ok=True)
    spec = GeneratorSpec(
        tenants=args.tenants,
        customers=max(1, args.customers // args.tenants),
        months=args.months,
        deltas_per_month=max(1, args.deltas // (args.months * args.tenants)),
        seed=1,
        end_month="2026-10",
        format=args.format,
    )
    report = Report(
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        parameters={**vars(args), "workdir": str(workdir)},
    )

    made: list[Any] = []
    with measured(report, "generate", "rows", lambda: made[0].rows):
        made.append(generate_landing_files(spec, settings.inbox))
    console.print(
        f"generated {made[0].rows:,} rows in {made[0].files} files "
        f"({made[0].bytes / 1e6:.0f} MB) under {workdir}"
    )

    with open_warehouse(settings) as con:
        run_id = new_run_id()
        start_run(con, run_id, "bench", None)
        summary: list[Any] = []
        with measured(report, f"ingest ({args.format})", "rows", lambda: summary[0].rows_read):
            summary.append(
                ingest_inbox(
                    con,
                    inbox=settings.inbox,
                    run_id=run_id,
                    salt_key=b"bench",
                    batch_rows=settings.batch_rows,
                )
            )
        written: list[int] = []
        with measured(report, "summaries", "customer-periods", lambda: written[0]):
            written.append(refresh_customer_periods(con, run_id))
        made_checkpoints: list[Any] = []
        with measured(
            report,
            "checkpoints (first versions)",
            "checkpoints",
            lambda: made_checkpoints[0].new_versions,
        ):
            made_checkpoints.append(
                checkpoint_customers(
                    con, run_id=run_id, max_period=spec.end_month, key=active_signing_key(settings)
                )
            )
        published: list[Any] = []
        with measured(report, "publish (local)", "files", lambda: published[0].files):
            published.append(publish(con, settings, run_id))
        report.stages[-1].notes = (
            f"{published[0].bytes / 1e6:,.0f} MB, "
            f"{published[0].bytes / 1e6 / report.stages[-1].seconds:,.1f} MB/s"
        )
        merkle_stage(report, con)
    take_snapshot(settings, run_id)
    api_stages(report, settings)

    floor = sha256_floor()
    for stage in report.stages:
        if stage.unit == "leaves":
            stage.floor_per_second = floor
            stage.notes = f"SHA-256 floor {floor:,.0f} leaves/s (openssl, all cores)"

    print_report(report)
    out = Path(__file__).resolve().parent / "results" / f"{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(
        json.dumps(asdict(report) | {"rates": {s.name: s.rate for s in report.stages}}, indent=2)
        + "\n"
    )
    console.print(f"written to {out}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def merkle_stage(report: Report, con: Any) -> None:
    """Leaf bytes to roots for every tree of the warehouse, the checkpoint hot path."""
    trees = con.sql(
        "SELECT DISTINCT tenant_id, environment, customer_id, period FROM deltas "
        "WHERE status = 'verified'"
    ).pl()
    with staged(con, staged_trees=trees):
        leaves = query_frame(con, "select_tree_leaves")
    leaves = leaves.with_columns(leaves["occurred_at_utc"].dt.replace_time_zone("UTC"))
    texts = leaf_text(leaves.lazy()).collect()
    roots: list[Any] = []
    with measured(report, "merkle roots (leaf bytes to roots)", "leaves", lambda: texts.height):
        roots.append(period_roots(leaf_hashes(texts.lazy()).collect().lazy()))
    console.print(f"{roots[0].height:,} trees, {texts.height:,} leaves")


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


if __name__ == "__main__":
    main()
