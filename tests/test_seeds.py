"""The seeds' recipes as written: entry-point defaults, training recipes and pretrained originals,
SCAR's class statistics and surrogates, every job-script knob, an Oracle beside every row, help that
tells the truth, and every job-script family end to end on digits."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import FORGET_CLASS, NO_REPR, REPO, run_stage
from fakedata import write_cifar

import opts
from core import paths
from core.feeds import TensorFeed
from core.runtime import UserError
from data import describe_recipe, get_info, make_transform
from methods import get_method, real_data_needs
from methods.base import Context
from models.cutnet import Tail
from reporting import results, tables
from stages import experiment
from stages.pipeline import forget_sets

ENV = {**os.environ, "UNLEARN_PROGRESS": "0", "OMP_NUM_THREADS": "1", "UNLEARN_PYTHON": sys.executable}
OFFLINE = {v: "http://127.0.0.1:9" for v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}


def one_line_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), p.stderr
    for n in needles:
        assert n in err[0], (n, err[0])
    return err[0]


def bare(script: str, cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A seed command typed as written: `python <script>` from a folder with no data and no runs tree."""
    e = {k: v for k, v in ENV.items() if k not in ("UNLEARN_ROOT", "UNLEARN_DATA")}
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True, text=True,
                          env={**e, **(env or {})}, timeout=300)


# --- 5 + 7: entry-point defaults, missing data, help ----------------------------------------------------------

def test_seed_commands_without_flags_name_what_is_missing(tmp_path):
    """Seed A's `python create_embeddings.py` and `python training_original.py` work on CIFAR-10 with
    ResNet-18, seed B's `python main_def.py` on CIFAR-100; with nothing there each stops with one line
    naming the path, how to get it, and writes nothing."""
    p = bare("create_embeddings.py", tmp_path)
    one_line_error(p, "runs/cifar10/resnet18/original/m0.pt", "python training_original.py --dataset cifar10 --model resnet18")
    p = bare("training_original.py", tmp_path)
    assert "recipe seedA for cifar10 resnet18: ImageNet-pretrained, 300 epochs" in p.stdout
    one_line_error(p, "CIFAR-10 not found", "datasets/cifar-10-batches-py", "cifar-10-python.tar.gz", "--dataset digits")
    p = bare("main_def.py", tmp_path)
    one_line_error(p, "SCAR distils on cifar10 train images", "datasets/cifar-10-batches-py (not found)",
                   "--surrogate_dataset noise")
    assert not (tmp_path / "runs").exists()


def test_entry_point_defaults_and_help(capsys):
    a = opts.parse_args([], stage="train", defaults=opts.SEED_A_STAGE_DEFAULTS)
    assert (a.dataset, a.model) == ("cifar10", "resnet18")
    b = opts.parse_args(["--surrogate_dataset", "noise"], defaults=opts.SEED_B_MAIN_DEFAULTS)
    assert (b.dataset, b.setting, b.method, b.bsize, b.lr, b.epochs, b.scheduler, b.momentum, b.temperature) == \
        ("cifar100", "full", "SCAR", 1024, 0.0005, 30, [25, 40, "gamma=0.5"], 0.9, 1.0)
    assert opts.parse_args([]).dataset == "digits"  # main.py keeps the embedded default
    c = opts.parse_args([], stage="collect")  # the filters of collect_results.py: unset = every value
    assert all(getattr(c, k) is None for k in opts.COLLECT_FILTERS)
    for stage, defaults, needles in [
            ("main", None, ["unlearning defaults (engine/hparams.py", "(default: retain with --source real"]),
            ("main", opts.SEED_B_MAIN_DEFAULTS, ["(default: cifar100)", "(default: full)", "(default: 1024)"]),
            ("train", opts.SEED_A_STAGE_DEFAULTS, ["(default: cifar10)", "cifar10 seedA*: ImageNet-pretrained, 300 epochs",
                                                   "cifar100 seedB: ImageNet-pretrained, 50 epochs"])]:
        with pytest.raises(SystemExit):
            opts.parse_args(["--help"], stage=stage, defaults=defaults)
        out = capsys.readouterr().out
        assert "default: None" not in out
        for n in needles:
            assert n in out.replace("\n" + " " * 24, " "), n


# --- 3: recipes and pretrained originals ----------------------------------------------------------------------

