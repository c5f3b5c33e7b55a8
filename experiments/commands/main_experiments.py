"""`minadv reproduce table2` and `minadv reproduce table3`: the paper's main experiments on MNIST.

Table 2: on the networks 1x1024, 5x1024 and 10x1024, plain and adversarially trained (`minadv
train NAME` writes them to models/NAME.pt; --models names another folder, --nets takes names or
model files), DeepFool, rLR-QP and CW (`cw-torch`, Foolbox's CW in batched torch) on the first
test images, one row per (net, image, method) in OUT/table2/results.csv and the points in
OUT/table2/adv_<net>_<method>.npz (resumable: rows there are kept unless --force); then
OUT/table2.{md,csv,tex} and OUT/figures/table2_ratios.{png,pdf}. rLR-QP runs with the paper's
settings: every target class on one hidden layer, only the warm start's class on deeper networks.

Table 3: on one network (default 1x1024-at), the Table 2 rows of its images (run here if missing),
then, for the images where CW / rLR-QP < 0.95, applications II-VII of rLR-QP, each from the last
one's point and restricted to its class (rows `rlrqp` with options iterations=k in the same
results file: one run of 7 applications gives all six, `RLRQP.applications`); DeepFool + binary
search is rLR-QP's warm start, recomputed (seconds). Writes OUT/table3.{md,csv,tex}.

A run with other nets, images or methods than the defaults writes its tables and figures to
OUT/partial/, never over those of the default run. --tables-only computes nothing: the tables
from the rows already stored for the asked nets, images and methods (e.g. CW rows made on a GPU
machine beside rLR-QP rows made here; the table's `images` column counts what each has).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from minadv.attacks import ATTACKS, RLRQP, check_device, warm_start
from minadv.verify import InputError, load_network

from ..args import format_images, parse_images
from ..data import mnist
from ..figures import ratio_figure
from ..machine import machine
from ..runner import open_executor, options_key, run_many
from ..scale_models import SCALE_NAMES
from ..store import Interrupted, ResultStore, check_writable
from ..table1 import label as method_label
from ..table2 import REFERENCE, TABLE3_SELECT, table2, table3, table3_latex, table3_markdown, to_latex, to_markdown

NETS2, NET3 = tuple(SCALE_NAMES), "1x1024-at"
IMAGES, QUICK_IMAGES = "0:100", "0:5"
METHODS = ("deepfool", REFERENCE, "cw-torch")
APPLICATIONS = 7  # Table 3: I-VII
# --quick: CW with 5 x 1000 steps instead of the paper's 20 x 10000 (seconds per image on N1)
QUICK_OPTIONS = {"cw-torch": {"binary_search_steps": 5, "steps": 1000}}


def resolve(net: str, models: Path, *, must_exist: bool = True) -> str:
    """A model file for `net`: a scale name (1x1024, ...-at) is models/<name>.pt, which must exist
    (unless not must_exist: Table 2's --tables-only reads the stored rows and cards); anything else
    is a model file path."""
    path = models / f"{net}.pt" if net in SCALE_NAMES else Path(net)
    if must_exist and not path.is_file():
        hint = f"; train it with `minadv train {net} --out {models}`" if net in SCALE_NAMES else ""
        raise InputError(f"{path}: no such model file{hint}")
    return str(path)


ON_DEVICE = (REFERENCE, "cw-torch")  # the attacks that take --device


@functools.cache
def _hidden_layers(path: str) -> int:
    """The network's hidden layers, read once per file (10x1024 is 41 MB)."""
    return len(load_network(path).hidden_sizes)


def _kept_hidden_layers(out: Path, label: str, path: str) -> int:
    """The hidden layers of a network whose model file is absent, from the card its rows were kept
    with (`record_networks`): what lets --tables-only work on a clone without the trained networks."""
    kept = out / "networks" / f"{label}.json"
    card = json.loads(kept.read_text()) if kept.is_file() else {}
    if "architecture" not in card:
        raise InputError(f"{path}: no such model file, and no card of {label} with its architecture in {kept.parent}")
    return len(card["architecture"].split("-")) - 2


def method_options(method: str, hidden_layers: int, quick: bool, device: str | None = None) -> dict:
    """The paper's settings: rLR-QP on every target class for one hidden layer, on the warm start's
    class for deeper networks (Section 4); --quick presets; the device of rLR-QP's working-set
    solver and of cw-torch (a row computed on a GPU keeps `device` in its options key)."""
    options = dict(QUICK_OPTIONS.get(method, {})) if quick else {}
    if device is not None and method in ON_DEVICE:
        options["device"] = device
    if method == REFERENCE and hidden_layers > 1:
        options["targets"] = "warm"
    return options


def record_networks(out: Path, nets: dict[str, str]) -> None:
    """Tie the rows in `out` to the exact networks that made them: OUT/networks/<label>.json holds the
    card of each network's first run there (the card beside the model file, `minadv train`'s, or just
    the weights' sha256), and a later run whose model file has another sha256 is refused, since its
    rows would be mixed with the old ones under the same label. Training is not bit-reproducible
    across CPUs (a 1x1024 retrained on another machine: 97.49% instead of 97.55%, other weights),
    so a retrained network is a different network."""
    folder = out / "networks"
    for label, path in nets.items():
        if not Path(path).is_file():  # --tables-only without the model file: the kept card stands
            continue
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        kept = folder / f"{label}.json"
        if kept.is_file():
            was = json.loads(kept.read_text()).get("weights_sha256")
            if was != digest:
                raise InputError(f"{out} holds rows of another {label} (weights sha256 {str(was)[:12]}..., "
                                 f"{path}: {digest[:12]}...); give another --out for this network")
            continue
        beside = Path(path).with_suffix(".json")
        card = json.loads(beside.read_text()) if beside.is_file() else {}
        card["weights_sha256"] = digest
        folder.mkdir(parents=True, exist_ok=True)
        kept.write_text(json.dumps(card, indent=2) + "\n")


def _paths(folder: Path, name: str) -> list[Path]:
    return [folder / f"{name}.md", folder / f"{name}.csv", folder / f"{name}.tex"]


def _write(paths: list[Path], table: pd.DataFrame, markdown: str, latex: str) -> list[Path]:
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(markdown)
    table.to_csv(paths[1], index=False)
    paths[2].write_text(latex)
    return paths


def _rows(args, out: Path, nets: dict[str, str], images: list[int], methods: list[str], executor) -> pd.DataFrame:
    """Run every method on every net and image (rows kept, not recomputed; nothing with
    --tables-only); the rows of this setting (each (net, method)'s options) as a frame."""
    keys = {}
    record_networks(out, nets)
    for label, path in nets.items():
        depth = _hidden_layers(path) if Path(path).is_file() else _kept_hidden_layers(out, label, path)
        for method in methods:
            options = method_options(method, depth, args.quick, args.device)
            keys[label, method] = options_key(method, options)
            if not args.tables_only:
                with ResultStore(out / "results.csv", out / f"adv_{label}_{method}.npz") as store:
                    run_many(path, images, method, "2", store, options, force=args.force, net_label=label,
                             executor=executor)
    with ResultStore(out / "results.csv") as store:
        frame = store.frame
    frame = frame[frame.image.isin(images) & (frame.norm == "2")]
    ours = [keys.get((n, m)) == o for n, m, o in zip(frame.net, frame.method, frame.options, strict=True)]
    if args.tables_only and not any(ours):
        raise InputError(f"--tables-only: {out / 'results.csv'} holds no rows of these networks, images and "
                         "methods; run without --tables-only first")
    return frame[ours]


def _setting(args, images: list[int], methods) -> str:
    cw = "CW with --quick presets (5 x 1000 steps); " if args.quick else "CW with the paper's settings; "
    return (f"test images {format_images(images)} (the paper: 1000 / 700 / 500 for 1 / 5 / 10 hidden layers); "
            f"{cw if 'cw-torch' in methods else ''}rLR-QP with the paper's settings; machine: {machine()}")


def run(args) -> int:
    """Dispatch `minadv reproduce table2|table3`."""
    if args.time_limit is not None:
        raise InputError(f"--time-limit is for table1's exact solver, not {args.table}")
    if args.norm != "2":
        raise InputError(f"--norm is for table1; {args.table} is L2, as in the paper")
    if args.device is not None:
        try:
            check_device(args.device)
        except ValueError as err:
            raise InputError(f"--device: {err}") from None
    return run_table2(args) if args.table == "table2" else run_table3(args)


def _common(args, default_nets: tuple[str, ...]):
    nets_asked = args.nets or list(default_nets)
    must_exist = not (args.tables_only and args.table == "table2")
    nets = {Path(n).stem: resolve(n, args.models, must_exist=must_exist) for n in dict.fromkeys(nets_asked)}
    default_images = parse_images(QUICK_IMAGES if args.quick else IMAGES)
    images = list(dict.fromkeys(args.images or default_images))
    out = args.out or Path("results/quick" if args.quick else "results")
    partial = sorted(nets_asked) != sorted(default_nets) or images != default_images
    return nets, images, out, partial


def run_table2(args) -> int:
    nets, images, out, partial = _common(args, NETS2)
    methods = list(dict.fromkeys(args.methods or METHODS))
    unknown = [m for m in methods if m not in ATTACKS]
    if unknown or REFERENCE not in methods:
        raise InputError(f"table2 compares attacks with {REFERENCE}, which must be among --methods; "
                         f"unknown: {', '.join(unknown) or 'none'}")
    partial = partial or sorted(methods) != sorted(METHODS)
    tables = out / "partial" if partial else out
    paths = _paths(tables, "table2")
    start = time.perf_counter()
    with ResultStore(out / "table2" / "results.csv"):  # one run at a time on this store, held to the end
        check_writable(*paths, *figure_files(tables / "figures"))
        with open_executor(args.executor, args.jobs, args.address) as executor:
            frame = _rows(args, out / "table2", nets, images, methods, executor)
    table = table2(frame, compared=[m for m in methods if m != REFERENCE])
    rows = frame.groupby(["net", "method"]).size()
    counts = "; ".join(f"{n}: " + ", ".join(f"{method_label(m)} {rows.get((n, m), 0)}" for m in methods) for n in nets)
    setting = _setting(args, images, methods)
    note = f"ratio = ||delta_attack||_2 / ||delta_rLR-QP||_2; {setting}; rows per network: {counts}."
    written = _write(paths, table, to_markdown(table, note), to_latex(table))
    written += ratio_figure(ratios2(frame), list(nets), tables / "figures", "table2_ratios",
                            r"$\|\delta_{\mathrm{attack}}\|_2 \,/\, \|\delta_{\mathrm{rLR\text{-}QP}}\|_2$")
    print(f"\n{to_markdown(table, note)}\nthis run: {time.perf_counter() - start:.0f} s wall time; "
          f"wrote {', '.join(map(str, written))}")
    return 0


def figure_files(folder: Path) -> list[Path]:
    return [folder / "table2_ratios.png", folder / "table2_ratios.pdf"]


def ratios2(frame: pd.DataFrame) -> pd.DataFrame:
    """(net, image, method, ratio) with ratio = the attack's norm / rLR-QP's on the same image."""
    ref = frame[frame.method == REFERENCE][["net", "image", "value"]].rename(columns={"value": "reference"})
    out = frame[(frame.method != REFERENCE) & frame.value.notna()].merge(ref.dropna(), on=["net", "image"])
    return out.assign(ratio=out.value / out.reference)


def run_table3(args) -> int:
    nets, images, out, partial = _common(args, (NET3,))
    if len(nets) != 1:
        raise InputError("table3 runs on one network (default 1x1024-at)")
    if args.methods:
        raise InputError("table3 runs DeepFool, rLR-QP and CW; --methods is for table2")
    (label, path), = nets.items()
    tables = out / "partial" if partial else out
    paths = _paths(tables, "table3")
    start = time.perf_counter()
    with ResultStore(out / "table2" / "results.csv"):
        check_writable(*paths)
        with open_executor(args.executor, args.jobs, args.address) as executor:
            frame = _rows(args, out / "table2", nets, images, list(METHODS), executor)
        values = frame.pivot(index="image", columns="method", values="value")
        selected = [i for i in values.index if values.loc[i, "cw-torch"] / values.loc[i, REFERENCE] < TABLE3_SELECT]
        steps = _applications(args, out / "table2", label, path, selected)
    table = table3(steps)
    note = (f"C = ||delta_CW||_2 / ||delta_step||_2 on the {len(selected)} of {len(values)} images of {label} "
            f"where CW / rLR-QP < {TABLE3_SELECT} after the first application (the paper: 79 of 1000); "
            f"{_setting(args, images, METHODS)}.")
    written = _write(paths, table, table3_markdown(table, note), table3_latex(table))
    print(f"\n{table3_markdown(table, note)}\nthis run: {time.perf_counter() - start:.0f} s wall time; "
          f"wrote {', '.join(map(str, written))}")
    return 0


def _applications(args, out: Path, label: str, path: str, images: list[int]) -> pd.DataFrame:
    """Rows (image, step, value, cw) of Table 3 for `images`: DeepFool, DeepFool + bisection (the warm
    start, recomputed), rLR-QP applications 1..7 (stored as rlrqp rows with iterations=k; an image
    whose seventh is stored is not run again)."""
    net, split = load_network(path), mnist("test")
    depth = _hidden_layers(path)
    base = method_options(REFERENCE, depth, args.quick, args.device)
    keys = {k: options_key(REFERENCE, base | ({"iterations": k} if k > 1 else {})) for k in range(1, APPLICATIONS + 1)}
    attack = RLRQP(**base, iterations=APPLICATIONS)
    with ResultStore(out / "results.csv", out / f"adv_{label}_{REFERENCE}.npz") as store:
        done = {i for i in images if store.done(label, i, REFERENCE, "2", keys[APPLICATIONS])}
        todo = [] if args.tables_only else [i for i in images if args.force or i not in done]
        try:
            for image in tqdm(todo, desc=f"{label} rLR-QP applications II-VII", unit="img"):
                x = split.x(image)
                c = net.predict(x)
                t0 = time.perf_counter()
                for k, cand in enumerate(attack.applications(net, x, c), start=1):
                    if k > 1:  # the first is Table 2's row
                        result = attack.verified(net, x, c, cand, time.perf_counter() - t0)
                        store.append(label, image, result, x, label=int(split.labels[image]), options=keys[k])
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; {len(store)} rows kept in {store.csv_path}; the same command resumes") \
                from None
        frame = store.frame
    frame = frame[(frame.net == label) & frame.image.isin(images) & (frame.norm == "2")]
    rows = []
    key = {m: options_key(m, method_options(m, depth, args.quick, args.device)) for m in ("cw-torch", "deepfool")}
    cw = frame[(frame.method == "cw-torch") & (frame.options == key["cw-torch"])].set_index("image").value
    for image in images:
        x = split.x(image)
        c = net.predict(x)
        df = frame[(frame.method == "deepfool") & (frame.image == image) & (frame.options == key["deepfool"])].value
        warm = warm_start(net, x, c)
        rows += [(image, "deepfool", df.iloc[0] if len(df) else np.nan),
                 (image, "deepfool+bisection", np.nan if warm is None else float(np.linalg.norm(warm - x)))]
        for k in range(1, APPLICATIONS + 1):
            v = frame[(frame.method == REFERENCE) & (frame.image == image) & (frame.options == keys[k])].value
            rows.append((image, f"rlrqp-{k}", v.iloc[0] if len(v) else np.nan))
    steps = pd.DataFrame(rows, columns=["image", "step", "value"])
    return steps.assign(cw=steps.image.map(cw))
