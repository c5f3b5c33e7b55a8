"""Carlini-Wagner L2 (Carlini & Wagner, IEEE S&P 2017) through Foolbox 3.3.4, batched over images."""

from __future__ import annotations

from .foolbox_attack import FoolboxAttack, import_foolbox


class CarliniWagner(FoolboxAttack):
    """Foolbox's L2CarliniWagnerAttack with the settings of Croce & Hein (GCPR 2018): 20 binary
    search steps on the constant c (from 1e-3), 10000 Adam steps of size 0.01, confidence 0,
    early abort. Its points sit on the decision boundary (confidence 0), so many need the
    float64 push across it."""

    name = "cw"

    def __init__(self, *, binary_search_steps: int = 20, steps: int = 10000, stepsize: float = 0.01,
                 initial_const: float = 1e-3, confidence: float = 0.0, abort_early: bool = True):
        self.binary_search_steps, self.steps, self.stepsize = binary_search_steps, steps, stepsize
        self.initial_const, self.confidence, self.abort_early = initial_const, confidence, abort_early

    def foolbox_attack(self):
        return import_foolbox().attacks.L2CarliniWagnerAttack(
            binary_search_steps=self.binary_search_steps, steps=self.steps, stepsize=self.stepsize,
            initial_const=self.initial_const, confidence=self.confidence, abort_early=self.abort_early)