def test_recipes_per_dataset():
    a = opts.parse_args(["--dataset", "cifar10"], stage="train")
    assert (a.recipe, a.pretrained, a.epochs, a.patience, a.lr, a.momentum, a.wd, a.label_smoothing, a.bsize) == \
        ("seedA", True, 300, 30, 0.1, 0.0, 5e-5, 0.4, 256)
    assert a.augment == {"crop": 0.125, "rotate": 0} and a.stem == "imagenet" and a.img_size == 32
    b = opts.parse_args(["--dataset", "cifar100", "--recipe", "seedB", "--no-pretrained"], stage="oracle")
    assert (b.recipe, b.pretrained, b.epochs, b.patience, b.stem) == ("seedB", False, 50, None, "small")
    t = opts.parse_args(["--dataset", "TinyImageNet"], stage="train")
    assert t.scheduler == list(range(25, 300, 25)) and t.augment == {"crop": 0.0625, "rotate": 15}
    assert "RandomRotation" in repr(make_transform(get_info("TinyImageNet"), 64, True, t.augment))
    v = opts.parse_args(["--dataset", "cifar10", "--model", "ViT"], stage="train")
    assert v.img_size == 224 and v.augment["crop"] == 0
    d = opts.parse_args(["--dataset", "digits"], stage="train")
    assert (d.recipe, d.pretrained, d.epochs) == ("digits", False, 6)
    assert "flip" in describe_recipe(get_info("cifar10")) and "flip" not in describe_recipe(get_info("digits"))
    with pytest.raises(SystemExit):
        opts.parse_args(["--dataset", "digits", "--recipe", "seedB"], stage="train")
    m = opts.parse_args(["--dataset", "digits", "--recipe", "seedA"])  # main.py: no recipe; warned, not recorded
    assert m.recipe is None and "recipe" not in experiment.run_config(m, 0, forget_sets(m)[0])


def test_pretrained_weights_load_from_the_torch_hub_cache(tmp_path, monkeypatch):
    """--pretrained (the CIFAR recipes' default) reads torchvision's file from $TORCH_HOME/hub/checkpoints,
    offline: a small fake ResNet-18 file (every tensor one broadcast constant) is what the network starts
    from; without the file, one line names the folder, the URL and --no-pretrained."""
    import torchvision

    from stages.pipeline import new_model
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    args = opts.parse_args(["--dataset", "cifar10"], stage="train")
    with pytest.raises(UserError) as e:
        new_model(args)
    msg = str(e.value)
    for n in (f"{tmp_path}/hub/checkpoints", "resnet18-f37072fd.pth", "https://download.pytorch.org/models/",
              "--no-pretrained", "the seedA recipe of cifar10 starts from ImageNet weights"):
        assert n in msg, n
    ref = torchvision.models.resnet18().state_dict()
    fake = {k: torch.full((1,), 0.25).expand(v.shape) if v.is_floating_point() else v for k, v in ref.items()}
    f = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    f.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fake, f)
    assert f.stat().st_size < 200_000
    net = new_model(args)
    conv1, layer1 = net.trunk[0].weight, net.trunk[4][0].conv1.weight
    assert bool((conv1 == 0.25).all()) and bool((layer1 == 0.25).all())
    assert not bool((net.head[1].weight == 0.25).all())  # a new head for the data set's classes


# --- 1 + 2: SCAR's class statistics and surrogates -------------------------------------------------------------

def test_scar_stats_defaults_and_real_data():
    full = opts.parse_args(["--method", "SCAR", "--setting", "full"])
    syn = opts.parse_args(["--method", "SCAR", "--source", "synthetic"])
    real = opts.parse_args(["--method", "SCAR_self"])
    ft = opts.parse_args(["--method", "FT", "--scar_stats", "retain"])
    assert (full.scar_stats, syn.scar_stats, real.scar_stats, ft.scar_stats) == ("retain", "surrogate", "retain", None)
    fs = forget_sets(ft)[0]
    assert "scar_stats" not in experiment.run_config(ft, 0, fs)
    assert experiment.run_config(full, 0, fs)["scar_stats"] == "retain"
    assert real_data_needs("SCAR", "full", "real", "sample_images", "retain") == (True, True)
    assert real_data_needs("SCAR", "full", "real", "sample_images", "surrogate") == (False, True)
    assert real_data_needs("SCAR", "fc", "synthetic", None, "retain") == (True, False)
    assert real_data_needs("SCAR", "fc", "synthetic", None, "surrogate") == (False, False)


