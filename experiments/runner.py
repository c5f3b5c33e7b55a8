"""The unit of work and the loop around it.

`run_one(net, image, method, norm, options) -> Result` is a pure function of its
(picklable) arguments, so any executor can run it: `run_many` skips what the store already
holds, hands the rest to an executor (local processes, `ProcessExecutor`, or a Dask cluster,
`minadv.experiments.cluster.DaskExecutor`) and stores each row in this process as soon as its
unit is finished and verified.

An executor is anything with `workers` (how many units run at once) and
`imap_unordered(fn, args)`, which yields fn(a) for each a in args in the order they finish, or
a `WorkerLost` for a unit whose worker died on every try the executor allows.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from multiprocessing import resource_tracker

import numpy as np
from tqdm import tqdm

from minadv.verify import InputError, ReluNetwork, Result, Status, norm_name, parse_norm, require, spawn_pool

from .data import mnist
from .models import load
from .store import Interrupted, ResultStore

EXACT_METHODS = ("mip",)


class WarmStart(StrEnum):
    """The exact solver's first incumbent (`minimal_perturbation`'s upper_bound): the point of
    an attack run first, on the same image; its time counts in the row's `time_s` and comes off
    the `time_limit`. The answer stays proven either way (the point only shrinks the ball the
    bounds are computed on): on S3 = 784-100-100-10 the branch and bound's own incumbents stayed
    at 1.40 / 1.67 after 300 s on images 2 / 11 where rLR-QP finds 0.75 / 0.94 in 1-4 s
    (docs/performance-log.md)."""

    NONE = "none"  # the solver's own incumbents only (problem (3) on Q(x), node points)
    DEEPFOOL = "deepfool"
    RLRQP = "rlrqp"  # the paper's settings
# options that bound the effort, not the answer: not part of a row's key; a `time_limit` row is
# run again when a later run allows more time
BUDGETS = ("time_limit",)


def add_finish_arguments(p) -> None:
    """--finish and --decide-after of the exact commands (`minadv.verify.exact.Finish`)."""
    from minadv.verify.exact import Finish

    p.add_argument("--finish", choices=[f.value for f in Finish], default=Finish.QP.value,
                   help="L2 bnb: qp (QP nodes to the end, the default) or decide (after --decide-after seconds, the "
                        "open nodes go to the split search, which decides the incumbent's radius; docs/methods.md)")
    p.add_argument("--decide-after", type=float, default=30.0, help="seconds of QP nodes before --finish decide hands "
                                                                    "over (default 30)")


def method_names() -> list[str]:
    from minadv.attacks import ATTACKS

    return [*EXACT_METHODS, *ATTACKS]


def make_method(method: str, norm, options: dict | None = None) -> Callable[[ReluNetwork, np.ndarray], Result]:
    """A callable (net, x) -> Result for an exact method or an attack, by name."""
    options = dict(options or {})
    p = parse_norm(norm)
    if method == "mip":
        from minadv.verify.exact import check_options, minimal_perturbation

        warm = WarmStart(options.pop("warm_start", WarmStart.NONE))
        check_options(p, **options)
        if warm == WarmStart.NONE:
            return functools.partial(minimal_perturbation, norm=p, **options)
        if p != 2.0:
            raise InputError(f"warm start {warm.value} is an L2 attack; the exact solver was asked for L{norm_name(p)}")
        return functools.partial(_warm_exact, make_method(warm.value, p), p, options)
    from minadv.attacks import ATTACKS

    if method not in ATTACKS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(method_names())}")
    attack = ATTACKS[method](**options)
    if attack.norm != p:
        raise ValueError(f"{method} is an L{norm_name(attack.norm)} attack; asked for L{norm_name(p)}")
    return attack.run


def _warm_exact(attack: Callable[[ReluNetwork, np.ndarray], Result], p: float, options: dict,
                net: ReluNetwork, x: np.ndarray) -> Result:
    """`minimal_perturbation` started from the attack's point (see `WarmStart`)."""
    from minadv.verify.exact import minimal_perturbation

    start = time.perf_counter()
    found = attack(net, x)
    spent = time.perf_counter() - start
    limit = options.get("time_limit", 300.0) - spent
    result = minimal_perturbation(net, x, norm=p, **{**options, "time_limit": max(limit, 1e-3)},
                                  upper_bound=found.x_adv)
    result.time_s += spent
    return result


