"""The one attack contract: a small class per attack with keyword-only, paper-default options
and `run(net, x) -> Result` (status `found` with a float64-verified point, or `failed`)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import final

import numpy as np

from minadv.verify import Counts, ReluNetwork, Result, Status, check_image, verified_result


@dataclass
class Candidate:
    """What an attack found on one image: a point (None: nothing found) and what it did.
    target: the class the attack aimed at or reached (None: the class the point reaches); counts: regions, QPs
    solved and pruned (rLR-QP); message: why nothing was found. `run` checks the point in
    float64 and pushes it across the boundary if it sits on it."""

    point: np.ndarray | None
    target: int | None = None
    counts: Counts = field(default_factory=Counts)
    message: str = ""


class Attack(ABC):
    """Subclasses set `name` and `norm` and implement `find` (one image -> a `Candidate`);
    attacks that work on many images at once (CW) also implement `find_batch`. `run` /
    `run_batch` are final: input checks, timing, the float64 check with the push across the
    boundary, the Result."""

    name: str = "attack"
    norm: float = 2.0
    batched: bool = False  # True when find_batch works on many images at once

    @final
    def run(self, net: ReluNetwork, x: np.ndarray, c: int | None = None) -> Result:
        """Attack x (flat, in [0,1]); c is the class to move away from (default: the decision)."""
        return self._verified(net, [x], None if c is None else [c])[0]

    @final
    def run_batch(self, net: ReluNetwork, X: np.ndarray) -> list[Result]:
        """Every row of X: in one `find_batch` call for batched attacks (each result's time_s
        is then the batch's wall time divided by the number of images), else one by one."""
        if not self.batched:
            return [self.run(net, x) for x in np.atleast_2d(X)]
        return self._verified(net, list(np.atleast_2d(X)), None)

    def _verified(self, net: ReluNetwork, X: list, C: list | None) -> list[Result]:
        X = [check_image(net, x) for x in X]
        C = [net.predict(x) for x in X] if C is None else [int(c) for c in C]
        start = time.perf_counter()
        found = self.find_batch(net, X, C) if self.batched else [self.find(net, X[0], C[0])]
        seconds = (time.perf_counter() - start) / len(X)
        return [self.verified(net, x, c, cand, seconds) for x, c, cand in zip(X, C, found, strict=True)]

    @final
    def verified(self, net: ReluNetwork, x: np.ndarray, c: int, cand: Candidate, seconds: float) -> Result:
        """The Result of candidate `cand` for image x of class c after the float64 check (with the
        push across the boundary), time_s = seconds."""
        return verified_result(net, x, c, cand.point, method=self.name, norm=self.norm,
                               status=Status.FOUND if cand.point is not None else Status.FAILED, time_s=seconds,
                               counts=cand.counts, message=cand.message,
                               **({} if cand.target is None else {"target": cand.target}))

    def find_batch(self, net: ReluNetwork, X: list[np.ndarray], C: list[int]) -> list[Candidate]:
        """One candidate per image (X[i] of class C[i]); only for attacks with `batched`."""
        raise NotImplementedError(f"{self.name} does not batch; set `batched` and implement find_batch")

    @abstractmethod
    def find(self, net: ReluNetwork, x: np.ndarray, c: int) -> Candidate:
        """A candidate adversarial point for image x of class c (unchecked)."""
