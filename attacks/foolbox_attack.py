"""Attacks run through Foolbox 3.3.4 on the network's float32 torch copy, batched over images.

Foolbox returns an all-zero image for a sample it failed on: only points its success mask
marks are kept (the rest are `failed`); every kept point still goes through the float64
check (and the push across the boundary) of `Attack.run`.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod

import numpy as np
import torch

from minadv.verify import ReluNetwork, require

from .base import Attack, Candidate


def import_foolbox():
    """foolbox, imported without its DeprecationWarning on scipy.ndimage.filters (still present
    in scipy < 1.18, hence the pin in the `attacks` extra of pyproject.toml); imported here, not at
    module level, so that minadv.attacks imports without it (MissingExtraError names the extra)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return require("foolbox")


class FoolboxAttack(Attack):
    """A Foolbox minimisation attack (epsilons=None) on every image of a batch at once."""

    batched = True

    @abstractmethod
    def foolbox_attack(self):
        """The configured Foolbox attack object."""

    def minimise(self, fb, model, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(points, success mask) of the Foolbox attack on the batch (foolbox module fb, model in it)."""
        _, points, success = self.foolbox_attack()(model, inputs, labels, epsilons=None)
        return points, success

    def find(self, net: ReluNetwork, x: np.ndarray, c: int) -> Candidate:
        return self.find_batch(net, [x], [c])[0]

    def find_batch(self, net: ReluNetwork, X: list[np.ndarray], C: list[int]) -> list[Candidate]:
        fb = import_foolbox()
        model = fb.PyTorchModel(net.to_torch(torch.float32), bounds=(0.0, 1.0))
        inputs = torch.tensor(np.stack(X), dtype=torch.float32)
        points, success = self.minimise(fb, model, inputs, torch.tensor(C))
        return [Candidate(p.double().numpy()) if ok else Candidate(None, message="foolbox: no adversarial found")
                for p, ok in zip(points, success.tolist(), strict=True)]