def options_key(method: str, options: dict | None) -> str:
    """The row key's `options`: the method's options that differ from its defaults, sorted, as
    'name=repr(value)' joined by spaces ('' for the defaults), budgets left out."""
    if method in EXACT_METHODS:
        from minadv.verify.exact import minimal_perturbation as fn
    else:
        from minadv.attacks import ATTACKS

        fn = ATTACKS[method]
    defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
    if method in EXACT_METHODS:
        defaults["warm_start"] = WarmStart.NONE
    return " ".join(f"{k}={v!r}" for k, v in sorted((options or {}).items())
                    if k not in BUDGETS and (k not in defaults or defaults[k] != v))


@functools.lru_cache(maxsize=8)
def _network(spec: str) -> ReluNetwork:
    return load(spec)


@functools.lru_cache(maxsize=1)
def _test_split():
    return mnist("test")


def run_one(net: str, image: int, method: str, norm: str, options: dict | None = None) -> Result:
    """Method `method` on MNIST test image `image` for network `net` (N1, N2 or a model path)."""
    x = _test_split().x(image)
    return make_method(method, norm, options)(_network(net), x)


def _job(args) -> list[tuple[int, Result]]:
    """[(image, result)] of run_one (the shape of `_batch_job`'s answer)."""
    net, image, method, norm, options = args
    return [(image, run_one(net, image, method, norm, options))]


class ExecutorKind(StrEnum):
    """Where the units of work run (--executor)."""

    PROCESS = "process"  # --jobs local processes (one pool per run_many call)
    DASK = "dask"  # a Dask cluster: --address, else a local one of --jobs workers


@dataclass(frozen=True)
class WorkerLost:
    """A unit (its argument) whose worker died on every try the executor allows, with the
    executor's words; run_many stores an `error` row for each of the unit's images."""

    unit: tuple
    message: str


class ProcessExecutor:
    """Units in `workers` spawned processes (a new pool for each call, ended with it), or in this
    process when workers = 1 or there is one unit."""

    def __init__(self, workers: int = 1):
        self.workers = workers

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def imap_unordered(self, fn, args: list) -> Iterator:
        with _pool(self.workers) if self.workers > 1 and len(args) > 1 else _Serial() as pool:
            yield from pool.imap_unordered(fn, args)


def add_executor_arguments(p) -> None:
    """--executor and --address (with --jobs, which each command defines)."""
    p.add_argument("--executor", type=ExecutorKind, choices=list(ExecutorKind), default=ExecutorKind.PROCESS,
                   help="process: --jobs local processes (default); dask: a Dask cluster, the one at --address or "
                        "a local one of --jobs workers (needs minadv[cluster])")
    p.add_argument("--address", help="the scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 "
                   "(with --executor dask; its workers need minadv installed)")


def open_executor(kind: ExecutorKind, jobs: int = 1, address: str | None = None):
    """The executor of --executor, --jobs and --address, as a context manager (a Dask one closes
    its client and any cluster it started on exit). A Dask executor without the `cluster` extra
    is a MissingExtraError; an --address that no scheduler answers is an InputError."""
    if kind is ExecutorKind.PROCESS:
        if address is not None:
            raise InputError("--address is a Dask scheduler's: use it with --executor dask")
        return ProcessExecutor(jobs)
    return require("minadv.experiments.cluster").DaskExecutor(jobs, address)


