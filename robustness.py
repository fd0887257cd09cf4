"""The robustness report: every method x {real, synthetic} over several originals and every forget
class, and how far the results spread (median and worst case), per setting.

    python robustness.py                              # 5 digits originals, fc over every class, partial over classes 3, 7
    python robustness.py --n_model 3 --settings fc --noise_types matched gaussian
Trains (or reuses) --n_model originals of the data set's recipe and their embeddings, runs every row
in this process (rows already in <root>/results/unlearn.csv are reused, so a rerun resumes), then
prints and writes <root>/tables/robustness.{md,csv} and one box plot per setting in
<root>/plots/robustness_<setting>.png, with the synthetic sets' distance to the real embeddings.
Any other option is a main.py option passed to every row (e.g. --no-mia, --epochs 50).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import opts
from core import paths
from core.runtime import REPO, Diverged, RunFailed, UserError, get_device, run_stage
from core.storage import atomic_write_text, write_csv
from data import get_info, list_datasets
from methods import list_methods, uses_forget_data
from models import list_models
from reporting import robustness as report
from stages import experiment
from stages.robustness import collect, distances

PARTIAL_CLASSES = (3, 7)  # partial is ~50x slower per row than fc: a stated subset of the classes


def get_parser() -> argparse.ArgumentParser:
    p = opts.Parser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                    formatter_class=opts.HelpFormatter,
                    epilog="Any other option is a main.py option passed to every row (see python main.py --help).")
    p.add_argument("--root", default=None, help="runs tree (default: $UNLEARN_ROOT or ./runs)")
    p.add_argument("--dataset", default="digits", choices=list_datasets(), help="data set of the originals")
    p.add_argument("--model", default="resnet18", choices=list_models(), help="backbone of the originals")
    p.add_argument("--n_model", type=int, default=5, help="originals m0..m<n-1>, trained with seeds 0..n-1")
    p.add_argument("--settings", nargs="+", default=["fc", "partial"], choices=["fc", "partial"],
                   help="tails to unlearn (the full setting is not part of the report)")
    p.add_argument("--partial_classes", nargs="+", type=int, default=list(PARTIAL_CLASSES),
                   help="forget classes of the partial setting (fc: every class of the data set)")
    p.add_argument("--methods", nargs="+", default=list_methods(), choices=list_methods(), help="methods to run")
    p.add_argument("--noise_types", nargs="+", default=["matched"], choices=opts.NOISES,
                   help="synthetic sources compared with the real one")
    p.add_argument("--cuda", type=int, default=None, help="CUDA device; -1 = CPU (default: cuda:0 if present, else CPU)")
    return p


def ensure_originals(a: argparse.Namespace) -> None:
    """Train the missing originals and embeddings (the stages skip what exists)."""
    common = ["--dataset", a.dataset, "--model", a.model, "--n_model", str(a.n_model), "--root", a.root]
    if a.cuda is not None:
        common += ["--cuda", str(a.cuda)]
    for script in ("training_original.py", "create_embeddings.py"):
        print(f"== {script} (m0..m{a.n_model - 1})", flush=True)
        if subprocess.run([sys.executable, script, *common], cwd=REPO).returncode != 0:
            raise UserError(f"{script} failed; see its output above")


def main() -> None:
    t0 = time.perf_counter()
    a, passthrough = get_parser().parse_known_args()
    a.root = str(Path(a.root or paths.default_root()).resolve())
    info = get_info(a.dataset)
    for c in a.partial_classes:
        if not 0 <= c < info.num_classes:
            raise UserError(f"--partial_classes {c}: {a.dataset} has classes 0..{info.num_classes - 1}")
    ensure_originals(a)
    runs = []
    for setting in a.settings:
        classes = info.forget_classes if setting == "fc" else a.partial_classes
        for source in ("real", "synthetic"):
            argv = ["--dataset", a.dataset, "--model", a.model, "--root", a.root, "--run_name", "robustness",
                    "--setting", setting, "--source", source, "--method", *a.methods,
                    "--forget_class", *map(str, classes), "--model_num", *map(str, range(a.n_model)), *passthrough]
            if source == "synthetic":
                argv += ["--noise_type", *a.noise_types]
            if a.cuda is not None:
                argv += ["--cuda", str(a.cuda)]
            runs += opts.parse_runs(argv)
    print(f"== {len(runs)} rows: {', '.join(a.settings)} x {len(a.methods)} methods x real + "
          f"{'/'.join(a.noise_types)} x {a.n_model} originals", flush=True)
    try:
        experiment.main(runs, get_device(a.cuda))
    except (RunFailed, Diverged) as e:  # failed rows are reported; diverged rows keep their last good
        print(f"note: {e}", file=sys.stderr)  # weights and a row (stop_reason): both make the table
    rows = collect(runs)
    uses_forget = {m for m in a.methods if uses_forget_data(m)}
    t = report.table(rows, uses_forget, a.methods)
    md = report.to_markdown(t)
    dist = distances(runs)
    if len(dist):
        md += "\n**Synthetic vs real train embeddings** (median over classes, then over originals; see " \
              "engine/synthetic.py distance_to_real)\n\n| setting | noise | mean ratio | std ratio | MMD | NN ratio |\n" \
              "|---|---|---|---|---|---|\n"
        for (setting, noise), g in dist.groupby(["setting", "noise"], sort=False):
            med = g[["mean_ratio", "std_ratio", "mmd", "nn_ratio"]].median()
            md += f"| {setting} | {noise} | {med.mean_ratio:.2f} | {med.std_ratio:.2f} | {med.mmd:.3f} | {med.nn_ratio:.2f} |\n"
    print(md)
    atomic_write_text(paths.table_file(a.root, "robustness", "md"), md)
    write_csv(paths.table_file(a.root, "robustness", "csv"), t.to_dict("records"), list(t.columns))
    from reporting.plots import robustness_boxes
    for setting in a.settings:
        f = robustness_boxes(rows, setting, paths.plot_file(a.root, f"robustness_{setting}"))
        if f:
            print(f"-> {f}")
    print(f"-> {paths.table_file(a.root, 'robustness', 'md')}\nrobustness report: {len(rows)} rows in "
          f"{time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    run_stage(main)
