import numpy as np
from minadv.experiments.store import COLUMNS, ResultStore
from minadv.verify import Counts, Result, Status


def _result(method="mip", status=Status.OPTIMAL, value=0.5, point=True):
    x_adv = np.full(4, 0.25) if point else None
    return Result(method, 2.0, status, 3, value=value, lower=value, upper=value, x_adv=x_adv, margin=0.0,
                  target=1, time_s=1.5, counts=Counts(unstable=7, nodes=11))


def test_rows_and_points_survive_a_restart(tmp_path):
    store = ResultStore(tmp_path / "r.csv", tmp_path / "adv.npz")
    store.append("N1", 0, _result(), np.zeros(4), label=3)
    store.append("N1", 1, _result("rlrqp", Status.FAILED, np.nan, point=False), np.zeros(4), label=2)
    again = ResultStore(tmp_path / "r.csv", tmp_path / "adv.npz")
    assert again.done() == {("N1", 0, "mip", "2"), ("N1", 1, "rlrqp", "2")}
    assert list(again.frame.columns) == COLUMNS
    row = again.frame.iloc[0]
    assert row.status == "optimal" and row.value == 0.5 and row.unstable == 7 and row.nodes == 11
    assert np.isnan(again.frame.iloc[1].value) and again.frame.iloc[1].status == "failed"
    with np.load(tmp_path / "adv.npz") as z:
        assert list(z["image"]) == [0]  # a failed attack stores no point
        assert z["x"].shape == (1, 4) and np.all(z["x_adv"] == 0.25) and list(z["pred"]) == [3]


def test_a_torn_last_line_is_dropped(tmp_path):
    store = ResultStore(tmp_path / "r.csv")
    store.append("N2", 5, _result(), np.zeros(4))
    with open(tmp_path / "r.csv", "a") as fh:
        fh.write("N2,6,mip,2,opti")  # a run killed mid-write
    again = ResultStore(tmp_path / "r.csv")
    assert again.done() == {("N2", 5, "mip", "2")}
    again.append("N2", 6, _result(), np.zeros(4))
    assert ResultStore(tmp_path / "r.csv").done() == {("N2", 5, "mip", "2"), ("N2", 6, "mip", "2")}
