"""The results store: one row per key, points never lost, one writer at a time, torn writes repaired,
foreign files left alone (unit tests, then property tests with random kill points and two writers)."""

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minadv.experiments.store import COLUMNS, ResultStore
from minadv.verify import Counts, InputError, Result, Status

from helpers import held_by_another_process


def _result(method="mip", status=Status.OPTIMAL, value=0.5, point=True):
    x_adv = np.full(4, value / 2) if point else None  # ||x_adv - 0||_2 = value
    return Result(method, 2.0, status, 3, value=value, lower=value, upper=value, x_adv=x_adv, margin=0.0,
                  target=1, time_s=1.5, counts=Counts(unstable=7, nodes=11))


def test_rows_and_points_survive_a_restart(tmp_path):
    with ResultStore(tmp_path / "r.csv", tmp_path / "adv.npz") as store:
        store.append("N1", 0, _result(), np.zeros(4), label=3)
        store.append("N1", 1, _result("rlrqp", Status.FAILED, np.nan, point=False), np.zeros(4), label=2)
    with ResultStore(tmp_path / "r.csv", tmp_path / "adv.npz") as again:
        assert again.keys() == {("N1", 0, "mip", "2", ""), ("N1", 1, "rlrqp", "2", "")}
        frame = again.frame
    assert list(frame.columns) == COLUMNS
    row = frame.iloc[0]
    assert row.status == "optimal" and row.value == 0.5 and row.unstable == 7 and row.nodes == 11
    assert np.isnan(frame.iloc[1].value) and frame.iloc[1].status == "failed"
    with np.load(tmp_path / "adv.npz") as z:
        assert list(z["image"]) == [0]  # a failed attack stores no point
        assert z["x"].shape == (1, 4) and np.all(z["x_adv"] == 0.25) and list(z["pred"]) == [3]


def test_a_torn_last_line_is_dropped(tmp_path):
    with ResultStore(tmp_path / "r.csv") as store:
        store.append("N2", 5, _result(), np.zeros(4))
    with open(tmp_path / "r.csv", "a") as fh:
        fh.write("N2,6,mip,2,,0.5,0.5,0.5,0.0,1.5,,0.0,3,-1,1,7,0,0,0,11,0,0,,optim")  # killed mid-write
    with ResultStore(tmp_path / "r.csv") as again:
        assert again.keys() == {("N2", 5, "mip", "2", "")}
        again.append("N2", 6, _result(), np.zeros(4))
    with ResultStore(tmp_path / "r.csv") as again:
        assert again.keys() == {("N2", 5, "mip", "2", ""), ("N2", 6, "mip", "2", "")}


def test_a_complete_last_row_without_its_newline_is_kept(tmp_path):
    """Item 8: only the final newline missing is not a torn row."""
    path = tmp_path / "r.csv"
    with ResultStore(path) as store:
        store.append("N1", 0, _result(), np.zeros(4))
        store.append("N1", 1, _result(value=0.75), np.zeros(4))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with ResultStore(path) as store:
        assert len(store) == 2
    frame = pd.read_csv(path)
    assert list(frame.image) == [0, 1] and list(frame.value) == [0.5, 0.75]
    assert path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize("text", ["a,b\n1,2\n3,4", "a,b\n1,2\n", "\x00\xff\x10binary", "net,image\n0,1\n"])
def test_a_file_that_is_not_a_results_file_is_never_modified(tmp_path, text):
    """Item 8: a foreign file given as the results file: an error, and its bytes untouched."""
    path = tmp_path / "other.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError, match="is not a minadv results file"):
        ResultStore(path)
    assert path.read_bytes() == text.encode("latin-1")


def test_a_file_that_is_not_a_points_file_is_refused(tmp_path):
    (tmp_path / "adv.npz").write_text("not an npz")
    with pytest.raises(InputError, match="is not a minadv points file"):
        ResultStore(tmp_path / "r.csv", tmp_path / "adv.npz")
    assert (tmp_path / "adv.npz").read_text() == "not an npz"


def test_a_rerun_of_a_key_replaces_its_row_and_point(tmp_path):
    """Item 6: one row per (net, image, method, norm, options); another options string is another row."""
    with ResultStore(tmp_path / "r.csv", tmp_path / "adv.npz") as store:
        store.append("N1", 0, _result(value=0.5), np.zeros(4))
        store.append("N1", 1, _result(value=0.6), np.zeros(4))
        store.append("N1", 0, _result(value=0.4), np.zeros(4))
        store.append("N1", 0, _result(value=0.9), np.zeros(4), options="steps=0")
        store.append("N1", 1, _result(status=Status.ERROR, value=np.nan, point=False), np.zeros(4))
    frame = pd.read_csv(tmp_path / "r.csv", keep_default_na=False, na_values=["nan"])
    assert list(zip(frame.image, frame.options, frame.status, strict=True)) == [(0, "", "optimal"), (1, "", "error"),
                                                                   (0, "steps=0", "optimal")]
    assert frame.value.tolist()[::2] == [0.4, 0.9] and np.isnan(frame.value[1])
    with np.load(tmp_path / "adv.npz") as z:  # image 1's point went with its row
        got = {(int(i), str(o)): np.linalg.norm(xa)
               for i, o, xa in zip(z["image"], z["options"], z["x_adv"], strict=True)}
    assert got == pytest.approx({(0, ""): 0.4, (0, "steps=0"): 0.9})


