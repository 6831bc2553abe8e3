"""Where per-shard work runs: a Prefect task runner chosen by configuration.

`threads` (the default) runs shards on a thread pool of this process. `dask` runs them on a
Dask cluster through prefect-dask: a local cluster of `workers` processes, or the scheduler at
`dask_address` (`tcp://host:8786`), whose workers may be other machines. Shard tasks read only
their job (frames the flow loaded) and write only their own files to the output root, so the
same run gives the same bytes wherever they run; on several machines the output root must be
one they all reach (an `s3://` prefix, or a shared folder).
"""

from __future__ import annotations

from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from flows.config import Settings


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