def run_many(
    net: str,
    images: Iterable[int],
    method: str,
    norm,
    store: ResultStore,
    options: dict | None = None,
    jobs: int = 1,
    force: bool = False,
    progress: bool = True,
    net_label: str | None = None,
    batch: int | None = None,
    executor=None,
) -> list[dict]:
    """Run `method` on every image (each once) whose row `store` lacks or must redo (--force; a
    missing point; a `time_limit` row given more time), storing each row as it finishes;
    batch > 1 (attacks only) hands up to `batch` images at a time to `Attack.run_batch` (rows
    are written per batch), split over the executor's workers. Default: 50 for attacks that
    batch (`Attack.batched`: CW, DeepFool, FMN, DDN, Brendel-Bethge, FAB), else 1. The units run
    on `executor` (default: a ProcessExecutor of `jobs` processes); a unit whose worker was lost
    gives `error` rows."""
    label = net_label or net
    p = norm_name(parse_norm(norm))
    make_method(method, p, options)  # fail fast on bad names / options, before any work
    key, limit = options_key(method, options), (options or {}).get("time_limit")
    images = list(dict.fromkeys(images))  # each image once, in the order asked
    todo = [i for i in images if force or not store.done(label, i, method, p, key, limit)]
    from minadv.attacks import ATTACKS

    if batch is None:
        batch = 50 if method in ATTACKS and ATTACKS[method].batched else 1
    if batch > 1 and method not in ATTACKS:
        raise ValueError(f"only attacks run in batches; {method!r} is not one")
    split = _test_split()
    if todo:
        _network(net)  # a model that does not load fails here, before the progress bar is drawn
    rows: list[dict] = []
    if executor is None:
        executor = ProcessExecutor(jobs)
    if batch > 1:  # e.g. 50 CW images on 2 cores: two batches of 25 at once
        size = max(1, min(batch, -(-len(todo) // max(executor.workers, 1))))
        work, args = _batch_job, [(net, todo[k : k + size], method, options) for k in range(0, len(todo), size)]
    else:
        work, args = _job, [(net, i, method, p, options) for i in todo]
    bar = tqdm(total=len(todo), desc=f"{label} {method} L{p}", unit="img", disable=not progress)
    try:
        # closing: an exception here ends the executor's iteration at once (a pool's exit terminates it)
        with contextlib.closing(executor.imap_unordered(work, args)) as outcomes:
            for outcome in outcomes:
                if isinstance(outcome, WorkerLost):
                    images = outcome.unit[1] if batch > 1 else [outcome.unit[1]]
                    outcome = [(i, _lost(net, i, method, p, outcome.message)) for i in images]
                for image, result in outcome:
                    rows.append(store.append(label, image, result, split.x(image), label=int(split.labels[image]),
                                             options=key, time_limit=limit))
                    bar.set_postfix_str(f"img {image}: {result.status} {result.value:.4g} ({result.time_s:.1f}s)")
                    bar.update()
    except KeyboardInterrupt:  # the executor's exit has ended its workers' units
        kept = f"{len(store)} rows kept in {store.csv_path}"
        raise Interrupted(f"interrupted; {kept}; the same command resumes") from None
    finally:
        bar.close()
    return rows


def _lost(net: str, image: int, method: str, norm: str, message: str) -> Result:
    """The `error` result of an image whose unit's worker was lost (pred: the network's class)."""
    pred = int(_network(net).predict(_test_split().x(image)))
    return Result(method, parse_norm(norm), Status.ERROR, pred, message=f"worker lost: {message}")


def _pool(jobs: int):
    """spawn_pool whose workers ignore Ctrl-C: a terminal sends SIGINT to the whole process group,
    and the parent handles it (the pool's exit ends the workers); otherwise each worker prints
    its own traceback.

    While the workers start, SIGINT is blocked in this thread, not ignored (an ignored SIGINT is
    lost and the run goes on): the children inherit the blocked mask across fork and exec, so a
    Ctrl-C while they import torch stays pending there until their initializer ignores it. Here
    a SIGINT that came meanwhile, pending or (taken by another thread) recorded by a handler that
    only records, ends the new pool and is raised as KeyboardInterrupt. The resource tracker is
    started first: its first start, inside Pool(), unblocks SIGINT again (CPython 3.11)."""
    if threading.current_thread() is not threading.main_thread():
        return spawn_pool(jobs, _ignore_sigint)
    resource_tracker.ensure_running()
    hits: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _: hits.append(signum))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool = spawn_pool(jobs, _ignore_sigint)
        if signal.SIGINT in signal.sigpending():
            hits.append(signal.sigwait({signal.SIGINT}))
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, previous)
    if hits:
        pool.terminate()
        raise KeyboardInterrupt
    return pool


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _batch_job(args) -> list[tuple[int, Result]]:
    """(image, result) pairs of an attack run on a batch of images with `Attack.run_batch`."""
    from minadv.attacks import ATTACKS

    net, images, method, options = args
    results = ATTACKS[method](**(options or {})).run_batch(_network(net), _test_split().x(images))
    return list(zip(images, results, strict=True))


class _Serial:
    """Same interface as a Pool, in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap_unordered(fn, args):
        for a in args:
            yield fn(a)
