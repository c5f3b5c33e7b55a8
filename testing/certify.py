"""`minadv certify`: fill a certificate folder ahead of time (the pytest plugin's cache: commit the
folder and point `minadv_certificates` at it, so that CI never solves)."""

from __future__ import annotations

from pathlib import Path

from minadv.experiments.args import parse_images
from minadv.experiments.data import mnist
from minadv.experiments.models import load
from minadv.verify import InputError, parse_norm

from .certificates import CertificateCache, Origin


def add_arguments(p) -> None:
    p.add_argument("--net", default="N1", help="N1, N2 or a path to a model file (.onnx, .pt)")
    p.add_argument("--images", type=parse_images, required=True, help="MNIST test images, e.g. 0:10 or 1,4,7")
    p.add_argument("--norm", default="2", help="2, inf or 1 (default 2)")
    p.add_argument("--out", type=Path, required=True, help="certificate folder (created if missing)")
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds per image (default 300)")


def run(args) -> int:
    p = parse_norm(args.norm)
    if not args.time_limit > 0:
        raise InputError(f"--time-limit must be positive, got {args.time_limit}")
    cache = CertificateCache(args.out, time_limit=args.time_limit)
    net, split = load(args.net), mnist("test")
    proven = 0
    for i in args.images:
        cert = cache.get(net, split.x(i), p, image=f"MNIST test image {i}")
        res = cert.result
        proven += cert.proven
        how = "read from the folder" if cert.origin == Origin.CACHE else f"solved in {res.time_s:.1f} s"
        rejected = f"; the stored entry was rejected: {cert.rejected}" if cert.rejected else ""
        print(f"image {i}: {res.status}, lower {res.lower:.6g}, upper {res.upper:.6g} ({how}) -> {cert.path.name}"
              f"{rejected}")
    print(f"{len(args.images)} certificates in {args.out} ({proven} proven optimal, "
          f"{cache.counts[Origin.SOLVED]} solved now, {len(cache.rejected)} rejected)")
    return 0
