"""Stage 5 logic: one unlearning run per (original, forget set), as main.py drives it.

For the fc and partial settings the inputs are cached embeddings (real) or synthetic embeddings, all
resident on the device; the full setting feeds images. Evaluation always uses the real splits:
train/test for the CSV, val for epoch selection (test only with --select test_aus).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import traceback
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from tqdm import tqdm

from core import paths
from core.feeds import Feed, TensorFeed, predict
from core.runtime import Diverged, RunFailed, UserError, device_name, progress, seed_everything, set_threads
from core.storage import atomic_torch_save, atomic_write_json, load_checkpoint, read_rows, save_checkpoint, write_csv
from data import per_class_sample
from data.forget import ForgetSet
from engine import hparams, synthetic
from engine.embeddings import fingerprint
from engine.unlearn import run
from evaluation.audit import Audit
from evaluation.columns import original_accuracy, row_metrics, with_masks
from evaluation.metrics import accuracy, add_aus, aus, firmness, gap_to_oracle
from evaluation.mia import svc_reference
from methods import get_method, real_data_needs
from methods.base import Context
from models.cutnet import CutNet
from reporting import results
from stages.config import UNLEARN_KEYS, command, forget_config, model_nums
from stages.pipeline import forget_sets, image_feed, load_embeddings, load_original, splits

SCRIPT = "main.py"


@dataclass
class Inputs:
    """Everything one original contributes to a run in one setting."""

    net: CutNet
    evals: dict[str, Feed]  # real train/val/test, as the tail takes them (evaluation only)
    source: Feed  # what the method trains on (real train embeddings/images, or synthetic)
    original: dict[str, tuple[torch.Tensor, torch.Tensor]]  # original's {split: (logits, labels)}
    held_out: TensorFeed | None = None  # synthetic source: the held-out synthetic samples (epoch selection)
    synthetic_report: dict | None = None
    source_index: torch.Tensor | None = None  # real source subsampled: its rows' positions in the train split


def cut_shape(net: CutNet, cut: str, img_size: int) -> tuple[int, ...]:
    with torch.no_grad():
        p = next(net.parameters())
        return tuple(net.features_at(torch.zeros(1, 3, img_size, img_size, device=p.device), cut).shape[1:])


def load_synthetic(args: argparse.Namespace, n: int, net: CutNet, device: torch.device) -> tuple[dict, dict]:
    """The synthetic set ({'train': feed, 'val': feed}) of this original/cut/noise/quota/seed, generated
    on first use and cached in the runs tree, and its report. Reads only the original.

    The cache is keyed by content: a file made from this very original (weights fingerprint) by this
    generator version is reused, even under --overwrite (it would be drawn again identically); one
    made from another original (a retrained m<n>) or an older generator is made again."""
    f = paths.synthetic_file(args.root, args.dataset, args.model, args.setting, n, args.noise_type,
                             args.samples_per_class, args.seed)
    fp = fingerprint(net)
    want = {"dataset": args.dataset, "model": args.model, "cut": args.setting, "original": fp,
            "generator": synthetic.GENERATOR_VERSION}
    if f.exists():
        obj = load_checkpoint(f)
        if all(obj["meta"].get(k) == v for k, v in want.items()) and "val_x" in obj:
            report = json.loads(paths.report_file(f).read_text()) if paths.report_file(f).exists() else {}
            return {"train": TensorFeed(obj["x"].to(device), obj["y"].to(device)),
                    "val": TensorFeed(obj["val_x"].to(device), obj["val_y"].to(device))}, report
    parts, report = synthetic.synthesize(net, args.setting, cut_shape(net, "partial", args.img_size), args.num_classes,
                               args.samples_per_class, args.noise_type, args.seed, device)
    missing = {c: v["missing"] for c, v in report["train"]["per_class"].items() if v["missing"]}
    if missing:
        log(f"warning: synthetic embeddings short of the quota for classes {missing} (see {paths.report_file(f)})")
    meta = dict(want, noise=args.noise_type,
                samples_per_class=args.samples_per_class, seed=args.seed, model_num=n)
    atomic_write_json(paths.report_file(f), report)  # first: the samples file marks a complete set
    (x, y), (vx, vy) = parts["train"], parts["val"]
    atomic_torch_save({"x": x.cpu(), "y": y.cpu(), "val_x": vx.cpu(), "val_y": vy.cpu(), "meta": meta}, f)
    log(f"synthetic {args.noise_type} embeddings m{n} {args.setting}: {len(y)} + {len(vy)} held-out samples in "
        f"{report['seconds']}s -> {f}")
    return {"train": TensorFeed(x, y), "val": TensorFeed(vx, vy)}, report


def group_key(args: argparse.Namespace, n: int) -> tuple:
    """What the inputs of a run depend on: runs with equal keys share one `Group`."""
    return (args.root, args.data_root, args.dataset, args.model, args.num_classes, args.img_size, args.stem,
            args.val_fraction, args.num_workers, n, args.setting)


class Group:
    """The inputs shared by every run on one original in one setting, each loaded once: the original,
    the real evaluation inputs (cached cut inputs, or images in the full setting) and the original's
    outputs on them, the training sources (real, and each synthetic set asked for), the Oracle rows."""

    def __init__(self, args: argparse.Namespace, n: int, device: torch.device):
        self.n, self.device = n, device
        self.net = load_original(args, n).to(device)
        if args.setting == "full":
            self.evals = {s: image_feed(args, s, device) for s in ("train", "val", "test")}
            teacher = self.net
        else:
            self.evals = {s: load_embeddings(args, n, args.setting, s, device) for s in ("train", "val", "test")}
            teacher = self.net.tail(args.setting)
            f = paths.embeddings_file(args.root, args.dataset, args.model, args.setting, n, "train")
            if load_checkpoint(f)["meta"].get("original") != fingerprint(self.net):
                raise UserError(f"{f} was made from another original m{n} (retrained since?); rerun "
                                f"create_embeddings.py --dataset {args.dataset} --model {args.model} --overwrite")
        teacher.eval()
        self.original = {s: (predict(teacher, f), f.targets) for s, f in self.evals.items()}
        self._synthetic: dict[tuple, tuple[dict, dict]] = {}
        self._svc: dict[str, dict | None] = {}
        self.shared: dict = {}  # the methods' own model-independent work (Context.shared)
        self.oracle_rows = read_rows(paths.results_csv(args.root, "oracle"))
        # representation metrics: the Original's and each Oracle's parts computed once, on first use
        images = (lambda s: self.evals[s]) if args.setting == "full" else (lambda s: image_feed(args, s, device))
        self.audit = Audit(args.setting, args.num_classes, self.net, self.evals, images,
                           lambda fs: load_oracle(args, n, fs, device), relearn_lr(args))

    def svc_params(self, fs: ForgetSet) -> dict | None:
        """The SVC attack's C and gamma for forget set `fs`, fitted once on the original's outputs and
        reused by every row of the group (a cost that does not depend on the unlearned model)."""
        if fs.tag not in self._svc:
            self._svc[fs.tag] = svc_reference(with_masks(self.original, fs), fs.mode)
        return self._svc[fs.tag]

    def inputs(self, args: argparse.Namespace) -> Inputs:
        """The inputs of one run: its training source (real train inputs, at most --samples_per_class of
        each class when given, or its synthetic set)."""
        if args.source != "synthetic":
            train = self.evals["train"]
            if args.samples_per_class is None:
                return Inputs(self.net, self.evals, train, self.original)
            idx = per_class_sample(train.targets, args.samples_per_class, args.seed)
            keep = torch.zeros(len(train.targets), dtype=torch.bool)
            keep[idx] = True
            return Inputs(self.net, self.evals, train.subset(keep.to(train.targets.device)), self.original,
                          source_index=idx)
        key = (args.noise_type, args.samples_per_class, args.seed)
        if key not in self._synthetic:
            self._synthetic[key] = load_synthetic(args, self.n, self.net, self.device)
        sets, report = self._synthetic[key]
        return Inputs(self.net, self.evals, sets["train"], self.original, sets["val"], report)


def relearn_lr(args: argparse.Namespace) -> float:
    """The relearning attack's learning rate: the setting's default unlearning lr on this data set (one
    value for every method and the Oracle, whatever lr a run used)."""
    return hparams.unlearn_defaults("", args.setting, args.dataset)["lr"]


def load_oracle(args: argparse.Namespace, n: int, fs: ForgetSet, device: torch.device) -> CutNet:
    """The Oracle of forget set `fs` for original m<n> (UserError naming the stage to run when missing)."""
    from engine.training import load_net
    from stages.pipeline import net_meta
    ckpt = paths.oracle_ckpt(args.root, args.dataset, args.model, fs.tag, n)
    what = (f"--mode HR --hr_samples {args.hr_samples} --hr_seed {fs.seed}" if fs.mode == "HR" else
            f"--forget_class {fs.classes[0]}" if args.forget_mode == "single" else
            f"--forget_mode multi --num_forget_classes {len(fs.classes)}")
    hint = f"run python training_oracle.py --dataset {args.dataset} --model {args.model} {what} first"
    oracle, _ = load_net(ckpt, net_meta(args, fs.tag), missing_hint=hint)
    return oracle.to(device).eval()


def streams(args: argparse.Namespace, inp: Inputs, fs: ForgetSet, method_cls, device: torch.device) -> dict[str, Feed]:
    """Retain/forget/surrogate streams of the source for this forget set."""
    if fs.mode == "HR" and args.source == "synthetic":
        raise UserError("HR mode forgets training samples, which synthetic embeddings do not have; use --source real")
    index = None if inp.source_index is None else inp.source_index.to(device)
    fmask = fs.mask("train", inp.source.targets.to(device), index)
    out = {"retain": inp.source.subset(~fmask), "forget": inp.source.subset(fmask)}
    if args.setting == "full":
        if "surrogate" in method_cls.needs:
            from engine.surrogates import surrogate_feed
            out["surrogate"] = surrogate_feed(args.surrogate_dataset, args.surrogate_quantity or len(inp.source), args.dataset,
                                              args.img_size, device, seed=args.seed, data_root=args.data_root,
                                              num_workers=args.num_workers, retain=out["retain"])
    else:
        out["surrogate"] = inp.source if method_cls.self_forget else out["retain"]
    if method_cls.class_stats and args.scar_stats == "retain":  # seed B: statistics of the real retain set
        if args.source == "synthetic":  # an ablation: the real train embeddings minus the forget set
            real = inp.evals["train"]
            out["stats"] = real.subset(~fs.mask("train", real.targets.to(device)))
        else:
            out["stats"] = out["retain"]
    for need in method_cls.needs:
        if len(out[need]) == 0:
            raise RunFailed(f"{method_cls.name} needs {need} data but the {args.source} {need} set of {fs.tag} is empty"
                            + (" (raise --samples_per_class or try another --noise_type)" if args.source == "synthetic" else ""))
    return out


def real_data(args: argparse.Namespace) -> str:
    """The real data an unlearning run reads before its evaluation (training inputs, statistics,
    surrogates, epoch selection), space-separated; `none` for a source-free run. The evaluation of the
    finished model reads the real splits in every row."""
    retain, forget = real_data_needs(args.method, args.setting, args.source, args.surrogate_dataset,
                                     args.scar_stats)
    used = ["retain"] * retain + ["forget"] * forget
    if args.setting == "full" and "surrogate" in get_method(args.method).needs \
            and args.surrogate_dataset not in (None, "noise", "retain"):
        used.append("surrogate")  # out-of-distribution real images
    used += {"val_aus": ["val"], "test_aus": ["val", "test"]}.get(args.select, [])
    return " ".join(used) or "none"


# Options a run's configuration records only when they apply (not None): --samples_per_class on real
# data (all samples otherwise) and --scar_stats (methods with class statistics).
OPTIONAL_KEYS = ("samples_per_class", "scar_stats")


def run_config(args: argparse.Namespace, n: int, fs: ForgetSet) -> dict:
    cfg = forget_config(args, n, fs)
    if fs.mode == "CR" and len(fs.classes) == 1 and args.forget_mode == "single":
        cfg["forget_class"] = fs.classes[0]
    if args.forget_mode == "multi":
        cfg["num_forget_classes"] = len(fs.classes)
    if args.source == "real":
        cfg.pop("noise_type", None)
    if args.select == "synthetic_aus":  # rows selected before the tie-break get other run ids (rerun)
        cfg["select_tiebreak"] = "firmness"
    for k in OPTIONAL_KEYS:  # unset: left out, so rows from before these options keep their run ids
        if cfg.get(k) is None:
            cfg.pop(k, None)
    return cfg


def find_oracle(rows: list[dict], dataset: str, model: str, n: int, fs: ForgetSet,
                img_size: int | None = None) -> dict | None:
    """The newest of oracle.csv's `rows` for this data set, model, model number and forget set (and input
    size, when both sides record it): the Oracle an unlearned model is compared with."""
    best = None
    for r in rows:
        if (r.get("dataset"), r.get("model"), r.get("model_num"), r.get("forget_tag")) != (dataset, model, str(n), fs.tag):
            continue
        if img_size is not None:
            try:
                size = json.loads(r.get("config") or "{}").get("img_size")
            except json.JSONDecodeError:
                size = None
            if size is not None and int(size) != int(img_size):
                continue
        best = r  # file order: a retrained Oracle's row comes later and wins
    return best


def oracle_columns(args: argparse.Namespace, n: int, fs: ForgetSet, row: dict, oracle_rows: list[dict]) -> dict:
    """The Oracle's metrics for the same dataset/model/model number/forget set, and the mean gap
    (metrics.gap_to_oracle), with `oracle_status` `found`; `missing: <why>` when that Oracle has no row."""
    o = find_oracle(oracle_rows, args.dataset, args.model, n, fs, args.img_size)
    if o is None:
        return {"oracle_status": f"missing: no row for {args.dataset} {args.model} m{n} {fs.tag} at {args.img_size} px "
                                 f"in results/oracle.csv"}
    cols = {"oracle_test_retain_acc": o["test_retain_acc"], "oracle_test_forget_acc": o["test_forget_acc"],
            "oracle_train_forget_acc": o["train_forget_acc"], "oracle_mia_efficacy": o["mia_efficacy"],
            "oracle_aus": o["aus"], "gap_oracle": gap_to_oracle(row, o, fs.mode), "oracle_status": "found"}
    for on, keys in ((args.probe, ("probe_forget_acc", "probe_cut_forget_acc")), (args.cka, ("cka_original",)),
                     (args.mia, ("mia_auc_forget", "mia_auc_retain", "mia_indisc"))):
        if on:  # the Oracle's own values (setting-independent), when its row has them
            cols.update({f"oracle_{k}": o.get(k, "") for k in keys})
    return cols


def method_hparams(args: argparse.Namespace) -> SimpleNamespace:
    """What a method reads from `ctx.hp`: the shared optimisation and SCAR options, plus its own (--hp)."""
    keys = ("lr", "epochs", "bsize", "momentum", "wd", "scheduler", "temperature", "lambda_1", "lambda_2", "delta",
            "gamma1", "gamma2", "patience")
    return SimpleNamespace(**{k: getattr(args, k) for k in keys}, **args.method_hp)


def unlearn_one(args: argparse.Namespace, n: int, fs: ForgetSet, group: Group, device: torch.device,
                epoch_bar: bool = True) -> dict:
    """Run (or reload) one unlearning, evaluate it, return its CSV row."""
    t_start = time.perf_counter()
    if not bool(fs.mask("train", group.evals["train"].targets).any()):
        raise UserError(f"forget set {fs.tag} is empty: no sample of the {args.dataset} train split is in it")
    inp = group.inputs(args)
    cfg = run_config(args, n, fs)
    rid = results.run_id(cfg)
    method_cls = get_method(args.method)
    feeds = streams(args, inp, fs, method_cls, device)
    tail = copy.deepcopy(inp.net.tail(args.setting))
    teacher = copy.deepcopy(tail).eval().requires_grad_(False)
    ctx = Context(args.num_classes, fs.classes, method_hparams(args), device, torch.Generator().manual_seed(args.seed),
                  shared=group.shared)
    a_or = original_accuracy(inp.original, fs)
    vlo, vy = inp.original["val"]
    vmask = fs.mask("val", vy)
    a_or_val = accuracy(vlo, vy, ~vmask)
    ckpt = paths.unlearned_ckpt(args.root, args.dataset, args.model, args.setting, args.source, args.method, fs.tag,
                                n, rid)

    if args.select == "synthetic_aus":  # the held-out synthetic samples: no real data
        sy = inp.held_out.targets
        smask = fs.mask("val", sy)
        teacher_syn = predict(teacher, inp.held_out)
        a_or_syn = accuracy(teacher_syn, sy, ~smask)

    def evaluate(fn, row: dict) -> dict:
        """Per epoch: what the selection rule reads, and nothing else."""
        row["score"] = 0.0
        if args.select == "synthetic_aus":
            lo = predict(fn, inp.held_out)
            row["synthetic_retain_acc"], row["synthetic_forget_acc"] = accuracy(lo, sy, ~smask), accuracy(lo, sy, smask)
            row["score"] = row["synthetic_aus"] = aus("CR", a_or_syn, row["synthetic_retain_acc"],
                                                      row["synthetic_forget_acc"])
            terms = {}
            row["tiebreak"] = firmness(lo, teacher_syn, sy, smask, terms)
            row["synthetic_forget_p"], row["synthetic_retain_kl"] = terms["p_forget"], terms["retain_kl"]
        if args.select in ("val_aus", "test_aus"):
            lo = predict(fn, inp.evals["val"])
            row["val_retain_acc"], row["val_forget_acc"] = accuracy(lo, vy, ~vmask), accuracy(lo, vy, vmask)
            forget_acc = row["val_forget_acc"] if fs.mode == "CR" else row.get("train_forget_acc", 0.0)
            row["score"] = row["val_aus"] = aus(fs.mode, a_or_val, row["val_retain_acc"], forget_acc)
        if args.select == "test_aus":
            tlo, ty = predict(fn, inp.evals["test"]), inp.original["test"][1]
            tm = fs.mask("test", ty)
            tf = accuracy(tlo, ty, tm) if fs.mode == "CR" else row.get("train_forget_acc", 0.0)
            row["score"] = row["test_aus"] = aus(fs.mode, a_or, accuracy(tlo, ty, ~tm), tf)
        return row

    torch.manual_seed(args.seed)
    if args.load_unlearned_model:
        obj = load_checkpoint(ckpt, expect={"dataset": args.dataset, "model": args.model, "cut": args.setting,
                                            "forget_tag": fs.tag},
                              missing_hint="run the same command with --save_model (and without --load_unlearned_model) first")
        tail.load_state_dict(obj["state_dict"])
        fields = dict(best_epoch=obj["meta"].get("best_epoch"), epochs_run=0, stop_reason="loaded " + ckpt.name,
                      time_unlearn_s=float("nan"))
    else:
        method = method_cls(tail, teacher, ctx)
        out = run(method, feeds, feeds["forget"], evaluate, args.select, desc=f"{args.method} m{n} {fs.tag}",
                  bar=epoch_bar)
        tail = out.tail
        chosen = out.log[out.best_epoch - 1] if out.best_epoch else {}
        fields = dict(best_epoch=out.best_epoch, epochs_run=out.epochs_run, stop_reason=out.stop_reason,
                      time_unlearn_s=out.seconds,
                      select_score=chosen.get("score") if args.select != "last" else None)
        if args.save_df:
            cols = list(dict.fromkeys(k for r in out.log for k in r)) or ["epoch"]
            write_csv(paths.epoch_log(ckpt), [{k: results.fmt(v) for k, v in r.items()} for r in out.log], cols)
        if args.save_model:
            save_checkpoint(ckpt, tail.state_dict(), {
                "dataset": args.dataset, "model": args.model, "num_classes": args.num_classes,
                "img_size": args.img_size, "cut": args.setting, "method": args.method, "forget_tag": fs.tag,
                "run_id": rid, "best_epoch": out.best_epoch, "original": fingerprint(inp.net)})
    tail.eval()
    outputs = {s: (predict(tail, inp.evals[s]), inp.original[s][1]) for s in ("train", "val", "test")}
    m = row_metrics(outputs, fs, a_or, mia=args.mia, svc_params=group.svc_params(fs) if args.mia else None)
    add_aus(m, fs.mode, a_or_val, split="val")  # the selection criterion of the reported model
    m.update(group.audit.unlearn_columns(tail, fs, args.probe, args.cka, args.relearn))
    m.update(oracle_columns(args, n, fs, m, group.oracle_rows))
    select = args.select + (" (seed's test-split selection)" if args.select == "test_aus" else "")
    return results.make_row("unlearn", cfg, command(args, SCRIPT, cfg), m, forget_tag=fs.tag, forget_classes=list(fs.classes),
                            setting=args.setting, source=args.source, method=args.method,
                            noise_type=args.noise_type if args.source == "synthetic" else "",
                            samples_per_class="" if args.samples_per_class is None else args.samples_per_class,
                            select=select, real_data=real_data(args), device=device_name(device), model_num=n,
                            time_total_s=time.perf_counter() - t_start, **fields)


# Options that change an unlearning run but not the evaluation of the original or the Oracle.
NOT_REFERENCE_KEYS = UNLEARN_KEYS | {"lr", "epochs", "bsize", "momentum", "wd", "scheduler", "patience",
                                          "label_smoothing", "relearn"}


def reference_config(args: argparse.Namespace, n: int, fs: ForgetSet, which: str) -> dict:
    """What a reference row depends on, so that asking for it again (another method, another lr) finds
    the row already there instead of appending a duplicate."""
    cfg = {k: v for k, v in run_config(args, n, fs).items() if k not in NOT_REFERENCE_KEYS}
    if which == "original":
        cfg["setting"] = args.setting
    return {**cfg, "evaluated": which}


def reference_row(args: argparse.Namespace, n: int, fs: ForgetSet, which: str, group: Group,
                  device: torch.device) -> dict:
    """`--run_original` / `--run_rt_model` (seed B): the original's or the Oracle's metrics for this
    forget set, as a row of the same CSV (kind `original` / `oracle`, method column the same word).
    The original is evaluated in the run's setting; the Oracle always on images (embeddings are the
    original's)."""
    t0 = time.perf_counter()
    a_or = original_accuracy(group.original, fs)
    if which == "original":
        outputs = group.original
    else:  # the Oracle on images, evaluated once per group (its representations too)
        outputs = group.audit.oracle_evaluation(fs)[1]
    m = row_metrics(outputs, fs, a_or, mia=args.mia)
    m.update(group.audit.reference_row_columns(which, fs, args.probe, args.cka))
    cfg = reference_config(args, n, fs, which)
    row = results.make_row(which, cfg, command(args, SCRIPT, cfg), m, forget_tag=fs.tag, forget_classes=list(fs.classes),
                           setting=args.setting if which == "original" else "full", method=which,
                           device=device_name(device), model_num=n, time_total_s=time.perf_counter() - t0)
    log(f"{which} m{n} {fs.tag}: test retain {float(row['test_retain_acc']):.4f} forget "
          f"{float(row['test_forget_acc']):.4f} train forget {float(row['train_forget_acc']):.4f} AUS {float(row['aus']):.4f}")
    return row


