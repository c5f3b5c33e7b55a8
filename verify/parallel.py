"""One core per process: worker processes, and the main process while a command runs.

Each worker's OpenBLAS (numpy, scipy) would start one thread per core, and the workers then
fight over the cores; one BLAS and one torch thread per worker removes the oversubscription.
The main process needs the same (`pinned_threads`) while workers or other jobs run. The
figures are in docs/performance-log.md.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from contextlib import contextmanager

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _thread_env(n: int):
    """The BLAS / OpenMP thread variables set to n in this process's environment for the block.
    A library reads them when it is loaded: in a worker that starts, or one first imported in the block."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: str(n) for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def one_thread_env() -> dict[str, str]:
    """The BLAS / OpenMP thread variables at 1, for a worker process started by other code (a
    Dask nanny's `env`), which must hold them for every worker it starts or restarts."""
    return dict.fromkeys(_THREAD_VARS, "1")


@contextmanager
def pinned_threads(n: int = 1):
    """BLAS (numpy's and scipy's OpenBLAS, MKL) on n threads in this process for the block, and
    as before after it: threadpoolctl for the libraries already loaded (environment variables
    are read only at load time), the variables for those loaded in the block. OpenMP is left
    to torch.set_num_threads."""
    from threadpoolctl import threadpool_limits

    with _thread_env(n), threadpool_limits(limits=n, user_api="blas"):
        yield


def _start(initializer, initargs) -> None:
    import torch

    torch.set_num_threads(1)
    if initializer is not None:
        initializer(*initargs)


def spawn_pool(processes: int, initializer=None, initargs=()):
    """A spawn-context Pool whose workers run BLAS and torch on one thread each (the
    variables are set in this process's environment only while the workers start)."""
    with _thread_env(1):
        return mp.get_context("spawn").Pool(processes, _start, (initializer, initargs))