def test_scar_statistics_from_the_real_retain_set():
    """With a `stats` stream SCAR groups the real retain features by their true labels; without it,
    the surrogates by the original's prediction (here: everything predicted as class 1)."""
    head = torch.nn.Linear(2, 3)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    teacher = SimpleNamespace(features=torch.nn.Identity(), head=head)
    hp = SimpleNamespace(delta=1.0, gamma1=3.0, gamma2=3.0)
    ctx = Context(3, (2,), hp, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20, 2, generator=g) * 0.1 + torch.tensor(c) for c in ([1.0, 0.0], [0.0, 1.0])])
    y = torch.tensor([0] * 20 + [1] * 20)
    forget = TensorFeed(torch.randn(5, 2, generator=g).abs() + 1, torch.full((5,), 2))
    m = get_method("SCAR")(None, teacher, ctx)
    m.prepare(TensorFeed(x, y), forget, stats=TensorFeed(x, y))
    assert sorted(m.means) == [0, 1]
    assert torch.allclose(m.means[0], torch.tensor([1.0, 0.0]), atol=0.1)
    m.prepare(TensorFeed(x, torch.full((40,), -1)), forget)
    assert sorted(m.means) == [1]


def test_scar_fc_forget_loss_is_the_pull_computed_once():
    """fc: the features are the input, so each forget sample's pull is a constant. Computed once in
    `prepare`, the forget loss must equal the per-step Mahalanobis formula and carry no gradient; a tail
    whose body trains (partial, full) keeps the per-step formula."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(60, 4, generator=g), torch.arange(60) % 3
    forget, stats = TensorFeed(x[y == 2], y[y == 2]), TensorFeed(x[y != 2], y[y != 2])
    ctx = Context(3, (2,), SimpleNamespace(delta=0.5, gamma1=3.0, gamma2=3.0), torch.device("cpu"))
    fc = Tail(torch.nn.Identity(), torch.nn.Sequential(torch.nn.Linear(4, 3)))
    m = get_method("SCAR")(fc, fc, ctx)
    m.prepare(stats, forget, stats)
    idx = torch.tensor([0, 3, 5, 7, 19])
    once = m.forget_loss(forget.x[idx], idx)
    m.fixed_pull = None
    per_step = m.forget_loss(forget.x[idx], idx)
    assert once.item() > 0 and not once.requires_grad
    assert torch.allclose(once, per_step, rtol=1e-5), (once, per_step)
    body = Tail(torch.nn.Linear(4, 4), fc.head)
    trained = get_method("SCAR")(body, body, ctx)
    trained.prepare(stats, forget, stats)
    assert trained.moves_features and trained.fixed_pull is None


def test_scar_class_statistics_are_reused_by_the_rows_of_a_group(monkeypatch):
    """Rows of one group (another forget class, the same statistics rows) share each class's precision
    matrix, bit for bit what a row alone computes; the shared store keeps to its byte budget."""
    import methods.scar as scar
    calls, shrunk = [], scar.shrunk_precision
    monkeypatch.setattr(scar, "shrunk_precision", lambda z, g1, g2: calls.append(len(z)) or shrunk(z, g1, g2))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(90, 4, generator=g), torch.arange(90) % 3
    fc = Tail(torch.nn.Identity(), torch.nn.Sequential(torch.nn.Linear(4, 3)))
    hp = SimpleNamespace(delta=0.5, gamma1=3.0, gamma2=3.0)

    def row(c: int, shared: dict) -> Context:
        ctx = Context(3, (c,), hp, torch.device("cpu"), shared=shared)
        stats = TensorFeed(x[y != c], y[y != c])
        get_method("SCAR")(fc, fc, ctx).prepare(stats, TensorFeed(x[y == c], y[y == c]), stats)
        return ctx

    group = {}
    row(2, group)  # classes 0 and 1
    row(1, group)  # classes 0 (the same 30 rows: reused) and 2
    assert len(calls) == 3 and len(group["SCAR precision"]) == 3
    alone = row(1, {}).shared["SCAR precision"]
    assert len(calls) == 5 and alone.keys() <= group["SCAR precision"].keys()
    assert all(torch.equal(v, group["SCAR precision"][k]) for k, v in alone.items())
    tiny = Context(3, (1,), hp, torch.device("cpu"))
    for i in range(4):
        tiny.reuse("space", (i,), lambda: torch.zeros(10), max_bytes=100)  # 40 bytes each: two fit
    assert list(tiny.shared["space"]) == [(2,), (3,)]


def test_missing_surrogate_data_is_an_error_and_noise_rows_say_so(tmp_path):
    from engine.surrogates import default_surrogate
    with pytest.raises(UserError, match=r"cifar-100-python \(not found\).*--surrogate_dataset noise"):
        default_surrogate("cifar10", str(tmp_path))
    write_cifar(tmp_path, "cifar100", per_batch=2, n_test=2)
    assert default_surrogate("cifar10", str(tmp_path)) == "cifar100"
    row = {"source": "real", "noise_type": "", "setting": "full", "config": json.dumps({"surrogate_dataset": "noise"})}
    assert tables.source_label(row) == "real + noise surrogates"


# --- 4 + 6 + 8: job scripts end to end, an Oracle beside every row --------------------------------------------

@pytest.fixture(scope="module")
def jobs_root(digits_root, tmp_path_factory) -> Path:
    """A private copy of the session runs tree (checkpoints linked, result CSVs copied)."""
    dst = tmp_path_factory.mktemp("seeds") / "runs"

    def link_or_copy(s: str, d: str) -> None:
        (shutil.copy2 if Path(s).parent.name == "results" else os.link)(s, d)
    shutil.copytree(digits_root, dst, copy_function=link_or_copy)
    return dst


def job(root: Path, script: str, *argv: str, extra: str = "--no-mia") -> list[dict]:
    """Run bash/<script> with the seed's positional arguments; the unlearning rows it added."""
    f = paths.results_csv(root, "unlearn")
    before = len(results.read_rows(f)) if f.exists() else 0
    p = subprocess.run(["bash", f"bash/{script}", *argv], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={**ENV, "UNLEARN_ROOT": str(root), "UNLEARN_ARGS": extra})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return results.read_rows(f)[before:]


