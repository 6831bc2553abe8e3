"""A nightly run in a process of its own, for the tests that start, race or kill runs.

python -m tests.flows.run_once DATA_DIR AS_OF [--batch-rows N] [--wait SECONDS]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from flows.config import Settings
from flows.errors import WarehouseBusyError
from flows.pipeline import run_nightly


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("as_of", type=date.fromisoformat)
    parser.add_argument("--batch-rows", type=int, default=2_000_000)
    parser.add_argument("--wait", type=float, default=3600.0)
    args = parser.parse_args()
    settings = Settings(
        data_dir=args.data_dir, salt_key="process-tests", batch_rows=args.batch_rows
    )
    try:
        report = run_nightly(settings, as_of=args.as_of, orchestrated=False, wait_seconds=args.wait)
    except WarehouseBusyError as busy:
        print(json.dumps({"busy": busy.message}))
        return 3
    print(json.dumps(report.as_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