def test_rewritten_files_keep_their_permissions(tmp_path):
    """The atomic rewrite makes a new file: it gets the old one's mode (a new .npz: the umask's)."""
    umask = os.umask(0o022)
    os.umask(umask)
    with ResultStore(tmp_path / "r.csv", tmp_path / "adv.npz") as store:
        store.append("N1", 0, _result(), np.zeros(4))
        assert (tmp_path / "adv.npz").stat().st_mode & 0o777 == 0o666 & ~umask
        os.chmod(tmp_path / "r.csv", 0o640)
        store.append("N1", 0, _result(value=0.4), np.zeros(4))  # replaces the row: a rewrite
    assert (tmp_path / "r.csv").stat().st_mode & 0o777 == 0o640


def test_an_older_file_reads_as_default_options_and_is_rewritten_to_the_current_layout(tmp_path):
    old = ("net,image,method,norm,status,value,lower,upper,gap,time_s,margin,pred,label,target,unstable,"
           "milp_solves,qp_solves,cut_rounds,nodes,regions,pruned,message\n"
           "N1,0,mip,2,optimal,0.5,0.5,0.5,0.0,1.5,0.0,3,3,1,7,0,0,0,11,0,0,scheme=bnb\n"
           "N1,0,mip,2,time_limit,0.7,0.1,0.7,0.8,300.2,0.0,3,3,1,7,0,0,0,11,0,0,scheme=bnb\n"  # an old --force
           "N1,1,mip,2,time_limit,0.7,0.1,0.7,0.8,300.2,0.0,3,3,1,7,0,0,0,11,0,0,scheme=bnb\n")
    (tmp_path / "r.csv").write_text(old)
    with ResultStore(tmp_path / "r.csv") as store:
        assert len(store) == 2 and store.frame.status.tolist() == ["time_limit", "time_limit"]
        assert store.done("N1", 1, "mip", "2", "", time_limit=300.0)  # ran 300.2 s: 300 is no more
        assert not store.done("N1", 1, "mip", "2", "", time_limit=600.0)
        store.append("N1", 2, _result(), np.zeros(4))
    frame = pd.read_csv(tmp_path / "r.csv", keep_default_na=False)
    assert list(frame.columns) == COLUMNS and list(frame.image) == [0, 1, 2]
    assert list(frame.message) == ["scheme=bnb"] * 2 + [""]


def test_a_time_limit_row_records_its_limit_and_is_redone_only_with_more_time(tmp_path):
    with ResultStore(tmp_path / "r.csv") as store:
        store.append("N1", 0, _result(status=Status.TIME_LIMIT), np.zeros(4), time_limit=10.0)
        store.append("N1", 1, _result(), np.zeros(4), time_limit=10.0)
        assert store.done("N1", 0, "mip", "2", "", time_limit=10.0)
        assert not store.done("N1", 0, "mip", "2", "", time_limit=20.0)
        assert store.done("N1", 1, "mip", "2", "", time_limit=20.0)  # optimal: nothing to gain


def test_a_row_without_its_point_is_not_done_when_points_are_kept(tmp_path):
    """Item 5: a row stored without --save-adv is redone when points are asked for."""
    with ResultStore(tmp_path / "r.csv") as store:
        store.append("N1", 0, _result(), np.zeros(4))
        store.append("N1", 1, _result("rlrqp", Status.FAILED, np.nan, point=False), np.zeros(4))
    with ResultStore(tmp_path / "r.csv", tmp_path / "adv.npz") as store:
        assert not store.done("N1", 0, "mip", "2")
        assert store.done("N1", 1, "rlrqp", "2")  # a failed attack has no point to keep


def test_a_second_writer_is_refused_while_the_first_holds_the_file(tmp_path):
    """Item 4: one writer at a time, a clear error for the second (another process)."""
    with held_by_another_process(tmp_path / "r.csv", tmp_path / "r.npz"):
        with pytest.raises(InputError, match="another minadv run holds .*r.csv"):
            ResultStore(tmp_path / "r.csv")
        with pytest.raises(InputError, match="another minadv run holds .*r.npz"):
            ResultStore(tmp_path / "other.csv", tmp_path / "r.npz")
    ResultStore(tmp_path / "r.csv").close()  # free again once the holder is done


def test_outputs_that_cannot_be_written_fail_at_once(tmp_path):
    """Item 9: an output folder that cannot be created or written is an InputError at open."""
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="cannot write"):
        ResultStore(tmp_path / "file" / "r.csv")
    with pytest.raises(InputError, match="cannot write"):
        ResultStore(tmp_path / "r.csv", tmp_path / "file" / "adv.npz")
    with pytest.raises(InputError, match="cannot write .*: Is a directory"):
        ResultStore(tmp_path)


# --- property tests: random kill points and two concurrent writers -----------------------------

KEYS = [("N1", i, m) for i in range(4) for m in ("mip", "cw")]


