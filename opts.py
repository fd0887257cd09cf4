"""One argument parser for every stage (the seeds' flags, names and meanings kept).

Options left unset are filled from the one table of defaults in `engine/hparams.py` for the stage, data
set, model and method at hand; `resolved_config(args)` is what a CSV row records. Bad values fail
here, at parse time, with one line naming the valid choices.
"""

from __future__ import annotations

import argparse
import itertools
import re
import shlex
import sys
import textwrap
from pathlib import Path

from core import paths
from core.runtime import UserError
from data import describe_recipe, get_info, list_datasets, recipe_names
from engine import hparams
from engine.synthetic import NOISES
from methods import get_method, list_methods
from models import TIMM, list_models, model_error, model_family

STAGES = ("train", "oracle", "embed", "baseline", "main", "sample", "collect")
TRAINING_STAGES = ("train", "oracle")  # the stages that train a network and read --recipe
# collect_results.py: these options filter the result rows (unset = every value)
COLLECT_FILTERS = ("dataset", "model", "setting", "source", "method", "mode", "forget_mode")
SETTINGS = ("fc", "partial", "full")
SOURCES = ("real", "synthetic")
SELECTS = ("synthetic_aus", "val_aus", "last", "test_aus")
SURROGATES = ("noise", "sample_images", "cifar10", "cifar100", "TinyImageNet", "retain")
SCAR_STATS = ("retain", "surrogate")

# Per entry point, the defaults its seed documents (a flag still wins; main.py and sweep.py keep the
# parser's own, digits). Seed A's stage scripts: CIFAR-10 and ResNet-18, as in its examples.
SEED_A_STAGE_DEFAULTS: dict = {"dataset": "cifar10", "model": "resnet18"}
# Seed B's src/main.py and main_def.py: CIFAR-100, the whole network (main_def), and the values its README
# lists as defaults, for every data set and method.
# (Seed B's MultiStepLR halves the rate at each milestone: gamma=0.5.)
SEED_B_MAIN_DEFAULTS: dict = {"dataset": "cifar100", "setting": "full", "method": "SCAR", "model": "resnet18",
                              "run_name": "test", "mode": "CR", "num_workers": 4, "bsize": 1024, "lr": [0.0005],
                              "epochs": 30, "momentum": 0.9, "wd": 0.0, "scheduler": ["25", "40", "gamma=0.5"],
                              "temperature": 1.0, "lambda_1": 1.0, "lambda_2": 5.0, "delta": 0.5, "gamma1": 3.0,
                              "gamma2": 3.0}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not a usage dump
        self.exit(2, f"error: {message} (see --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, except where it is None: those are resolved later (from the data set,
    the recipe or the defaults table) and their help text or the epilog says to what."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default == [] or action.default is argparse.SUPPRESS:
            return text
        if "(default:" in text:  # an entry point's own default replaces the per-data-set text
            text = text[:text.index("(default:")].rstrip()
        return text + " (default: %(default)s)"


