"""The certificate cache behind the pytest plugin (minadv.testing.certificates) and `minadv certify`:
a miss solves and stores, a hit solves nothing, an entry that fails a check is solved again."""

import json
import shutil

import numpy as np
import pytest

import minadv.testing.certificates as certificates
from minadv.experiments.cli import main
from minadv.testing.certificates import (
    CertificateCache,
    Origin,
    _sha256,
    image_sha256,
    network_sha256,
)
from minadv.verify import InputError, ReluNetwork, Result, Status

IMAGE = 4  # N1 solves MNIST test image 4 in about 0.3 s


@pytest.fixture
def solves(monkeypatch):
    """The exact solves made through the cache: a list of (image sha256, time limit)."""
    made = []
    solve = certificates.minimal_perturbation

    def counted(net, x, p, **options):
        made.append((image_sha256(x), options["time_limit"]))
        return solve(net, x, p, **options)

    monkeypatch.setattr(certificates, "minimal_perturbation", counted)
    return made


@pytest.fixture(scope="module")
def stored(n1, test_split, tmp_path_factory):
    """A folder holding the certificate of (N1, image 4, L2), and that certificate."""
    folder = tmp_path_factory.mktemp("certificates")
    cert = CertificateCache(folder).get(n1, test_split.x(IMAGE), 2, image=f"MNIST test image {IMAGE}")
    assert cert.proven and cert.origin == Origin.SOLVED
    return folder, cert


@pytest.fixture
def folder(stored, tmp_path):
    """A copy of the stored folder that a test may tamper with."""
    return shutil.copytree(stored[0], tmp_path / "certs")


def test_a_hit_is_the_stored_certificate_and_solves_nothing(n1, test_split, stored, folder, solves):
    cache = CertificateCache(folder)
    cert = cache.get(n1, test_split.x(IMAGE), "l2", image="four")
    first = stored[1].result
    assert cert.origin == Origin.CACHE and solves == [] and cache.counts == {Origin.CACHE: 1}
    assert (cert.result.status, cert.result.lower, cert.result.upper) == (first.status, first.lower, first.upper)
    assert cert.result.value == pytest.approx(first.value, rel=1e-12)
    assert np.array_equal(cert.result.x_adv, first.x_adv)
    assert "read from the cache and re-verified; solver minadv " in cert.source and str(cert.path) in cert.source


def test_a_miss_solves_and_stores_one_file_per_key(n1, test_split, tmp_path, solves):
    cache = CertificateCache(tmp_path / "new")  # created on the first store
    cert = cache.get(n1, test_split.x(IMAGE), 2, time_limit=60)
    assert cert.origin == Origin.SOLVED and cert.proven and len(solves) == 1
    assert [p.name for p in (tmp_path / "new").iterdir()] == [cert.path.name]  # no temporary file left
    assert cert.image == f"image sha256 {image_sha256(test_split.x(IMAGE))[:12]}"


def test_the_key_is_the_weights_image_norm_box_and_solver(n1, test_split, tmp_path):
    cache = CertificateCache(tmp_path)
    x = test_split.x(IMAGE)
    key = cache.key(n1, x, 2.0)
    assert key == {"network_sha256": network_sha256(n1), "image_sha256": image_sha256(x), "norm": "2",
                   "box": [0.0, 1.0], "solver": certificates.solver_version(), "rel_gap": 1e-4}
    same = ReluNetwork.from_layers([(W.copy(), b.copy()) for W, b in zip(n1.weights, n1.biases, strict=True)])
    assert network_sha256(same) == network_sha256(n1)  # the arrays, not the object or its file
    W = n1.weights[0].copy()
    W[0, 0] = np.nextafter(W[0, 0], np.inf)
    nudged = ReluNetwork.from_layers([(W, n1.biases[0]), *zip(n1.weights[1:], n1.biases[1:], strict=True)])
    paths = {cache.path(k) for k in (key, cache.key(nudged, x, 2.0), cache.key(n1, test_split.x(1), 2.0),
                                     cache.key(n1, x, np.inf), {**key, "solver": "minadv 0.0.1"})}
    assert len(paths) == 5


