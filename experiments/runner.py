"""The unit of work and the loop around it.

`run_one(net, image, method, norm, options) -> Result` is a pure function of its
(picklable) arguments, so a process pool runs it today and a cluster engine could run it
later. `run_many` skips what the store already holds, runs the rest (in `jobs` processes)
and appends each row as soon as it is finished and verified.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import numpy as np
from minadv.verify import ReluNetwork, Result, norm_name, parse_norm
from minadv.verify.parallel import spawn_pool
from tqdm import tqdm

from .data import mnist
from .models import load
from .store import ResultStore

EXACT_METHODS = ("mip",)


def method_names() -> list[str]:
    from minadv.attacks import ATTACKS

    return [*EXACT_METHODS, *ATTACKS]


def make_method(method: str, norm, options: dict | None = None) -> Callable[[ReluNetwork, np.ndarray], Result]:
    """A callable (net, x) -> Result for an exact method or an attack, by name."""
    options = dict(options or {})
    p = parse_norm(norm)
    if method == "mip":
        from minadv.verify.exact import check_options, minimal_perturbation

        check_options(p, **options)
        return functools.partial(minimal_perturbation, norm=p, **options)
    from minadv.attacks import ATTACKS

    if method not in ATTACKS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(method_names())}")
    attack = ATTACKS[method](**options)
    if attack.norm != p:
        raise ValueError(f"{method} is an L{norm_name(attack.norm)} attack; asked for L{norm_name(p)}")
    return attack.run


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


def _job(args) -> tuple[int, Result]:
    net, image, method, norm, options = args
    return image, run_one(net, image, method, norm, options)


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
) -> list[dict]:
    """Run `method` on every image not yet in `store`, appending each row as it finishes;
    batch > 1 (attacks only) hands up to `batch` images at a time to `Attack.run_batch` (rows
    are written per batch), split over the `jobs` processes. Default: 50 for attacks that
    batch (`Attack.batched`: CW, DeepFool), else 1."""
    label = net_label or net
    p = norm_name(parse_norm(norm))
    make_method(method, p, options)  # fail fast on bad names / options, before any work
    _network(net)  # and on a model file that is no ReLU classifier, before the progress bar
    todo = [i for i in images if force or not store.has(label, i, method, p)]
    if batch is None:
        from minadv.attacks import ATTACKS

        batch = 50 if method in ATTACKS and ATTACKS[method].batched else 1
    if batch > 1:
        from minadv.attacks import ATTACKS

        if method not in ATTACKS:
            raise ValueError(f"only attacks run in batches; {method!r} is not one")
    split = _test_split()
    rows: list[dict] = []
    bar = tqdm(total=len(todo), desc=f"{label} {method} L{p}", unit="img", disable=not progress)
    if batch > 1:  # e.g. 50 CW images on 2 cores: two batches of 25 at once
        size = max(1, min(batch, -(-len(todo) // max(jobs, 1))))
        work, args = _batch_job, [(net, todo[k : k + size], method, options) for k in range(0, len(todo), size)]
    else:
        work, args = _job, [(net, i, method, p, options) for i in todo]
    with (spawn_pool(jobs) if jobs > 1 and len(args) > 1 else _Serial()) as pool:
        for pairs in pool.imap_unordered(work, args):
            for image, result in pairs if batch > 1 else [pairs]:
                rows.append(store.append(label, image, result, split.x(image), label=int(split.labels[image])))
                bar.set_postfix_str(f"img {image}: {result.status} {result.value:.4g} ({result.time_s:.1f}s)")
                bar.update()
    bar.close()
    return rows


def _batch_job(args) -> list[tuple[int, Result]]:
    """(image, result) pairs of an attack run on a batch of images with `Attack.run_batch`."""
    from minadv.attacks import ATTACKS

    net, images, method, options = args
    return list(zip(images, ATTACKS[method](**(options or {})).run_batch(_network(net), _test_split().x(images))))


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