def test_every_job_script_family_on_digits(jobs_root):
    """single and multi class, real and synthetic, fc and partial, plus the multi-class Oracle; every
    positional argument lands in the rows, and each row says whether its Oracle was found."""
    quick = " ".join(("--no-mia", *NO_REPR))
    single = f"--forget_class {FORGET_CLASS} {quick}"
    run_stage("training_oracle.py", "--dataset", "digits", "--forget_mode", "multi", "--num_forget_classes", "2",
              "--epochs", "1", "--bsize", "256", "--no-mia", root=jobs_root)
    (oracle,) = [r for r in results.read_rows(paths.results_csv(jobs_root, "oracle")) if r["forget_tag"] == "multi2"]
    assert oracle["forget_classes"] and len(oracle["forget_classes"].split()) == 2
    got = {}
    for script, argv, extra in [
            ("job_real_digits.sh", "FT 0.02 1 50 -1 2 resnet18", single),
            ("job_synth_digits.sh", "NG 0.01 1 20 -1 2 resnet18 uniform", single),
            ("job_part_real_digits.sh", "NG 0.005 1 30 -1 1 resnet18", single),
            ("job_part_synth_digits.sh", "RL 0.005 1 20 -1 1 resnet18", single),
            ("job_multiclass_real_digits.sh", "DELETE 0.01 1 40 -1 2 resnet18 2", quick),
            ("job_multiclass_synth_digits.sh", "NG 0.01 1 20 -1 2 resnet18 gaussian 2", quick)]:
        rows = job(jobs_root, script, *argv.split(), extra=extra)
        assert len(rows) == 1, (script, argv, len(rows))
        got[(script, argv)] = r = rows[0]
        method, lr, _, spc, _, epochs, model, *rest = argv.split()
        cfg = json.loads(r["config"])
        assert (r["method"], float(r["lr"]), r["epochs"], r["model"], r["samples_per_class"]) == \
            (method, float(lr), epochs, model, spc)
        assert cfg["samples_per_class"] == int(spc) and r["run_name"] == script[:-3]
        if "synth" in script:
            assert r["source"] == "synthetic" and r["noise_type"] == (rest[0] if rest else "gaussian")
        assert r["setting"] == ("partial" if "part" in script else "fc")
        tag = "multi2" if "multiclass" in script else f"c{FORGET_CLASS}"
        assert r["forget_tag"] == tag and r["oracle_status"] == "found", (script, r["oracle_status"])


