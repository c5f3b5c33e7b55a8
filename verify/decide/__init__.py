"""minadv.verify.decide: decision problems over an input box (VNN-COMP robustness properties):
is there z in [lower, upper] with f_t(z) >= f_label(z) for some target t? `verify_box` answers per
target with the split search (`splits`: branch and bound over ReLU splits, beta-CROWN node bounds)
or the Tjeng MILP."""

from .box import BoxMethod, BoxVerdict, verify_box
from .verdicts import BoxAnswer, TargetVerdict

__all__ = ["BoxMethod", "BoxVerdict", "verify_box", "BoxAnswer", "TargetVerdict"]
