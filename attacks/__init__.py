"""minadv.attacks: rLR-QP (Croce & Hein 2018) and the baselines DeepFool, L-BFGS, Carlini-Wagner L2
(Foolbox's and a batched torch one), each behind the one contract of `base.Attack`; PGD over a box for
VNN-LIB properties and L2 PGD for adversarial training."""

from .base import Attack, Candidate
from .cw import CarliniWagner
from .cw_torch import Abort, CarliniWagnerTorch
from .deepfool import DeepFool
from .lbfgs import LBFGS, LBFGSTargets
from .pgd import pgd_box, pgd_l2
from .rlrqp import RLRQP, Solver, Targets, ball, check_device

# name (as used by the CLI and the results files) -> Attack class
ATTACKS: dict[str, type[Attack]] = {"rlrqp": RLRQP, "deepfool": DeepFool, "cw": CarliniWagner,
                                 "cw-torch": CarliniWagnerTorch, "lbfgs": LBFGS}

__all__ = ["ATTACKS", "Abort", "Attack", "Candidate", "CarliniWagner", "CarliniWagnerTorch", "DeepFool", "LBFGS",
           "LBFGSTargets", "RLRQP", "Solver", "Targets", "ball", "check_device", "pgd_box", "pgd_l2"]
