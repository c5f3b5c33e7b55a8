"""`--executor dask`: run_many's units on a Dask cluster (the `cluster` extra).

The units are sent to the cluster's workers as plain function calls (`client.map`), and their
results come back to this process as each one finishes (`as_completed`), where run_many stores
them: the results store, its lock and its resume logic are the same as with local processes.

Without --address a `distributed.LocalCluster` is started on this machine: `jobs` worker
processes of one thread each, every one (restarts too) started with the BLAS / OpenMP thread
variables at 1, as the process pool's workers are (verify/parallel.py), so that torch and
OpenBLAS run on one thread per worker. Its scheduler gives a unit whose worker died one more
try (allowed-failures 1); a second death makes it a `WorkerLost` (an `error` row). It sends a
worker one unit at a time (worker-saturation 1.0), so that a death counts against the unit
that was running only, not against one queued behind it; Dask queues only the units of a run
of more than 2 x workers units, and sends a smaller run's units out at once, where a death
counts against each unit its worker held. A unit whose result was finished but not yet read
here when its worker died is computed again (no row is written twice: each unit's result is
read once).

With --address the cluster is the user's: its own allowed-failures (Dask's default: 3 more
tries) and thread settings apply, and its workers need minadv installed.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator

import dask
from distributed import Client, KilledWorker, LocalCluster, as_completed

from minadv.verify import InputError, one_thread_env

from .runner import WorkerLost

CONNECT_TIMEOUT = 5.0  # seconds to reach the scheduler at --address before giving up
RETRIES = 1  # more tries for a unit whose worker died (local cluster)


def dask_setup(worker) -> None:
    """Run by each local worker as it starts (a Dask preload): it ignores Ctrl-C, which a terminal
    sends to the whole process group; the client handles it (closing the cluster ends the
    workers), as with the process pool's workers, instead of each worker printing a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DaskExecutor:
    """A client of the Dask scheduler at `address`, or of a new local cluster of `jobs` workers;
    use it as a context manager (the exit closes the client and the cluster it started)."""

    def __init__(self, jobs: int = 1, address: str | None = None):
        self._cluster = None
        if address is None:
            with dask.config.set({"distributed.scheduler.allowed-failures": RETRIES,
                                  "distributed.scheduler.worker-saturation": 1.0}):
                # no dashboard; the scheduler's HTTP routes on a free port, not on Dask's 8787; Dask's
                # warnings (a worker restarted, one killed at the close) not printed over the progress bar
                self._cluster = LocalCluster(n_workers=max(jobs, 1), threads_per_worker=1, processes=True,
                                             dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                                             env=one_thread_env(), silence_logs=logging.ERROR,
                                             preload=[__name__])  # dask_setup below, in each worker
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(address, timeout=CONNECT_TIMEOUT)
            except (OSError, ValueError) as err:  # refused, timed out, or no address at all
                raise InputError(f"no Dask scheduler answers at {address}: {err}") from None
        self.workers = max(1, sum(self.client.nthreads().values()))

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def imap_unordered(self, fn, args: list) -> Iterator:
        """fn(a) for each a in args, in the order they finish; WorkerLost(a, why) for a unit
        whose workers died. A result read here is released on the cluster at once: workers hold
        no finished results (memory), and a worker that dies later takes none with it that the
        cluster would compute again. Units not yet yielded are cancelled when the iteration ends
        early."""
        futures = self.client.map(fn, args, pure=False)
        unit = dict(zip((f.key for f in futures), args, strict=True))
        try:
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except KilledWorker as err:
                    outcome = WorkerLost(unit[future.key], str(err))
                future.cancel()
                yield outcome
        finally:
            self.client.cancel(futures)
