"""Brendel-Bethge attack, L2 (Brendel, Rauber, Kümmerer, Ustyuzhaninov, Bethge, NeurIPS 2019)
through Foolbox 3.3.4 (needs numba, in the `attacks` extra)."""

from __future__ import annotations

import torch

from minadv.verify import require

from .foolbox_attack import FoolboxAttack, import_foolbox


class BrendelBethge(FoolboxAttack):
    """Foolbox's L2BrendelBethgeAttack (written by the paper's authors) with the paper's settings:
    it walks along the decision boundary from an adversarial starting point, each step a small
    trust-region QP (min distance to x s.t. on the linearised boundary, in the box); 1000 steps,
    learning rate 1e-3 halved 20 times over the run, momentum 0.8, overshoot 1.1. Starting point:
    Foolbox's default, a blended uniform noise attack (LinearSearchBlendedUniformNoiseAttack: 1000
    random directions, 1000 blending steps), then BB's binary search of 10 steps towards the image.
    Images where the noise attack finds no adversarial start are `failed`."""

    name = "bb"

    def __init__(self, *, steps: int = 1000, lr: float = 1e-3, lr_decay: float = 0.5, lr_num_decay: int = 20,
                 momentum: float = 0.8, overshoot: float = 1.1, binary_search_steps: int = 10):
        self.steps, self.lr, self.lr_decay, self.lr_num_decay = steps, lr, lr_decay, lr_num_decay
        self.momentum, self.overshoot, self.binary_search_steps = momentum, overshoot, binary_search_steps

    def foolbox_attack(self):
        require("numba")  # Foolbox raises its own import error at construction without it
        return import_foolbox().attacks.L2BrendelBethgeAttack(
            steps=self.steps, lr=self.lr, lr_decay=self.lr_decay, lr_num_decay=self.lr_num_decay,
            momentum=self.momentum, overshoot=self.overshoot, binary_search_steps=self.binary_search_steps)

    def minimise(self, fb, model, inputs, labels):
        """The starting points first (Foolbox's own default init attack), then the attack on the images
        where they are adversarial only: Foolbox's run asserts that every starting point is."""
        criterion = fb.criteria.Misclassification(labels)
        starts = fb.attacks.LinearSearchBlendedUniformNoiseAttack().run(model, inputs, criterion)
        started = criterion(starts, model(starts))
        points, success = starts.clone(), torch.zeros_like(started)
        if started.any():
            _, points[started], success[started] = self.foolbox_attack()(
                model, inputs[started], labels[started], epsilons=None, starting_points=starts[started])
        return points, success