@dataclass
class Run:
    """One result row to make: the unlearning of a method (`which` = 'unlearn'), or seed B's evaluation of
    the original or the Oracle for the same forget set ('original', 'oracle')."""

    args: argparse.Namespace
    n: int
    fs: ForgetSet
    which: str

    @property
    def config(self) -> dict:
        return run_config(self.args, self.n, self.fs) if self.which == "unlearn" else \
            reference_config(self.args, self.n, self.fs, self.which)

    @property
    def label(self) -> str:
        return f"{self.args.method if self.which == 'unlearn' else self.which} m{self.n} {self.fs.tag}"


def plan(runs: list[argparse.Namespace]) -> list[Run]:
    """Every row the parsed runs ask for, in order: per original and forget set, seed B's reference rows
    (--run_original, --run_rt_model) and then the unlearning (--run_unlearn, the default)."""
    out = []
    for args in runs:
        # HR forget sets index the train split; class forget sets need no data here (a source-free run
        # reads no real data before its evaluation: its forget set is checked against the cached labels)
        sets = forget_sets(args, len(splits(args)["train"]) if args.mode == "HR" else None)
        for n in model_nums(args):
            for fs in sets:
                out += [Run(args, n, fs, w) for w, on in (("original", args.run_original), ("oracle", args.run_rt_model),
                                                           ("unlearn", args.run_unlearn)) if on]
    return out