def test_real_samples_per_class_subsamples_the_training_source(jobs_root):
    args = opts.parse_args(["--root", str(jobs_root), "--forget_class", str(FORGET_CLASS), "--samples_per_class", "7"])
    group = experiment.Group(args, 0, torch.device("cpu"))
    inp = group.inputs(args)
    counts = torch.bincount(inp.source.targets, minlength=10)
    assert counts.tolist() == [7] * 10 and len(inp.evals["train"]) > 70  # evaluation keeps the whole split
    feeds = experiment.streams(args, inp, forget_sets(args)[0], get_method("FT"), torch.device("cpu"))
    assert (len(feeds["retain"]), len(feeds["forget"])) == (63, 7)
    unset = opts.parse_args(["--forget_class", str(FORGET_CLASS)])
    assert "samples_per_class" not in experiment.run_config(unset, 0, forget_sets(unset)[0])  # ids as before
    ids = {results.run_id(experiment.run_config(a, 0, forget_sets(a)[0]))
           for k in ("50", "60") for a in [opts.parse_args(["--forget_class", "3", "--samples_per_class", k])]}
    assert len(ids) == 2  # an ablation over SAMPLES_PER_CLASS is not skipped as a duplicate


def test_missing_oracle_column_and_collect_warning(jobs_root):
    """A row whose Oracle does not exist says so; collect_results.py prints one warning line with the
    training_oracle.py command that trains exactly the missing Oracles."""
    rows = job(jobs_root, "job_real_digits.sh", "NG", "0.01", "1", "50", "-1", "1", "resnet18",
               extra="--forget_class 5 --no-mia")
    assert rows[0]["oracle_status"].startswith("missing: no row for digits resnet18 m0 c5")
    p = run_stage("collect_results.py", "--dataset", "digits", "--no-plots", root=jobs_root)
    warn = [ln for ln in p.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "have no Oracle" in warn[0], p.stderr
    cmd = warn[0].split("train the missing Oracles with: ", 1)[1]
    words = shlex.split(cmd)
    assert words[:2] == ["python", "training_oracle.py"] and "&&" not in words
    runs = opts.parse_runs(words[2:], stage="oracle")
    assert [(r.model_num, f.tag) for r in runs for f in forget_sets(r)] == [(0, "c5")]
    assert runs[0].root == str(jobs_root)


def test_one_oracle_call_covers_every_original_and_hr_seed(tmp_path):
    """training_oracle.py --mode HR without --hr_seed or --n_model plans the Oracle of every stored draw
    for every original in the runs tree; given values narrow it (several at once)."""
    import training_oracle
    from data.forget import sample_hr
    for n in (0, 1):
        f = paths.original_ckpt(tmp_path, "digits", "resnet18", n)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"")  # only their presence counts here
    hr = ["--dataset", "digits", "--root", str(tmp_path), "--mode", "HR", "--hr_samples", "30"]
    n_train = len(training_oracle.splits(opts.parse_args(hr, stage="sample"))["train"])
    for seed in (0, 2):
        sample_hr(str(tmp_path), "digits", n_train, 30, seed)
    got = [(n, fs.tag, fs.seed) for _, n, fs in training_oracle.plan(opts.parse_runs(hr, stage="oracle"))]
    assert got == [(0, "hr30_s0", 0), (0, "hr30_s2", 2), (1, "hr30_s0", 0), (1, "hr30_s2", 2)]
    got = [(n, fs.tag) for _, n, fs in training_oracle.plan(
        opts.parse_runs([*hr, "--hr_seed", "2", "--model_num", "1"], stage="oracle"))]
    assert got == [(1, "hr30_s2")]
    cr = ["--dataset", "digits", "--root", str(tmp_path), "--forget_class", "3", "4"]
    got = [(n, fs.tag) for _, n, fs in training_oracle.plan(opts.parse_runs(cr, stage="oracle"))]
    assert got == [(0, "c3"), (1, "c3"), (0, "c4"), (1, "c4")]
    args = opts.parse_args([*hr, "--hr_seed", "2", "--model_num", "1"], stage="main")
    assert experiment.run_config(args, 1, forget_sets(args)[0])["hr_seed"] == 2


def test_root_requirements_for_seed_b(tmp_path):
    """`pip install -r requirements.txt` (seed B) installs bash/requirements.txt, from any folder."""
    text = (REPO / "requirements.txt").read_text()
    assert "-r bash/requirements.txt" in text.splitlines()
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-q", "-r",
                        str(REPO / "requirements.txt")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    if "No module named pip" in p.stderr:
        pytest.skip("no pip in this interpreter")
    assert p.returncode == 0, p.stderr