def _edit(path, change, *, checksum):
    """Apply change(doc) to the entry; with checksum=True its checksum is recomputed, as someone
    who forges an entry (or a buggy tool writing one) would do."""
    doc = json.loads(path.read_text())
    change(doc)
    if checksum:
        doc["sha256"] = _sha256({k: v for k, v in doc.items() if k != "sha256"})
    path.write_text(json.dumps(doc))


def _scale_point(doc, s, x):
    doc["x_adv"] = list(x + s * (np.array(doc["x_adv"]) - x))


@pytest.mark.parametrize("change, checksum, reason", [
    (lambda d, x: d["certificate"].update(lower=d["certificate"]["lower"] * 1.01), False, "checksum does not match"),
    (lambda d, x: d["certificate"].update(status="robust"), False, "checksum does not match"),
    (lambda d, x: _scale_point(d, 0.9, x), True, "fails the float64 adversarial check"),
    (lambda d, x: d["certificate"].update(upper=d["certificate"]["upper"] * 1.5), True, "the entry records"),
    (lambda d, x: d["certificate"].update(lower=d["certificate"]["upper"] * 2), True, "not 0 <= lower"),
    (lambda d, x: d["certificate"].update(lower=d["certificate"]["upper"] * 0.5), True, "gap 0.5 above rel_gap"),
    (lambda d, x: d["certificate"].update(pred=(d["certificate"]["pred"] + 1) % 10), True, "the network puts x in"),
    (lambda d, x: d["key"].update(image_sha256="0" * 64), True, "recorded for another image_sha256"),
    (lambda d, x: d.update(format=2), True, "format 2; this minadv reads format 1"),
    (lambda d, x: d["certificate"].pop("counts"), True, "unreadable (KeyError"),
], ids=["lower", "status", "point", "upper", "lower>upper", "gap", "class", "key", "format", "field"])
def test_a_tampered_entry_is_rejected_and_solved_again(n1, test_split, folder, solves, change, checksum, reason):
    x = test_split.x(IMAGE)
    cache = CertificateCache(folder)
    path = cache.path(cache.key(n1, x, 2.0))
    _edit(path, lambda d: change(d, x), checksum=checksum)
    cert = cache.get(n1, x, 2)
    assert reason in cert.rejected and cache.rejected == [f"{path}: {cert.rejected}"]
    assert cert.origin == Origin.SOLVED and len(solves) == 1 and cert.proven
    assert "the stored entry was rejected: " in cert.source
    assert CertificateCache(folder).get(n1, x, 2).origin == Origin.CACHE  # the entry written again is trusted


def test_a_torn_or_empty_entry_is_rejected(n1, test_split, folder, solves):
    x = test_split.x(IMAGE)
    cache = CertificateCache(folder)
    path = cache.path(cache.key(n1, x, 2.0))
    for text in (path.read_text()[:500], ""):
        path.write_text(text)
        cert = cache.get(n1, x, 2)
        assert "unreadable (JSONDecodeError" in cert.rejected and cert.origin == Origin.SOLVED
    assert len(solves) == 2


def test_a_copied_entry_is_rejected(n1, test_split, folder, solves):
    """Image 4's entry copied under image 1's name (its key says image 4)."""
    cache = CertificateCache(folder)
    four = cache.path(cache.key(n1, test_split.x(IMAGE), 2.0))
    shutil.copy(four, cache.path(cache.key(n1, test_split.x(1), 2.0)))
    cert = cache.get(n1, test_split.x(1), 2)
    assert "recorded for another image_sha256" in cert.rejected and len(solves) == 1


