"""Certificates of minimal adversarial perturbations, cached on disk and re-verified on load.

A certificate is the exact result of `minimal_perturbation(net, x, norm)`: a proven lower bound on
the minimal ||delta||_p over x + delta in the box [0,1]^d, and a float64-verified adversarial point
x_adv whose norm is the upper bound. The cache is a folder of JSON files, one per key

    {network_sha256, image_sha256, norm, box, solver, rel_gap}

named by the key's sha256. network_sha256 hashes the float64 weight and bias arrays (shapes and
bytes, layer by layer: a renamed file is the same network, a retrained one another); image_sha256
hashes the float64 pixels; solver is "minadv VERSION", so that a new release solves again. The
folder can be committed (CI then never solves) or live in a cache directory.

An entry is trusted only after these checks (cheap: one forward pass):
- its checksum (sha256 of the rest of the file) matches: a torn or hand-edited file fails here;
- its key is the one asked for: a file copied under another name fails here;
- its point passes the float64 adversarial check (`minadv.verify.verified_result`) for the network's
  class of x, and its norm is the recorded upper bound; 0 <= lower <= upper; an `optimal` entry's
  gap is within rel_gap.
The lower bound is trusted as recorded (checking it means solving again); the solver and its
version are part of the key and shown in `Certificate.source`. A miss, or an entry that fails a
check, is solved again and stored: written to a temporary file in the folder, then renamed over the
entry, so that a reader never sees half a file. A `time_limit` result is stored with its time limit
and solved again only when a larger limit is asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path

import numpy as np

from minadv.verify import (
    REL_GAP,
    Counts,
    InputError,
    ReluNetwork,
    Result,
    Status,
    assert_not_below_optimum,
    check_image,
    minimal_perturbation,
    norm_name,
    parse_norm,
    verified_result,
)

FORMAT = 1  # the layout of an entry; another layout is rejected (and solved again)
BOX = (0.0, 1.0)  # minimal_perturbation's input box [0,1]^d
STORED = (Status.OPTIMAL, Status.TIME_LIMIT)  # an error certifies nothing and is never stored
VALUE_RTOL = 1e-9  # the recorded upper bound against the norm of the recorded point, recomputed


def solver_version() -> str:
    return f"minadv {version('minadv')}"


def network_sha256(net: ReluNetwork) -> str:
    """sha256 over the layers' float64 (W, b): shapes and bytes, so a name or path plays no part."""
    h = hashlib.sha256()
    for W, b in zip(net.weights, net.biases, strict=True):
        for a in (W, b):
            a = np.ascontiguousarray(a, dtype=np.float64)
            h.update(repr(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def image_sha256(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float64).tobytes()).hexdigest()


def _sha256(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


class Origin(StrEnum):
    CACHE = "cache"  # read from the folder and re-verified
    SOLVED = "solved"  # a miss, a rejected entry or a too short time limit: solved now


class Rejected(Exception):
    """A cache entry that fails a check; the message says which."""


@dataclass(frozen=True)
class Certificate:
    """An exact result for (net, x, norm) and where it came from.

    image: how messages name x ("MNIST test image 4"). rejected: why the stored entry, if any, was
    not trusted and the result solved again.
    """

    net: ReluNetwork
    x: np.ndarray
    image: str
    result: Result
    path: Path
    origin: Origin
    solver: str
    time_limit: float
    rel_gap: float
    rejected: str = ""

    @property
    def proven(self) -> bool:
        return self.result.status == Status.OPTIMAL

    @property
    def lower(self) -> float:
        return float(self.result.lower)

    @property
    def source(self) -> str:
        if self.origin == Origin.CACHE:
            how = "read from the cache and re-verified"
        elif self.result.status in STORED:
            how = "solved now and stored"
        else:
            how = f"solved now, not stored (status {self.result.status})"
        if self.rejected:
            how += f"; the stored entry was rejected: {self.rejected}"
        return (f"{self.path} ({how}; solver {self.solver}, {self.result.message or 'exact'}, "
                f"{self.result.time_s:.2f} s, time limit {self.time_limit:g} s)")

    def assert_not_below(self, delta) -> Result:
        """`minadv.verify.assert_not_below_optimum` against this certificate: AssertionError unless
        x + delta is adversarial (float64 check) and ||delta||_p >= (1 - rel_gap) * the certified
        bound. The message adds which image, the norm, the certified lower bound and `source`."""
        __tracebackhide__ = True  # pytest: the failure shows the caller's line, not this frame's arrays
        p = self.result.norm
        try:
            return assert_not_below_optimum(self.net, self.x, delta, exact=self.result, norm=p, rel_gap=self.rel_gap)
        except AssertionError as err:
            raise AssertionError(
                f"{self.image}, L{norm_name(p)}: {err}. Certified lower bound {self.lower:.6g} "
                f"(status {self.result.status}, upper {self.result.upper:.6g}); certificate {self.source}") from None


class CertificateCache:
    """Certificates in `folder`: `get` reads and re-verifies an entry, or solves and stores one.

    counts: certificates handed out per Origin; rejected: "path: reason" of each entry not trusted.
    """

    def __init__(self, folder: str | Path, *, time_limit: float = 300.0, rel_gap: float = REL_GAP):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"certificate folder {self.folder} exists and is not a folder")
        if not time_limit > 0:
            raise InputError(f"time_limit must be positive, got {time_limit}")
        self.time_limit = float(time_limit)
        self.rel_gap = rel_gap
        self.counts: Counter[Origin] = Counter()
        self.rejected: list[str] = []

    def key(self, net: ReluNetwork, x: np.ndarray, p: float) -> dict:
        return {"network_sha256": network_sha256(net), "image_sha256": image_sha256(x), "norm": norm_name(p),
                "box": list(BOX), "solver": solver_version(), "rel_gap": self.rel_gap}

    def path(self, key: dict) -> Path:
        return self.folder / f"{_sha256(key)}.json"

    def get(self, net: ReluNetwork, x, norm=2, *, image: str | None = None,
            time_limit: float | None = None) -> Certificate:
        """The certificate for (net, x, norm): the stored entry when it passes every check (and,
        for a `time_limit` entry, was solved with at least `time_limit` seconds), else solved now
        with `time_limit` (default: the cache's) and stored."""
        x = check_image(net, x)
        p = parse_norm(norm)
        time_limit = self.time_limit if time_limit is None else float(time_limit)
        if not time_limit > 0:
            raise InputError(f"time_limit must be positive, got {time_limit}")
        key = self.key(net, x, p)
        path = self.path(key)
        image = image or f"image sha256 {key['image_sha256'][:12]}"
        made = dict(net=net, x=x, image=image, path=path, solver=key["solver"], rel_gap=self.rel_gap)
        rejected = ""
        if path.exists():
            try:
                res, recorded_limit = self._read(path, net, x, p, key)
                if res.status == Status.OPTIMAL or recorded_limit >= time_limit:
                    self.counts[Origin.CACHE] += 1
                    return Certificate(result=res, origin=Origin.CACHE, time_limit=recorded_limit, **made)
            except Rejected as err:
                rejected = str(err)
                self.rejected.append(f"{path}: {rejected}")
        res = minimal_perturbation(net, x, p, time_limit=time_limit, rel_gap=self.rel_gap)
        if res.status in STORED:
            self._write(path, key, image, net, res, time_limit)
        self.counts[Origin.SOLVED] += 1
        return Certificate(result=res, origin=Origin.SOLVED, time_limit=time_limit, rejected=rejected, **made)

    def _read(self, path: Path, net: ReluNetwork, x: np.ndarray, p: float, key: dict) -> tuple[Result, float]:
        """The entry's Result (its point re-verified) and its time limit; Rejected if a check fails."""
        try:
            doc = json.loads(path.read_text())
            body = {k: v for k, v in doc.items() if k != "sha256"}
            if doc.get("sha256") != _sha256(body):
                raise Rejected("its checksum does not match its content (edited or corrupted)")
            if body["format"] != FORMAT:
                raise Rejected(f"format {body['format']!r}; this minadv reads format {FORMAT}")
            if body["key"] != key:
                differ = sorted(k for k in key if body["key"].get(k) != key[k])
                raise Rejected(f"it was recorded for another {', '.join(differ) or 'key'}")
            cert = body["certificate"]
            status = Status(cert["status"])
            lower, upper = float(cert["lower"]), float(cert["upper"])
            x_adv = None if body["x_adv"] is None else np.array(body["x_adv"], dtype=np.float64)
            counts = Counts(**cert["counts"])
            method, message, time_s, limit = cert["method"], cert["message"], cert["time_s"], float(cert["time_limit"])
            pred = cert["pred"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # JSONDecodeError: ValueError
            raise Rejected(f"unreadable ({type(err).__name__}: {err})") from None
        c = net.predict(x)
        if status not in STORED:
            raise Rejected(f"status {status} is never stored")
        if pred != c:
            raise Rejected(f"it is for class {pred}; the network puts x in class {c}")
        if x_adv is None and status == Status.OPTIMAL:
            raise Rejected("an optimal entry without its point")
        if x_adv is not None and x_adv.shape != x.shape:
            raise Rejected(f"its point has shape {x_adv.shape}; the image {x.shape}")
        res = verified_result(net, x, c, x_adv, method=method, norm=p, status=status, lower=lower, upper=upper,
                              time_s=time_s, counts=counts, message=message)
        if x_adv is not None:
            if res.status == Status.ERROR:
                raise Rejected(f"its point fails the float64 adversarial check ({res.message})")
            if not abs(res.value - upper) <= VALUE_RTOL * upper:
                raise Rejected(f"its point has norm {res.value:.10g}; the entry records {upper:.10g}")
        if not 0 <= lower <= upper:
            raise Rejected(f"its bounds are not 0 <= lower {lower:.6g} <= upper {upper:.6g}")
        if status == Status.OPTIMAL and upper - lower > self.rel_gap * upper:
            raise Rejected(f"'optimal' with the gap {res.gap:.3g} above rel_gap {self.rel_gap:g}")
        return res, limit

    def _write(self, path: Path, key: dict, image: str, net: ReluNetwork, res: Result, time_limit: float) -> None:
        body = {
            "format": FORMAT,
            "key": key,
            "image": image,
            "network": net.architecture,
            "certificate": {"status": str(res.status), "method": res.method, "pred": int(res.pred),
                            "lower": res.lower, "upper": res.upper, "value": res.value, "target": int(res.target),
                            "margin": res.margin, "time_s": res.time_s, "time_limit": time_limit,
                            "counts": asdict(res.counts), "message": res.message},
            "x_adv": None if res.x_adv is None else res.x_adv.tolist(),
        }
        text = json.dumps({**body, "sha256": _sha256(body)}, indent=1) + "\n"
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
