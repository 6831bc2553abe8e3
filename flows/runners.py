"""Where per-shard work runs: a Prefect task runner chosen by configuration.

`threads` (the default) runs shards on a thread pool of this process. `dask` runs them on a
Dask cluster through prefect-dask: a local cluster of `workers` processes, or the scheduler at
`dask_address` (`tcp://host:8786`), whose workers may be other machines. Shard tasks read only
their job (frames the flow loaded) and write only their own files to the output root, so the
same run gives the same bytes wherever they run; on several machines the output root must be
one they all reach (an `s3://` prefix, or a shared folder).

`run`, `backfill` and `schedule` check that the scheduler at `dask_address` answers first:
prefect-dask connects only when the first shard is submitted, after ingest and checkpoints
have been committed, so a wrong address would otherwise fail every run at its very end.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from flows.config import Settings
from flows.errors import ConfigError

SCHEDULER_TIMEOUT_SECONDS = 10.0


def task_runner(settings: Settings) -> Any:
    if settings.runner == "dask" or settings.dask_address:
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": settings.workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    return ThreadPoolTaskRunner(max_workers=settings.workers)


def check_runner(settings: Settings) -> None:
    """Raise `ConfigError` unless the Dask scheduler at `dask_address` (if any) answers within
    `SCHEDULER_TIMEOUT_SECONDS`."""
    if not settings.dask_address:
        return
    from distributed.comm import connect

    async def handshake() -> None:
        comm = await connect(settings.dask_address, timeout=SCHEDULER_TIMEOUT_SECONDS)
        await comm.close()

    # A bare connection with Dask's handshake: a `Client` that fails to connect leaves a
    # warning and a four-second close behind in its finaliser.
    try:
        asyncio.run(handshake())
    except (OSError, TimeoutError, ValueError) as err:
        raise ConfigError(
            f"the Dask scheduler at {settings.dask_address} does not answer ({err}); "
            "check --dask-address or TALLYPROOF_DASK_ADDRESS",
            details={"dask_address": settings.dask_address},
        ) from err
