"""DeepFool L2 (Moosavi-Dezfooli, Fawzi, Frossard, CVPR 2016) through Foolbox 3.3.4."""

from __future__ import annotations

from .foolbox_attack import FoolboxAttack, import_foolbox


class DeepFool(FoolboxAttack):
    """Foolbox's L2DeepFoolAttack with the settings of Croce & Hein (GCPR 2018): 50 steps, the
    top 10 classes as candidates, overshoot 0.02 (applied once, to the total perturbation)."""

    name = "deepfool"

    def __init__(self, *, steps: int = 50, candidates: int = 10, overshoot: float = 0.02):
        self.steps, self.candidates, self.overshoot = steps, candidates, overshoot

    def foolbox_attack(self):
        return import_foolbox().attacks.L2DeepFoolAttack(steps=self.steps, candidates=self.candidates,
                                                         overshoot=self.overshoot)
