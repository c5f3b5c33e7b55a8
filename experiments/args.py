"""Argument types the commands share: lists of test-image indices."""

from __future__ import annotations

import argparse


def parse_images(spec: str) -> list[int]:
    """'0:50' -> 0..49, '3' -> [3], '1,4,7' -> [1, 4, 7], '0:10,20:25' -> both ranges."""
    out: list[int] = []
    for part in spec.split(","):
        try:
            if ":" in part:
                lo, hi = part.split(":")
                lo, hi = int(lo or 0), int(hi)
            else:
                lo = int(part)
                hi = lo + 1
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad image list {spec!r}: use e.g. 0:50 or 1,4,7") from None
        if lo == hi:
            raise argparse.ArgumentTypeError(f"empty range {part} in {spec!r}: {lo}:{hi + 1} is image {lo}")
        if lo > hi:
            raise argparse.ArgumentTypeError(f"range {part} in {spec!r} is backwards: use {hi}:{lo}")
        out.extend(range(lo, hi))
    if min(out) < 0 or max(out) >= 10000:
        raise argparse.ArgumentTypeError(f"image indices in {spec!r} must lie in 0..9999")
    return out


def format_images(images: list[int]) -> str:
    """The inverse of parse_images: [0, 1, 2, 7] -> '0:3,7'."""
    parts, k = [], 0
    while k < len(images):
        j = k
        while j + 1 < len(images) and images[j + 1] == images[j] + 1:
            j += 1
        parts.append(f"{images[k]}:{images[j] + 1}" if j > k else str(images[k]))
        k = j + 1
    return ",".join(parts)
