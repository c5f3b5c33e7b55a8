"""minadv.attacks: rLR-QP (Croce & Hein 2018) and the baselines DeepFool, L-BFGS, Carlini-Wagner L2."""

from .base import Attack

# name (as used by the CLI and the results files) -> Attack class
ATTACKS: dict[str, type[Attack]] = {}

__all__ = ["ATTACKS", "Attack"]
