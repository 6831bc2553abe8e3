"""`make bench`: see `bench/stages.py`.

This entry point imports nothing until it runs: the pipeline's signing workers are spawned
processes, which import the main module again, and the bench's imports (Prefect, Polars, DuckDB)
would cost each of them memory that a real `tallyproof run` does not pay.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.stages import main

    main()