def _int_min(lo: int):
    def conv(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{v} must be >= {lo}")
        return v
    conv.__name__ = f"integer >= {lo}"
    return conv


def _float_min(lo: float, strict: bool = False):
    def conv(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
        if v != v or v < lo or (strict and v == lo):
            raise argparse.ArgumentTypeError(f"{v} must be {'>' if strict else '>='} {lo}")
        return v
    conv.__name__ = "number"
    return conv


def model_name(s: str) -> str:
    """--model: a registered backbone or timm:<any timm model>, else one line with the choices."""
    err = model_error(s)
    if err:
        raise argparse.ArgumentTypeError(err)
    return s


def _hp(s: str) -> tuple[str, str]:
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"{s!r} is not KEY=VALUE")
    k, v = s.split("=", 1)
    return k.strip(), v.strip()


def _per_dataset(fn) -> str:
    """'digits X, cifar10 Y, ...' for a value each data set defines."""
    return ", ".join(f"{d} {fn(get_info(d))}" for d in list_datasets())


def get_parser(stage: str | None = None) -> Parser:
    """The one parser; with `stage`, its --help ends with the table of defaults that stage resolves."""
    p = Parser(description="Source-free class unlearning: one parser for every stage. Options shown with "
                           "[X ...] take several values (--method FT DELETE --forget_class 1 2): one run per "
                           "combination, all in this process.",
               formatter_class=HelpFormatter, epilog=_epilog(stage))
    B = argparse.BooleanOptionalAction
    g = p.add_argument_group("where and what")
    g.add_argument("--run_name", default="test", help="free-text name recorded in every result row")
    g.add_argument("--root", default=None, help="runs tree root (default: $UNLEARN_ROOT or ./runs)")
    g.add_argument("--data_root", default=None, help="where CIFAR/TinyImageNet live (default: $UNLEARN_DATA or ./datasets)")
    g.add_argument("--dataset", default="digits", choices=list_datasets(), help="data set")
    g.add_argument("--model", default="resnet18", type=model_name, metavar="MODEL",
                   help=f"backbone: {', '.join(list_models())}, or {TIMM}<name> for any timm model "
                        f"(e.g. {TIMM}convnext_atto)")
    g.add_argument("--n_model", type=_int_min(1), default=None,
                   help="number of originals (m0..m<n-1>; default: 1; training_oracle.py: every original in the runs tree)")
    g.add_argument("--model_num", type=_int_min(0), default=None, nargs="+",
                   help="only this original (0-based); default: all of 0..n_model-1")
    g.add_argument("--seed", type=int, default=0, help="base seed; original/oracle m<n> uses seed+n")
    g.add_argument("--cuda", type=int, default=None,
                   help="CUDA device index; -1 = CPU (default: cuda:0 if present, else CPU)")
    g.add_argument("--num_workers", type=_int_min(0), default=None,
                   help=f"DataLoader workers (default: {_per_dataset(lambda i: i.train_recipe['num_workers'])})")
    g.add_argument("--threads", type=_int_min(1), default=None,
                   help="CPU threads of torch (default: 1 for main.py, whose sweep tasks run side by side, one per core; "
                        "a lone run on an idle machine may gain from more; all cores for the other stages)")
    g.add_argument("--img_size", type=_int_min(4), default=None,
                   help="input resolution (default, ResNets/ViT,Swin,timm models: "
                        f"{_per_dataset(lambda i: '/'.join(str(i.img_size[f]) for f in ('resnet', 'transformer')))})")
    g.add_argument("--recipe", default=None, choices=recipe_names(),
                   help="training_original.py/training_oracle.py: the training recipe (default: the data set's, see "
                        "below: seedA on CIFAR/TinyImageNet, digits on digits; seedB: SCAR's)")
    g.add_argument("--pretrained", action=B, default=None,
                   help="start originals/Oracles from ImageNet weights, read from the torch hub cache (default: the "
                        "recipe's: yes on CIFAR/TinyImageNet, as both seeds; no on digits)")
    g.add_argument("--val_fraction", type=_float_min(0.0, strict=True), default=0.1,
                   help="fraction of train held out as the val split (model selection)")
    g.add_argument("--deterministic", action="store_true", help="deterministic torch kernels")
    g.add_argument("--overwrite", action="store_true",
                   help="redo work whose output already exists (a cached synthetic set is kept while its original and "
                        "the generator version match: it would be drawn again identically)")
    g.add_argument("--cuts", nargs="+", default=["fc", "partial"], choices=["fc", "partial"],
                   help="create_embeddings.py: which cut inputs to cache")

    g = p.add_argument_group("forget set")
    g.add_argument("--mode", default="CR", choices=["CR", "HR"], help="CR: class removal; HR: random samples")
    g.add_argument("--forget_mode", default="single", choices=["single", "multi"], help="CR: one class or several")
    g.add_argument("--forget_class", type=_int_min(0), default=None, nargs="+",
                   help="class to forget (single); default: each class of the data set's list in turn")
    g.add_argument("--num_forget_classes", type=_int_min(1), default=None, nargs="+",
                   help="multi: forget the first k classes of the data set's fixed permutation "
                        f"(default: each k of the data set's list in turn: "
                        f"{_per_dataset(lambda i: ' '.join(map(str, i.multi_k)))})")
    g.add_argument("--hr_samples", type=_int_min(1), default=None,
                   help=f"HR: number of forget samples (default: {_per_dataset(lambda i: i.hr_samples)})")
    g.add_argument("--hr_seed", type=_int_min(0), default=None, nargs="+",
                   help="HR: seed of the forget-sample draw (default: every draw in the runs tree; "
                        "sample_fgt_samples.py draws 0..9)")

    g = p.add_argument_group("optimisation (default: training stages, the recipe; main.py, engine/hparams.py for the "
                             "setting, method and data set; see the table at the end)")
    g.add_argument("--epochs", type=_int_min(1), default=None, help="epochs")
    g.add_argument("--bsize", type=_int_min(1), default=None, help="batch size")
    g.add_argument("--lr", type=_float_min(0.0, strict=True), default=None, nargs="+", help="learning rate")
    g.add_argument("--momentum", type=_float_min(0.0), default=None, help="SGD momentum")
    g.add_argument("--wd", type=_float_min(0.0), default=None, help="weight decay")
    g.add_argument("--label_smoothing", type=_float_min(0.0), default=None, help="training: label smoothing")
    g.add_argument("--scheduler", nargs="+", default=None,
                   help="'cosine', 'none', or MultiStepLR milestones, each multiplying the rate by 0.1 (e.g. 25 40) "
                        "or by G (25 40 gamma=G)")
    g.add_argument("--patience", type=_int_min(1), default=None,
                   help="early stopping: epochs without val improvement (default: the recipe's in training, seedA 30; "
                        "off in main.py)")

    g = p.add_argument_group("unlearning (main.py)")
    g.add_argument("--method", default="SCAR", choices=list_methods(), nargs="+", help="unlearning method")
    g.add_argument("--setting", default="fc", choices=SETTINGS, nargs="+",
                   help="fc: head only; partial: last block + head; full: whole network on images")
    g.add_argument("--source", default="real", choices=SOURCES, nargs="+", help="fc/partial inputs: real or synthetic embeddings")
    g.add_argument("--noise_type", default=hparams.SYNTHETIC_DEFAULTS["noise_type"], choices=NOISES, nargs="+",
                   help="synthetic embeddings: matched (the original's own prior at the cut, steered to its "
                        "confidence; see README) or one of the seed's noise families")
    g.add_argument("--samples_per_class", type=_int_min(1), default=None,
                   help="synthetic: quota per class (default: "
                        f"{hparams.SYNTHETIC_DEFAULTS['samples_per_class']['fc']} fc, "
                        f"{hparams.SYNTHETIC_DEFAULTS['samples_per_class']['partial']} partial); real: at most this many "
                        "train samples of each class, drawn with --seed (default: all)")
    g.add_argument("--select", default=None, choices=SELECTS,
                   help="epoch selection: synthetic_aus (AUS on held-out synthetic samples: no real data; the "
                        "default for --source synthetic), val_aus (the real val split; the default otherwise), "
                        "last, or test_aus (the seed's test-split selection, labelled in the CSV)")
    common, scrub = hparams.UNLEARN_COMMON, hparams.METHOD_DEFAULTS["SCRUB"]
    g.add_argument("--temperature", type=_float_min(0.0, strict=True), default=None,
                   help=f"distillation temperature (default: {common['temperature']:g}; SCRUB {scrub['temperature']:g})")
    g.add_argument("--lambda_1", type=_float_min(0.0), default=None,
                   help=f"SCAR: weight of the forget (Mahalanobis) loss (default: {common['lambda_1']:g})")
    g.add_argument("--lambda_2", type=_float_min(0.0), default=None,
                   help=f"SCAR: weight of the distillation loss (default: {common['lambda_2']:g})")
    g.add_argument("--delta", type=_float_min(0.0, strict=True), default=None,
                   help=f"SCAR: Tukey transform exponent (default: {common['delta']:g})")
    g.add_argument("--gamma1", type=_float_min(0.0), default=None,
                   help=f"SCAR: covariance shrinkage, diagonal (default: {common['gamma1']:g})")
    g.add_argument("--gamma2", type=_float_min(0.0), default=None,
                   help=f"SCAR: covariance shrinkage, off-diagonal (default: {common['gamma2']:g})")
    g.add_argument("--scar_stats", default=None, choices=SCAR_STATS,
                   help="SCAR/SCAR_self: class statistics from the real retain set (true labels, seed B's code) or "
                        "from the surrogates (the original's predictions) (default: retain with --source real, in "
                        "every setting; surrogate with --source synthetic, which keeps it source-free)")
    g.add_argument("--surrogate_dataset", default=None, choices=SURROGATES,
                   help="SCAR full setting: out-of-distribution images to distil on (default: sample_images on digits, "
                        "the other CIFAR on CIFAR, CIFAR-100 on TinyImageNet; an error when absent: noise only when "
                        "asked for; see engine/surrogates.py)")
    g.add_argument("--surrogate_quantity", type=_int_min(1), default=None,
                   help="SCAR full setting: number of surrogate images (default: size of the train split)")
    g.add_argument("--hp", type=_hp, action="append", default=[], metavar="KEY=VALUE",
                   help="method-specific hyperparameter (see METHOD_DEFAULTS in engine/hparams.py), repeatable")
    g.add_argument("--run_original", action="store_true",
                   help="main.py: evaluate the original, write its row (with any of the three run flags, only the rows "
                        "they name are made)")
    g.add_argument("--run_unlearn", action="store_true", help="main.py: run the unlearning method (default when "
                   "none of --run_original/--run_unlearn/--run_rt_model is given)")
    g.add_argument("--run_rt_model", action="store_true", help="main.py: evaluate the Oracle; training_oracle.py: "
                   "accepted for the seeds' commands")
    g.add_argument("--load_unlearned_model", action="store_true", help="main.py: reload the saved unlearned tail")
    g.add_argument("--save_model", action="store_true", help="main.py: save the unlearned tail")
    g.add_argument("--save_df", action=B, default=True, help="append result rows to the CSVs under <root>/results")
    g.add_argument("--push_results", action="store_true", help="seed B: push to Google Docs (not supported offline; ignored)")
    g.add_argument("--mia", action=B, default=True, help="compute the membership-inference metrics")
    g.add_argument("--probe", action=B, default=True,
                   help="linear-probe recovery: a linear classifier fitted on the model's features of the val split "
                        "(every class), its test forget/retain accuracy")
    g.add_argument("--cka", action=B, default=True,
                   help="linear CKA of the model's features to the Original's and the Oracle's (forget-class test samples)")
    g.add_argument("--relearn", action=B, default=True,
                   help="main.py: few-shot relearning attack (1 and 10 real train samples per class, 20 SGD steps on "
                        "the setting's trainable part), test forget accuracy after it, the Oracle's beside it")
    g.add_argument("--rows_file", default=None, metavar="FILE",
                   help="main.py: run the rows of FILE in this process, one 'python main.py ...' command a line "
                        "(sweep.py writes such files); inputs shared by rows are loaded once")
    g.add_argument("--rows", default=None, metavar="START:STOP",
                   help="with --rows_file: only lines START..STOP-1 (0-based, blank and # lines not counted; default: all)")

    g = p.add_argument_group("result tables (collect_results.py; --dataset/--model/--setting/--source/--method/"
                             "--mode/--forget_mode/--forget_class/--num_forget_classes filter the rows, unset = all)")
    g.add_argument("--plots", action=B, default=True, help="collect_results.py: also draw the PNG figures")
    return p


def _kv(d: dict) -> str:
    return ", ".join(f"{k} {' '.join(map(str, v)) if isinstance(v, list) else f'{v:g}' if isinstance(v, float) else v}"
                     for k, v in d.items())


def _epilog(stage: str | None) -> str | None:
    """The defaults a stage resolves after parsing, as a compact table for --help."""
    if stage in TRAINING_STAGES or stage in ("embed", "baseline", "sample"):
        lines = ["training recipes per data set (--recipe; * the default; any flag overrides its value):"]
        for d in list_datasets():
            info = get_info(d)
            for name in info.recipe_names():
                star = "*" if name == info.train_recipe["name"] else ""
                lines.append(f"  {d} {name}{star}: {describe_recipe(info, name)}")
        return _wrap(lines)
    if stage == "main":
        lines = ["unlearning defaults (engine/hparams.py; later entries win, a flag wins over all):",
                 "  " + "; ".join(f"{k}: {_kv(v)}" for k, v in hparams.UNLEARN_SETTING_DEFAULTS.items()),
                 f"  every setting: {_kv(hparams.UNLEARN_COMMON)}",
                 "  per method: " + "; ".join(f"{m}: {_kv(v)}" for m, v in hparams.METHOD_DEFAULTS.items() if v),
                 "  per method and setting: " + "; ".join(f"{m} {st}: {_kv(v)}"
                                                          for (m, st), v in hparams.METHOD_SETTING_DEFAULTS.items()),
                 "  per data set: " + "; ".join(f"{d} {'every method' if m == '*' else m} {st}: {_kv(v)}"
                                                for (d, m, st), v in hparams.DATASET_DEFAULTS.items())]
        return _wrap(lines)
    return None


def _wrap(lines: list[str]) -> str:
    return "\n".join(textwrap.fill(ln, width=100, subsequent_indent="      ") for ln in lines)


def _stage_defaults(p: Parser, args: argparse.Namespace, stage: str) -> dict:
    """The values a stage uses for options left unset: the recipe (training stages: --recipe, else the
    data set's default), the unlearning table (main.py), the data set's facts."""
    info = get_info(args.dataset)
    recipe = info.train_recipe
    if stage in TRAINING_STAGES:
        try:
            recipe = info.recipe(args.recipe)
        except UserError as e:
            p.error(f"argument --recipe: {e}")
        args.recipe = recipe["name"]
        args.augment = recipe["augment"][model_family(args.model)]
    elif args.recipe is not None:
        print(f"warning: --recipe {args.recipe} has no effect here: only training_original.py and training_oracle.py "
              f"train with a recipe", file=sys.stderr)
        args.recipe = None
    if stage == "main":
        d = {k: v for k, v in hparams.unlearn_defaults(args.method, args.setting, args.dataset, args.source).items()
             if hasattr(args, k)}
        d.setdefault("label_smoothing", 0.0)
    else:  # early stopping is a training option; the other stages record patience unset, as before
        d = {k: v for k, v in recipe.items()
             if k not in ("name", "augment") and (k != "patience" or stage in TRAINING_STAGES)}
    d["pretrained"] = recipe["pretrained"]
    d["num_workers"] = recipe["num_workers"]
    if stage == "main":
        d["threads"] = 1
    d["img_size"] = info.img_size[model_family(args.model)]
    d["hr_samples"] = info.hr_samples
    for k in ("temperature", "lambda_1", "lambda_2", "delta", "gamma1", "gamma2"):
        d.setdefault(k, hparams.UNLEARN_COMMON[k])
    return d


def _originals_on_disk(args: argparse.Namespace) -> int:
    """1 + the highest model number of the originals in the runs tree (1 when there is none)."""
    folder = paths.original_ckpt(args.root, args.dataset, args.model, 0).parent
    found = [int(m.group(1)) for f in folder.glob("m*.pt") if (m := re.fullmatch(r"m(\d+)\.pt", f.name))]
    return max(found, default=0) + 1


def _unlearn_defaults(args: argparse.Namespace) -> None:
    """main.py's options that depend on the source and method: the synthetic quota (real: every sample
    unless --samples_per_class) and the source of SCAR's class statistics."""
    if args.samples_per_class is None and args.source == "synthetic":
        args.samples_per_class = hparams.SYNTHETIC_DEFAULTS["samples_per_class"].get(args.setting, 500)
    if get_method(args.method).class_stats:
        if args.scar_stats is None:  # seed B's real retain set where the run reads real data; source-free otherwise
            args.scar_stats = "surrogate" if args.source == "synthetic" else "retain"
    elif args.scar_stats is not None:
        print(f"warning: --scar_stats has no effect on {args.method} (only SCAR and SCAR_self have class statistics)",
              file=sys.stderr)
        args.scar_stats = None


def _check_scheduler(p: Parser, sched: list[str]) -> list:
    """['cosine'], ['none'], or increasing integer milestones, optionally ending with gamma=G (default 0.1)."""
    if len(sched) == 1 and sched[0] in ("cosine", "none"):
        return sched
    gamma = []
    if sched and sched[-1].startswith("gamma="):
        try:
            g = float(sched[-1][6:])
        except ValueError:
            g = -1.0
        if not 0 < g <= 1:
            p.error(f"argument --scheduler: {sched[-1]!r}: gamma must be a number in (0, 1]")
        sched, gamma = sched[:-1], [f"gamma={g:g}"]
    try:
        ms = [int(s) for s in sched]
    except ValueError:
        p.error(f"argument --scheduler: invalid value {' '.join(sched)!r}; valid: cosine, none, or integer milestones "
                f"(optionally followed by gamma=G)")
    if not ms or ms != sorted(ms) or ms[0] < 1:
        p.error(f"argument --scheduler: milestones {ms} must be increasing positive integers")
    return ms + gamma


def flag_table(p: argparse.ArgumentParser) -> dict[str, tuple[str, object]]:
    """{option name: (its flag, its default)}: how a result row spells its rerun command."""
    return {a.dest: (a.option_strings[0], a.default) for a in p._actions if a.option_strings and a.dest != "help"}


# Options that take several values (main.py --method FT DELETE --forget_class 1 2): one run per
# combination, in this order, each exactly what the command with single values would run.
AXES = ("method", "setting", "source", "noise_type", "lr", "model_num", "forget_class", "num_forget_classes",
        "hr_seed")


def parse_args(argv: list[str] | None = None, stage: str = "main", defaults: dict | None = None) -> argparse.Namespace:
    """One run's options (see `parse_runs`); several values on an axis are refused."""
    runs = parse_runs(argv, stage, defaults)
    if len(runs) != 1:
        several = [k for k in AXES if len({getattr(r, k) for r in runs}) > 1]
        get_parser().error(f"argument --{several[0]}: this command takes one value")
    return runs[0]


def parse_runs(argv: list[str] | None = None, stage: str = "main", defaults: dict | None = None) -> list[argparse.Namespace]:
    """Parse, expand several values of the AXES options into one namespace per combination, validate
    each against its data set/model/method and fill its unset options from the defaults tables.
    `defaults` overrides parser defaults for one entry point (seed B's main_def.py: --setting full).
    With --rows_file, the runs are those of the file's lines (each a main.py command line)."""
    assert stage in STAGES, stage
    p = get_parser(stage)
    if stage == "collect":  # its filters: unset = every value
        p.set_defaults(**{k: None for k in COLLECT_FILTERS})
    p.set_defaults(**(defaults or {}))
    if defaults and stage == "main":
        p.epilog = (p.epilog or "") + "\n" + _wrap([f"this command's own defaults (shown with each option) come "
                                                    f"first, for: {' '.join('--' + k for k in defaults)}"])
    raw = p.parse_args(argv)
    if stage == "collect":
        raw.stage, raw.root = stage, raw.root or paths.default_root()
        return [raw]
    if raw.rows_file is not None:
        return _rows_of_file(p, raw, stage)
    values = [list(dict.fromkeys(v)) if isinstance(v := getattr(raw, k), list) else [v] for k in AXES]
    combos = [dict(zip(AXES, c)) for c in itertools.product(*values)]
    return [_resolve(p, argparse.Namespace(**{**vars(raw), **c}), stage, values[0]) for c in combos]


def _rows_of_file(p: Parser, raw: argparse.Namespace, stage: str) -> list[argparse.Namespace]:
    """The runs of --rows_file lines START:STOP (`python main.py ...` each; sweep.py writes such files)."""
    given = [f"--{k}" for k, v in vars(raw).items() if k not in ("rows_file", "rows") and v != p.get_default(k)]
    if given:
        p.error(f"argument --rows_file: the options of each run are on its line of the file; not here ({given[0]})")
    try:
        lines = [ln for ln in Path(raw.rows_file).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as e:
        p.error(f"argument --rows_file: cannot read {raw.rows_file} ({e.strerror})")
    start, stop = _slice(p, raw.rows, len(lines))
    runs = []
    for i, line in enumerate(lines[start:stop], start):
        words = shlex.split(line)
        if words[:2] != ["python", "main.py"]:
            p.error(f"argument --rows_file: line {i + 1} of {raw.rows_file} is not a 'python main.py ...' command")
        runs += parse_runs(words[2:], stage)
    return runs


def _slice(p: Parser, rows: str | None, n: int) -> tuple[int, int]:
    if rows is None:
        return 0, n
    try:
        a, b = (int(x) if x else None for x in rows.split(":"))
    except ValueError:
        p.error(f"argument --rows: {rows!r} is not START:STOP (0-based line numbers, STOP excluded)")
    return slice(a, b).indices(n)[:2]


def _resolve(p: Parser, args: argparse.Namespace, stage: str, methods: list[str]) -> argparse.Namespace:
    """Fill one run's unset options from the defaults and validate it (`methods`: every --method given)."""
    args.stage = stage
    args._flags = flag_table(p)
    info = get_info(args.dataset)
    args.num_classes = info.num_classes
    args.root = args.root or paths.default_root()
    args.data_root = args.data_root or paths.default_data_root()
    for k, v in _stage_defaults(p, args, stage).items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    args.scheduler = _check_scheduler(p, [str(s) for s in args.scheduler])
    if args.select is None:  # a source-free row selects its epoch on synthetic data only
        args.select = "synthetic_aus" if args.source == "synthetic" else "val_aus"
    if args.select == "synthetic_aus" and args.source != "synthetic":
        p.error("argument --select: synthetic_aus needs --source synthetic (its held-out synthetic samples); "
                "valid here: val_aus, last, test_aus")
    args.stem = info.recipe(getattr(args, "recipe", None))["stem"]
    if args.n_model is None:  # training_oracle.py: an Oracle for every original there is
        args.n_model = _originals_on_disk(args) if stage == "oracle" and args.model_num is None else 1
    if args.hr_seed is None and stage != "sample" and (args.mode == "CR" or stage in ("train", "embed")):
        args.hr_seed = 0  # recorded as before; HR unset = every stored draw (sample_fgt_samples.py: seeds 0..9)
    if stage == "main":
        _unlearn_defaults(args)
    if args.forget_class is not None and args.forget_class >= info.num_classes:
        p.error(f"argument --forget_class: {args.forget_class} out of range; {args.dataset} has classes "
                f"0..{info.num_classes - 1}")
    if args.num_forget_classes is not None and not 1 <= args.num_forget_classes < info.num_classes:
        p.error(f"argument --num_forget_classes: {args.num_forget_classes} out of range; {args.dataset} allows "
                f"1..{info.num_classes - 1}")
    if args.model_num is not None and args.model_num >= args.n_model:
        args.n_model = args.model_num + 1
    if not args.val_fraction < 0.5:
        p.error(f"argument --val_fraction: {args.val_fraction} must be below 0.5")
    if args.setting == "full" and args.source == "synthetic":
        p.error("argument --source: synthetic embeddings exist for the fc and partial settings only; "
                "the full setting trains on real images")
    known = {k: v for k, v in hparams.unlearn_defaults(args.method, args.setting, args.dataset, args.source).items()
             if not hasattr(args, k)}
    hp = {}
    for k, v in args.hp:
        if k not in known and any(k in hparams.unlearn_defaults(m, args.setting, args.dataset, args.source) for m in methods):
            continue  # --method A B --hp x=1: x is the hyperparameter of another of the methods
        if k not in known:
            p.error(f"argument --hp: {args.method} has no hyperparameter {k!r}; valid: {', '.join(known) or 'none'}")
        try:
            hp[k] = type(known[k])(v)
        except ValueError:
            p.error(f"argument --hp: {k}={v!r} is not a {type(known[k]).__name__}")
    args.method_hp = {**known, **hp}
    if stage == "main" and args.setting == "full" and args.surrogate_dataset is None \
            and "surrogate" in get_method(args.method).needs:
        from engine.surrogates import default_surrogate
        args.surrogate_dataset = default_surrogate(args.dataset, args.data_root)  # absent data: an error
    if not (args.run_original or args.run_unlearn or args.run_rt_model):
        args.run_unlearn = True
    if args.push_results:
        print("note: --push_results (Google Docs) is not supported offline; results go to CSV only", file=sys.stderr)
    return args
