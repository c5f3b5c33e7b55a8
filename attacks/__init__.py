"""minadv.attacks: rLR-QP (Croce & Hein 2018), the baselines DeepFool, L-BFGS, Carlini-Wagner L2
(Foolbox's and a batched torch one), the modern minimum-norm attacks FMN, DDN, Brendel-Bethge and
FAB (L2) and FMN, FAB and PGD with bisection on eps (Linf), each behind the one contract of
`base.Attack`; PGD over a box for VNN-LIB properties and L2 PGD for adversarial training."""

from .base import Attack, Candidate
from .bb import BrendelBethge
from .cw import CarliniWagner
from .cw_torch import Abort, CarliniWagnerTorch
from .ddn import DDN
from .deepfool import DeepFool
from .fab import FAB, FABLinf
from .fmn import FMN, FMNLinf
from .lbfgs import LBFGS, LBFGSTargets
from .pgd import PGDLinf, pgd_box, pgd_l2
from .rlrqp import RLRQP, Solver, Targets, ball, check_device, warm_start

# name (as used by the CLI and the results files) -> Attack class
ATTACKS: dict[str, type[Attack]] = {"rlrqp": RLRQP, "deepfool": DeepFool, "cw": CarliniWagner,
                                    "cw-torch": CarliniWagnerTorch, "lbfgs": LBFGS,
                                    "fmn": FMN, "ddn": DDN, "bb": BrendelBethge, "fab": FAB,
                                    "fmn-linf": FMNLinf, "fab-linf": FABLinf, "pgd-linf": PGDLinf}

__all__ = ["ATTACKS", "DDN", "FAB", "FMN", "LBFGS", "RLRQP", "Abort", "Attack", "BrendelBethge", "Candidate",
           "CarliniWagner", "CarliniWagnerTorch", "DeepFool", "FABLinf", "FMNLinf", "LBFGSTargets", "PGDLinf",
           "Solver", "Targets", "ball", "check_device", "pgd_box", "pgd_l2",
           "warm_start"]
