"""DDN, decoupled direction and norm (Rony, Hafemann, Oliveira, Ben Ayed, Sabourin, Granger,
CVPR 2019) through Foolbox 3.3.4."""

from __future__ import annotations

from .foolbox_attack import FoolboxAttack, import_foolbox


class DDN(FoolboxAttack):
    """Foolbox's DDNAttack with the paper's settings: the norm of the perturbation eps starts at
    eps_0 = 1 and is multiplied by 1 - gamma (adversarial) or 1 + gamma (not) with gamma = 0.05;
    the gradient step alpha is cosine-annealed from 1 to 0.01 (Foolbox's fixed schedule); 1000
    steps, the largest of the paper's MNIST budgets (100, 300, 1000)."""

    name = "ddn"

    def __init__(self, *, steps: int = 1000, init_epsilon: float = 1.0, gamma: float = 0.05):
        self.steps, self.init_epsilon, self.gamma = steps, init_epsilon, gamma

    def foolbox_attack(self):
        return import_foolbox().attacks.DDNAttack(steps=self.steps, init_epsilon=self.init_epsilon, gamma=self.gamma)
