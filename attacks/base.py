"""The one attack contract: a small class per attack with keyword-only, paper-default options
and `run(net, x) -> Result` (status `found` with a float64-verified point, or `failed`)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from minadv.verify import ReluNetwork, Result, Status, check_image, verified_result


class Attack(ABC):
    """Subclasses set `name` and `norm` and implement `_find`, which returns a candidate
    point (or None) plus keyword fields for the Result (e.g. counts); attacks that work on
    many images at once (CW) also implement `_find_batch`. `run` / `run_batch` do the rest:
    input checks, timing, the float64 check with the push across the boundary."""

    name: str = "attack"
    norm: float = 2.0
    batched: bool = False  # True when _find_batch works on many images at once

    def run(self, net: ReluNetwork, x: np.ndarray, c: int | None = None) -> Result:
        """Attack x (flat, in [0,1]); c is the class to move away from (default: the decision)."""
        return self._verified(net, [x], None if c is None else [c])[0]

    def run_batch(self, net: ReluNetwork, X: np.ndarray) -> list[Result]:
        """Every row of X: in one `_find_batch` call for batched attacks (each result's time_s
        is then the batch's wall time divided by the number of images), else one by one."""
        if not self.batched:
            return [self.run(net, x) for x in np.atleast_2d(X)]
        return self._verified(net, list(np.atleast_2d(X)), None)

    def _verified(self, net: ReluNetwork, X: list, C: list | None) -> list[Result]:
        X = [check_image(net, x) for x in X]
        C = [net.predict(x) for x in X] if C is None else [int(c) for c in C]
        start = time.perf_counter()
        found = self._find_batch(net, X, C) if self.batched else [self._find(net, X[0], C[0])]
        seconds = (time.perf_counter() - start) / len(X)
        results = []
        for x, c, (candidate, fields) in zip(X, C, found, strict=True):
            fields["time_s"] = seconds
            status = Status.FOUND if candidate is not None else Status.FAILED
            results.append(verified_result(net, x, c, candidate, method=self.name, norm=self.norm, status=status,
                                           **fields))
        return results

    def _find_batch(self, net: ReluNetwork, X: list[np.ndarray], C: list[int]) -> list[tuple[np.ndarray | None, dict]]:
        raise NotImplementedError(f"{self.name} does not batch; set `batched` and implement _find_batch")

    @abstractmethod
    def _find(self, net: ReluNetwork, x: np.ndarray, c: int) -> tuple[np.ndarray | None, dict]:
        ...
