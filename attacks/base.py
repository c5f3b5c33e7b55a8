"""The one attack contract: a small class per attack with keyword-only, paper-default options
and `run(net, x) -> Result` (status `found` with a float64-verified point, or `failed`)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from minadv.verify import ReluNetwork, Result, Status, check_image, verified_result


class Attack(ABC):
    """Subclasses set `name` and `norm` and implement `_find`, which returns a candidate
    point (or None) plus keyword fields for the Result (e.g. counts); `run` does the rest:
    input checks, timing, the float64 check with the push across the boundary."""

    name: str = "attack"
    norm: float = 2.0

    def run(self, net: ReluNetwork, x: np.ndarray, c: int | None = None) -> Result:
        """Attack x (flat, in [0,1]); c is the class to move away from (default: the decision)."""
        x = check_image(net, x)
        c = net.predict(x) if c is None else int(c)
        start = time.perf_counter()
        candidate, fields = self._find(net, x, c)
        fields["time_s"] = time.perf_counter() - start
        status = Status.FOUND if candidate is not None else Status.FAILED
        return verified_result(net, x, c, candidate, method=self.name, norm=self.norm, status=status, **fields)

    def run_batch(self, net: ReluNetwork, X: np.ndarray) -> list[Result]:
        """Every row of X; attacks that batch well (CW) override this."""
        return [self.run(net, x) for x in np.atleast_2d(X)]

    @abstractmethod
    def _find(self, net: ReluNetwork, x: np.ndarray, c: int) -> tuple[np.ndarray | None, dict]:
        ...
