"""FMN, fast minimum-norm attack, L2 and Linf (Pintor, Roli, Brendel, Biggio, NeurIPS 2021) through
Foolbox 3.3.4."""

from __future__ import annotations

import math

from .foolbox_attack import FoolboxAttack, import_foolbox


def l2_fmn_class():
    """Foolbox's L2FMNAttack with the projection onto the L2 ball of radius eps around x0 that the
    paper's algorithm has (Foolbox 3.3.4's leaves the point where it is)."""
    fb = import_foolbox()
    from foolbox.attacks.gradient_descent_base import clip_lp_norms

    class L2FMN(fb.attacks.L2FMNAttack):
        def project(self, x, x0, epsilon):
            return x0 + clip_lp_norms(x - x0, norm=epsilon, p=2)

    return L2FMN


class FMN(FoolboxAttack):
    """Foolbox's L2FMNAttack (written by the paper's authors) with the paper's settings: an
    adaptive norm constraint eps_k, shrunk by the factor gamma_k once the point is adversarial and
    grown otherwise, gamma_k cosine-annealed from gamma_0 = 0.05; a normalised-gradient step of size
    alpha_k cosine-annealed from alpha_0 = 1 to alpha_0 / 100; K = 1000 steps (the budget of the
    paper's comparisons). No init attack (FMN starts from the image itself; binary_search_steps is
    used only with an init attack, Foolbox's 10).

    Foolbox 3.3.4's L2 projection onto the eps-ball is broken (`project` scales by
    min(1, norms / norms) = 1, eps never used), so its L2 FMN is a plain gradient ascent whose
    first adversarial point is returned: `l2_fmn_class` fixes the projection to the paper's
    delta <- delta min(1, eps / ||delta||_2).

    Until its first adversarial point FMN sets eps = ||delta|| + |margin| / ||grad margin||, the
    linearised distance to the boundary. On a ReLU network that estimate is exact inside a linear
    region, so the point approaches the boundary from inside, ever more slowly, and may never cross
    it within the budget: such images are `failed` (the point Foolbox returns is the image itself).
    That is the algorithm, not Foolbox: the authors' own code (pralab/Fast-Minimum-Norm-FMN-Attack,
    src/attacks/fmn.py) has the same epsilon update, eps = min((1 - gamma) eps, ||best delta||) when
    adversarial, else (1 + gamma) eps once an adversarial was seen, else ||delta|| + |loss| /
    ||grad loss||_dual, the same cosine schedules and the same L2-normalised gradient step; Foolbox
    differs only in taking |loss| per image where the authors' code takes the batch's summed loss
    (the same for one image), and in the broken L2 projection fixed here (the authors' clips delta
    to norm eps, as ours)."""

    name = "fmn"

    def __init__(self, *, steps: int = 1000, max_stepsize: float = 1.0, min_stepsize: float = 0.01,
                 gamma: float = 0.05, binary_search_steps: int = 10):
        self.steps, self.max_stepsize, self.min_stepsize = steps, max_stepsize, min_stepsize
        self.gamma, self.binary_search_steps = gamma, binary_search_steps

    def foolbox_class(self):
        """The Foolbox attack class of this norm."""
        return l2_fmn_class()

    def foolbox_attack(self):
        return self.foolbox_class()(
            steps=self.steps, max_stepsize=self.max_stepsize, min_stepsize=self.min_stepsize, gamma=self.gamma,
            binary_search_steps=self.binary_search_steps)


class FMNLinf(FMN):
    """Foolbox's LInfFMNAttack with FMN's settings (the same for every norm in the paper's
    Algorithm 1, in Foolbox and in the authors' code: alpha_0 = 1 annealed to alpha_0 / 100,
    gamma_0 = 0.05, K = 1000 steps, no init attack): the step is the L2-normalised gradient for
    every norm, as in both codes; the eps-ball projection clips each coordinate of delta to
    [-eps, eps], which Foolbox 3.3.4 does correctly (unlike its L2 one); eps before the first
    adversarial point is ||delta||_inf + |margin| / ||grad margin||_1, the linearised Linf distance
    to the boundary."""

    name = "fmn-linf"
    norm = math.inf

    def foolbox_class(self):
        return import_foolbox().attacks.LInfFMNAttack
