"""minadv.attacks: rLR-QP (Croce & Hein 2018) and the baselines DeepFool, L-BFGS, Carlini-Wagner L2."""

from .base import Attack
from .cw import CarliniWagner
from .deepfool import DeepFool
from .lbfgs import LBFGS
from .rlrqp import RLRQP

# name (as used by the CLI and the results files) -> Attack class
ATTACKS: dict[str, type[Attack]] = {"rlrqp": RLRQP, "deepfool": DeepFool, "cw": CarliniWagner, "lbfgs": LBFGS}

__all__ = ["ATTACKS", "Attack", "CarliniWagner", "DeepFool", "LBFGS", "RLRQP"]