def log(msg: str, err: bool = False) -> None:
    """One line of output (stderr with `err`) that does not break the progress bar."""
    tqdm.write(msg, file=sys.stderr if err else sys.stdout)


def main(runs: list[argparse.Namespace], device: torch.device) -> list[dict]:
    """Every requested row, in one process. Rows are grouped by what they share (data set, backbone,
    original, setting: one `Group` each), each group's inputs are loaded once, and every row is seeded
    as if it ran alone, so it gives the numbers it gives in a process of its own.

    Seed B's run flags --run_original, --run_unlearn, --run_rt_model each add their row per (original,
    forget set) to results/unlearn.csv (with --save_df); rows already there are skipped unless
    --overwrite, so a killed invocation resumes at its first row without a result. A run stopped by a
    non-finite loss keeps its last good weights and its row (stop_reason says so), and the stage then
    ends with Diverged (exit 3) so that a job array marks the task as failed. A row that cannot be done
    (RunFailed, a missing input, an error) writes nothing; the others go on and the stage ends with
    exit 2 naming each one (a single row's own error is raised as it is)."""
    todo = plan(runs)
    done: dict[str, dict[str, dict]] = {}
    rows, diverged, failed, pending = [], [], [], []
    for r in todo:
        a = r.args
        if a.root not in done:
            results.check_csvs(a.root, "unlearn", "oracle")
            done[a.root] = results.existing(a.root, "unlearn")
        rid = results.run_id(r.config)
        if rid in done[a.root] and not a.overwrite and not (r.which == "unlearn" and a.load_unlearned_model):
            where = f" ({a.setting}/{a.source})" if r.which == "unlearn" else ""
            log(f"skip: {r.label}{where} already in results/unlearn.csv as {rid} (use --overwrite to redo)")
            if r.which != "unlearn":
                rows.append(done[a.root][rid])
            continue
        pending.append(r)
    first = {}  # group key -> position of its first row: groups run in the order they are first asked for
    for i, r in enumerate(pending):
        first.setdefault(group_key(r.args, r.n), i)
    pending.sort(key=lambda r: first[group_key(r.args, r.n)])
    bar = progress(pending, desc="rows", disable=len(pending) < 2)
    group: Group | Exception | None = None  # the current group, or why it could not be loaded
    key, errors = None, []
    for r in bar:
        a = r.args
        bar.set_postfix_str(r.label, refresh=False)
        try:
            if group_key(a, r.n) != key:
                group, key = None, group_key(a, r.n)
                try:
                    group = Group(a, r.n, device)
                except Exception as e:  # noqa: BLE001  (every row of this group fails the same way)
                    group = e
            if isinstance(group, Exception):
                raise group
            set_threads(a.threads)
            seed_everything(a.seed, a.deterministic)
            if r.which == "unlearn":
                row = unlearn_one(a, r.n, r.fs, group, device, epoch_bar=len(pending) < 2)
                log(f"{r.label} {a.setting}/{a.source}: test retain {float(row['test_retain_acc']):.4f} forget "
                    f"{float(row['test_forget_acc']):.4f} AUS {float(row['aus']):.4f} best epoch {row['best_epoch']} "
                    f"({float(row['time_unlearn_s']):.2f}s)")
            else:
                row = reference_row(a, r.n, r.fs, r.which, group, device)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001  (one row's failure must not stop the others)
            errors.append(e)
            failed.append(f"{r.label}: {e}" if isinstance(e, UserError) else f"{r.label}: {type(e).__name__}: {e}")
            if not isinstance(e, UserError):
                traceback.print_exc()
            if len(pending) > 1:  # a lone row's error is raised below, as its one line
                log(f"error: {failed[-1]} (no row written; going on)", err=True)
            continue
        if a.save_df:
            results.append(a.root, "unlearn", [row])
        rows.append(row)
        if row.get("stop_reason", "").startswith("non-finite"):
            diverged.append(f"{r.label}: {row['stop_reason']}")
    if errors and not rows and not diverged and len({str(e) for e in errors}) == 1:
        raise errors[0]  # nothing done, one cause (a missing input, a single run's own error): as it is
    problems = []
    if failed:
        problems.append(f"{len(failed)} run(s) could not be done and wrote no row ({'; '.join(failed)})")
    if diverged:
        problems.append(f"{len(diverged)} run(s) stopped on a non-finite loss ({'; '.join(diverged)}); the rows "
                        f"record it in stop_reason; lower --lr")
    if problems:
        raise (Diverged if diverged else RunFailed)("; ".join(problems) + f"; {len(rows)} row(s) done")
    return rows