def test_a_time_limit_entry_is_used_up_to_its_time_limit(n1, test_split, tmp_path, solves):
    cache = CertificateCache(tmp_path)
    x = test_split.x(1)  # not proven in a millisecond, about 1 s to prove
    short = cache.get(n1, x, 2, time_limit=0.001)
    assert short.result.status == Status.TIME_LIMIT and not short.proven and short.path.exists()
    again = cache.get(n1, x, 2, time_limit=0.001)
    assert again.origin == Origin.CACHE and again.result.lower == short.result.lower and len(solves) == 1
    longer = cache.get(n1, x, 2, time_limit=60)
    assert longer.origin == Origin.SOLVED and longer.proven and longer.rejected == ""
    assert [t for _, t in solves] == [0.001, 60]
    assert cache.get(n1, x, 2, time_limit=0.001).proven  # an optimum answers any time limit


def test_an_error_is_never_stored(n1, test_split, tmp_path, monkeypatch):
    monkeypatch.setattr(certificates, "minimal_perturbation",
                        lambda net, x, p, **options: Result("mip", p, Status.ERROR, net.predict(x), message="boom"))
    cert = CertificateCache(tmp_path).get(n1, test_split.x(IMAGE), 2)
    assert not cert.proven and not cert.path.exists()
    assert "solved now, not stored (status error)" in cert.source


def test_a_failed_write_leaves_the_old_entry_and_no_temporary_file(n1, test_split, folder, monkeypatch):
    x = test_split.x(IMAGE)
    cache = CertificateCache(folder)
    path = cache.path(cache.key(n1, x, 2.0))
    before = path.read_text()
    path.write_text(before.replace('"format": 1', '"format": 1 '))  # the checksum covers content, not spacing
    assert cache.get(n1, x, 2).origin == Origin.CACHE
    _edit(path, lambda d: d.update(format=2), checksum=False)
    edited = path.read_text()

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(certificates.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.get(n1, x, 2)
    assert path.read_text() == edited and sorted(folder.iterdir()) == [path]


def test_the_assertion_names_the_image_norm_bound_and_source(n1, stored):
    cert = stored[1]
    delta = cert.result.x_adv - cert.x
    assert cert.assert_not_below(delta) is cert.result
    with pytest.raises(AssertionError) as err:
        cert.assert_not_below(0.9 * delta)
    lower = f"{cert.lower:.6g}"
    assert str(err.value).startswith(f"MNIST test image {IMAGE}, L2: x + delta is not adversarial")
    assert f"Certified lower bound {lower} (status optimal" in str(err.value)
    assert f"certificate {cert.path} (solved now and stored; solver minadv " in str(err.value)


def test_bad_folders_and_time_limits_are_input_errors(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="exists and is not a folder"):
        CertificateCache(tmp_path / "file")
    with pytest.raises(InputError, match="time_limit must be positive"):
        CertificateCache(tmp_path, time_limit=0)


def test_certify_fills_a_folder_and_reads_it_back(tmp_path, capsys, solves):
    args = ["certify", "--net", "N1", "--images", f"{IMAGE}", "--norm", "2", "--out", str(tmp_path / "c")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"image {IMAGE}: optimal, lower " in out and "1 certificates in" in out and "1 solved now" in out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(read from the folder)" in out and "0 solved now, 0 rejected" in out and len(solves) == 1
    assert len(list((tmp_path / "c").glob("*.json"))) == 1


@pytest.mark.parametrize("bad, message", [
    (["--norm", "3"], "unknown norm '3'"),
    (["--net", "missing.pt"], "no model file at missing.pt"),
    (["--time-limit", "0"], "--time-limit must be positive"),
    (["--out", "FILE"], "exists and is not a folder"),
])
def test_certify_bad_input_is_one_line_and_exit_2(tmp_path, capsys, bad, message):
    (tmp_path / "FILE").write_text("")
    args = ["certify", "--images", "4", "--out", str(tmp_path / "c"), *bad]
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("minadv certify: error: ")
