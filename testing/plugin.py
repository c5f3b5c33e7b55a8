"""The minadv pytest plugin (entry point `pytest11`: active wherever minadv is installed;
`pytest -p no:minadv` turns it off). "My attack never beats the proven optimum", with the exact
problem solved once per (network, image, norm) and its certificate cached on disk.

Fixtures (session scope):
  minadv_network  a loader: minadv_network("N1"), ("N2"), or a model file (.onnx, .pt; a relative
                  path is taken from the rootdir), each loaded once
  minadv_n1, minadv_n2  the committed N1 (784-50-10) and N2 (784-50-15-10)
  mnist_test      the MNIST test split: mnist_test.x(i) is image i, (784,) float64 in [0, 1]
  optimum         optimum(net, image, norm=2, *, name=None, time_limit=None) -> Certificate
                  (minadv.testing.certificates): net a ReluNetwork or what minadv_network takes,
                  image an MNIST test index or an array; skips the test when the optimum is not
                  proven within the time limit. certificate.assert_not_below(delta) is the check.
  minadv_certificates  the CertificateCache behind `optimum`

Settings (command line option, or the ini key beside it):
  --minadv-certificates DIR, minadv_certificates: the certificate folder (an ini path is relative
      to the ini file's folder); default: pytest's cache, .pytest_cache/d/minadv-certificates
  --minadv-time-limit SECONDS, minadv_time_limit: seconds per exact solve (default 60)
The terminal summary says how many certificates came from the cache, how many were solved, and
which entries were rejected (and solved again).

Heavy imports (torch, the solver) happen in the fixtures, never when pytest loads the plugin.
"""

from __future__ import annotations

import functools
from numbers import Integral
from pathlib import Path

import pytest

CACHE = pytest.StashKey()  # the session's CertificateCache, once a test has asked for one
DEFAULT_TIME_LIMIT = "60"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minadv", "minadv: cached certificates of minimal adversarial perturbations")
    group.addoption("--minadv-certificates", metavar="DIR",
                    help="certificate folder (commit it so CI never solves); default: pytest's cache")
    group.addoption("--minadv-time-limit", metavar="SECONDS", help="seconds per exact solve (default 60)")
    parser.addini("minadv_certificates", "certificate folder, relative to the ini file's folder", default="")
    parser.addini("minadv_time_limit", "seconds per exact solve", default=DEFAULT_TIME_LIMIT)


def time_limit(config: pytest.Config) -> float:
    value = config.getoption("minadv_time_limit") or config.getini("minadv_time_limit")
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise pytest.UsageError(f"minadv time limit must be a positive number of seconds, got {value!r}")
    return seconds


def certificate_folder(config: pytest.Config) -> Path:
    if option := config.getoption("minadv_certificates"):
        return config.invocation_params.dir / option
    if ini := config.getini("minadv_certificates"):
        return (config.inipath.parent if config.inipath else config.rootpath) / ini
    if getattr(config, "cache", None) is not None:  # None with -p no:cacheprovider
        return config.cache.mkdir("minadv-certificates")
    from minadv.experiments.data import cache_dir

    return cache_dir() / "certificates"


def pytest_configure(config: pytest.Config) -> None:
    time_limit(config)  # a bad setting is a usage error at once, not an error in every test


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    cache = config.stash.get(CACHE, None)
    if cache is None:  # no test asked for a certificate
        return
    from minadv.testing.certificates import Origin

    terminalreporter.write_sep("-", "minadv certificates")
    terminalreporter.write_line(f"{cache.folder}: {cache.counts[Origin.CACHE]} read from the cache, "
                                f"{cache.counts[Origin.SOLVED]} solved now, {len(cache.rejected)} rejected")
    for entry in cache.rejected:
        terminalreporter.write_line(f"rejected and solved again: {entry}")


@functools.cache
def _mnist_test():
    from minadv.experiments.data import mnist

    return mnist("test")


@pytest.fixture(scope="session")
def minadv_certificates(pytestconfig):
    from minadv.testing.certificates import CertificateCache

    cache = CertificateCache(certificate_folder(pytestconfig), time_limit=time_limit(pytestconfig))
    pytestconfig.stash[CACHE] = cache
    return cache


@pytest.fixture(scope="session")
def minadv_network(pytestconfig):
    from minadv.experiments.models import ARCHITECTURES, load

    @functools.cache
    def network(spec: str | Path):
        return load(spec if str(spec) in ARCHITECTURES else pytestconfig.rootpath / spec)

    return network


@pytest.fixture(scope="session")
def minadv_n1(minadv_network):
    return minadv_network("N1")


@pytest.fixture(scope="session")
def minadv_n2(minadv_network):
    return minadv_network("N2")


@pytest.fixture(scope="session")
def mnist_test():
    return _mnist_test()


@pytest.fixture(scope="session")
def optimum(minadv_certificates, minadv_network):
    from minadv.verify import norm_name

    def optimum(net, image, norm=2, *, name: str | None = None, time_limit: float | None = None):
        """The certificate for (net, image, norm) from the cache, or solved now and stored; the
        test is skipped when the optimum is not proven within the time limit."""
        if isinstance(net, str | Path):
            net = minadv_network(net)
        if isinstance(image, Integral):
            x, name = _mnist_test().x(int(image)), name or f"MNIST test image {image}"
        else:
            x = image
        cert = minadv_certificates.get(net, x, norm, image=name, time_limit=time_limit)
        if not cert.proven:
            res = cert.result
            pytest.skip(f"{cert.image}: the L{norm_name(res.norm)} optimum was not proven within "
                        f"{cert.time_limit:g} s (status {res.status}, lower {res.lower:.6g}, upper {res.upper:.6g}); "
                        f"certificate {cert.source}")
        return cert

    return optimum
