"""The batched torch Carlini-Wagner L2 (`cw-torch`): Foolbox's CW step for step, verified points,
never below the brute-forced optimum, a device that torch does not see refused."""

import numpy as np
import pytest
import torch
from bruteforce import brute_force

from minadv.attacks import Abort, CarliniWagner, CarliniWagnerTorch
from minadv.verify import Status, check
from minadv.verify.qp.reference import solve_daqp

from helpers import random_net

SMALL = {"binary_search_steps": 5, "steps": 200}  # both sides alike: the code paths of the paper's settings
# settings where early abort decides: on N1 images 4-8, the batch rule, the per-image rule and no
# abort give three different answers (image 8: 0.0369, 0.0312, 0.0310)
ABORTS = {"binary_search_steps": 3, "steps": 400}


def _values(results):
    return np.array([r.value for r in results])


def _assert_same(ours, theirs):
    """Equal norms where cw-torch found a point; where it did not, Foolbox's answer is its
    initial `best`, the all-zero image (kept when that image is classified otherwise)."""
    for a, b in zip(ours, theirs, strict=True):
        if a.status == Status.FOUND:
            assert a.value == pytest.approx(b.value, rel=1e-5)
        else:
            assert b.status == Status.FAILED or not b.x_adv.any()


@pytest.mark.slow
def test_batch_abort_repeats_foolbox_on_the_same_batch(n1, test_split):
    """Abort.BATCH is Foolbox's rule (the summed loss): the same batch gives the same points."""
    X = test_split.x(slice(4, 9))
    ours = CarliniWagnerTorch(abort=Abort.BATCH, **ABORTS).run_batch(n1, X)
    theirs = CarliniWagner(**ABORTS).run_batch(n1, X)
    _assert_same(ours, theirs)
    assert np.isfinite(_values(ours)).sum() >= 3


@pytest.mark.slow
def test_image_abort_is_foolbox_on_each_image_alone(n1, test_split):
    """Abort.IMAGE: an image's answer in a batch is Foolbox's on that image alone (batches of one),
    also after images have left the batch."""
    X = test_split.x(slice(4, 9))
    ours = CarliniWagnerTorch(**ABORTS).run_batch(n1, X)
    alone = [CarliniWagner(**ABORTS).run(n1, x) for x in X]
    _assert_same(ours, alone)
    assert not np.allclose(_values(CarliniWagner(**ABORTS).run_batch(n1, X)), _values(alone))


@pytest.mark.slow
def test_never_below_the_brute_forced_optimum_on_tiny_nets():
    """Tiny random networks (6-8 hidden ReLUs), 3 images each: every found point is verified and
    not below the optimum found by enumerating every activation pattern. CW may fail where the
    gradient vanishes (dead ReLUs: seed 6, none of its images), but finds most."""
    found = reachable = 0
    for seed in range(8):
        sizes = [(5, 6, 3), (4, 8, 3), (6, 4, 4, 3), (4, 7, 4)][seed % 4]
        net = random_net(sizes, seed=seed, scale=2.0)
        X = np.random.default_rng(100 + seed).random((3, sizes[0]))
        for x, res in zip(X, CarliniWagnerTorch(**SMALL).run_batch(net, X), strict=True):
            truth, _ = brute_force(net, x, solve=solve_daqp)
            reachable += bool(np.isfinite(truth))
            if res.status != Status.FOUND:
                continue
            found += 1
            v = check(net, res.x_adv, res.pred)
            assert v.in_box and v.margin >= -1e-9 and res.target != res.pred
            assert res.value == pytest.approx(np.linalg.norm(res.x_adv - x), abs=1e-12)
            assert res.value >= truth - 1e-8
    assert found >= reachable / 2  # the checks above ran on most images


def test_unseen_device_is_refused():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="no CUDA"):
        CarliniWagnerTorch(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_answer(n1, test_split):
    X = test_split.x(slice(0, 4))
    gpu = CarliniWagnerTorch(device="cuda", **SMALL).run_batch(n1, X)
    np.testing.assert_allclose(_values(gpu), _values(CarliniWagnerTorch(**SMALL).run_batch(n1, X)), rtol=1e-4)
    assert np.isfinite(_values(gpu)).all()