def _append(store, key, value):
    net, image, method = key
    point = value is not None
    status = (Status.OPTIMAL if method == "mip" else Status.FOUND) if point else Status.FAILED
    store.append(net, image, _result(method, status, value if point else np.nan, point), np.zeros(4))


def _value(key, writer=0):
    """Distinct per key and writer; None (no point) for one key in four, which depend on the writer."""
    net, image, method = key
    return None if (image + len(method) + writer) % 4 == 0 else 0.1 + image / 10 + len(method) / 100 + writer / 1000


def _check(csv, npz, expect_keys=None):
    """No key doubled in the CSV; each point in the .npz belongs to a row, its norm the row's value.
    Complete (expect_keys given): the CSV has exactly those keys and every row with a value its point."""
    frame = pd.read_csv(csv, keep_default_na=False, na_values=["", "nan"])
    keys = list(zip(frame.net, frame.image, frame.method, strict=True))
    assert len(set(keys)) == len(keys)
    points = {}
    if npz.exists():
        with np.load(npz) as z:
            points = {(str(n), int(i), str(m)): float(np.linalg.norm(xa - x))
                      for n, i, m, x, xa in zip(z["net"], z["image"], z["method"], z["x"], z["x_adv"], strict=True)}
    values = {k: v for k, v in zip(keys, frame.value, strict=True) if not np.isnan(v)}
    assert points == pytest.approx({k: values.get(k) for k in points})
    if expect_keys is not None:
        assert sorted(keys) == sorted(expect_keys) and points.keys() == values.keys()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, len(KEYS)), line=st.integers(0, len(KEYS)), shift=st.integers(-120, 1))
def test_truncating_the_csv_anywhere_loses_only_the_cut_row(tmp_path_factory, n, line, shift):
    """Cut the file at any byte: the rows wholly before the cut are kept (one ending exactly at the
    cut too), the rest dropped, nothing else touched; a resumed run completes it."""
    d = tmp_path_factory.mktemp("cut")
    csv, npz = d / "r.csv", d / "adv.npz"
    with ResultStore(csv, npz) as store:
        for key in KEYS[:n]:
            _append(store, key, _value(key))
    data = csv.read_bytes()
    newlines = [k for k, byte in enumerate(data) if byte == ord("\n")]
    at = min(max(newlines[min(line, n)] + shift, 0), len(data))  # shift 0: only a newline lost
    csv.write_bytes(data[:at])
    # what a repair must leave: every line wholly before the cut, and the one the cut ends
    # exactly (its newline lost); of a header cut short, nothing
    end = at + 1 if data[at : at + 1] == b"\n" else data.rfind(b"\n", 0, at) + 1
    with ResultStore(csv, npz) as store:
        assert csv.read_bytes() == data[:end]
        assert len(store) == max(data[:end].count(b"\n") - 1, 0)
        for key in KEYS[:n]:
            if not store.done(*key, "2"):
                _append(store, key, _value(key))
    _check(csv, npz, KEYS[:n])


def _writer(csv, npz, keys, writer, started=None, barrier=None, force=False):
    """Take the store (waiting while another process holds it), append the keys not done (all
    keys with force, replacing their rows)."""
    if started is not None:
        started.set()
    if barrier is not None:
        barrier.wait(10)  # both writers open the store at the same moment
    while True:
        try:
            store = ResultStore(csv, npz)
            break
        except InputError:
            time.sleep(0.005)
    with store:
        for key in keys:
            if force or not store.done(*key, "2"):
                _append(store, key, _value(key, writer))


@settings(max_examples=12, deadline=None)
@given(delay=st.floats(0, 0.06), force=st.booleans())
def test_a_writer_killed_at_any_moment_loses_nothing_finished(tmp_path_factory, delay, force):
    """Killed while appending (or, with force, while replacing rows written before, some of
    whose points go and some come): the rest run again gives every key once, with its point."""
    d = tmp_path_factory.mktemp("kill")
    csv, npz = d / "r.csv", d / "adv.npz"
    if force:
        _writer(csv, npz, KEYS, 1)
    ctx = mp.get_context("fork")
    started = ctx.Event()
    proc = ctx.Process(target=_writer, args=(csv, npz, KEYS, 0, started, None, force))
    proc.start()
    started.wait(10)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    ResultStore(csv, npz).close()  # what the next run reads (a torn last line repaired)
    if csv.exists() and csv.stat().st_size:
        _check(csv, npz)  # as the kill left them
    _writer(csv, npz, KEYS, 0)  # the same command again
    _check(csv, npz, KEYS)


@settings(max_examples=10, deadline=None)
@given(a=st.sets(st.sampled_from(KEYS), min_size=1), b=st.sets(st.sampled_from(KEYS), min_size=1))
def test_two_concurrent_writers_neither_lose_nor_double_a_row(tmp_path_factory, a, b):
    d = tmp_path_factory.mktemp("two")
    csv, npz = d / "r.csv", d / "adv.npz"
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(csv, npz, sorted(keys), w, None, barrier))
             for w, keys in enumerate((a, b))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    _check(csv, npz, a | b)
