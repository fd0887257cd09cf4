"""One argument parser for every stage (the seeds' flags, names and meanings kept).

Options left unset are filled from the one table of defaults in `engine/hparams.py` for the stage, data
set, model and method at hand; `resolved_config(args)` is what a CSV row records. Bad values fail
here, at parse time, with one line naming the valid choices.
"""

from __future__ import annotations

import argparse
import sys

from core import paths
from data import get_info, list_datasets
from engine import hparams
from methods import get_method, list_methods
from models import TIMM, list_models, model_error, model_family

STAGES = ("train", "oracle", "embed", "baseline", "main", "sample", "collect")
# collect_results.py: these options filter the result rows (unset = every value)
COLLECT_FILTERS = ("dataset", "model", "setting", "source", "method", "mode", "forget_mode")
SETTINGS = ("fc", "partial", "full")
SOURCES = ("real", "synthetic")
NOISES = ("gaussian", "uniform", "laplace", "gumbel", "bernoulli")
SELECTS = ("val_aus", "last", "test_aus")
SURROGATES = ("noise", "sample_images", "cifar10", "cifar100", "TinyImageNet", "retain")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not a usage dump
        self.exit(2, f"error: {message} (see --help)\n")


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


def get_parser() -> Parser:
    p = Parser(description="Source-free class unlearning: one parser for every stage.",
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    B = argparse.BooleanOptionalAction
    g = p.add_argument_group("where and what")
    g.add_argument("--run_name", default="test", help="free-text name recorded in every result row")
    g.add_argument("--root", default=None, help="runs tree root (default: $UNLEARN_ROOT or ./runs)")
    g.add_argument("--data_root", default=None, help="where CIFAR/TinyImageNet live (default: $UNLEARN_DATA or ./datasets)")
    g.add_argument("--dataset", default="digits", choices=list_datasets(), help="data set")
    g.add_argument("--model", default="resnet18", type=model_name, metavar="MODEL",
                   help=f"backbone: {', '.join(list_models())}, or {TIMM}<name> for any timm model "
                        f"(e.g. {TIMM}convnext_atto)")
    g.add_argument("--n_model", type=_int_min(1), default=1, help="number of originals (m0..m<n-1>)")
    g.add_argument("--model_num", type=_int_min(0), default=None,
                   help="only this original (0-based); default: all of 0..n_model-1")
    g.add_argument("--seed", type=int, default=0, help="base seed; original/oracle m<n> uses seed+n")
    g.add_argument("--cuda", type=int, default=None,
                   help="CUDA device index; -1 = CPU; unset = cuda:0 if present, else CPU")
    g.add_argument("--num_workers", type=_int_min(0), default=None, help="DataLoader workers (default per dataset)")
    g.add_argument("--img_size", type=_int_min(4), default=None,
                   help="input resolution (default: data set's own for ResNets, 224 for ViT/Swin/timm models, 32 on digits)")
    g.add_argument("--pretrained", action="store_true", help="start originals from ImageNet weights (offline: cached)")
    g.add_argument("--val_fraction", type=_float_min(0.0, strict=True), default=0.1,
                   help="fraction of train held out as the val split (model selection)")
    g.add_argument("--deterministic", action="store_true", help="deterministic torch kernels")
    g.add_argument("--overwrite", action="store_true", help="redo work whose output already exists")
    g.add_argument("--cuts", nargs="+", default=["fc", "partial"], choices=["fc", "partial"],
                   help="create_embeddings.py: which cut inputs to cache")

    g = p.add_argument_group("forget set")
    g.add_argument("--mode", default="CR", choices=["CR", "HR"], help="CR: class removal; HR: random samples")
    g.add_argument("--forget_mode", default="single", choices=["single", "multi"], help="CR: one class or several")
    g.add_argument("--forget_class", type=_int_min(0), default=None,
                   help="class to forget (single); default: each class of the data set's list in turn")
    g.add_argument("--num_forget_classes", type=_int_min(1), default=None,
                   help="multi: forget the first k classes of the data set's fixed permutation "
                        "(default: each k of the data set's list in turn: 2 5 on digits/CIFAR-10, "
                        "2 5 10 20 on CIFAR-100/TinyImageNet)")
    g.add_argument("--hr_samples", type=_int_min(1), default=None, help="HR: number of forget samples (default per dataset)")
    g.add_argument("--hr_seed", type=_int_min(0), default=0, help="HR: seed of the forget-sample draw")

    g = p.add_argument_group("optimisation (unset: from engine/hparams.py for the stage, data set and method)")
    g.add_argument("--epochs", type=_int_min(1), default=None, help="epochs")
    g.add_argument("--bsize", type=_int_min(1), default=None, help="batch size")
    g.add_argument("--lr", type=_float_min(0.0, strict=True), default=None, help="learning rate")
    g.add_argument("--momentum", type=_float_min(0.0), default=None, help="SGD momentum")
    g.add_argument("--wd", type=_float_min(0.0), default=None, help="weight decay")
    g.add_argument("--label_smoothing", type=_float_min(0.0), default=None, help="training: label smoothing")
    g.add_argument("--scheduler", nargs="+", default=None,
                   help="'cosine', 'none', or MultiStepLR milestones (e.g. 25 40, gamma 0.1)")
    g.add_argument("--patience", type=_int_min(1), default=None,
                   help="early stopping: epochs without val improvement (default: off)")

    g = p.add_argument_group("unlearning (main.py)")
    g.add_argument("--method", default="SCAR", choices=list_methods(), help="unlearning method")
    g.add_argument("--setting", default="fc", choices=SETTINGS,
                   help="fc: head only; partial: last block + head; full: whole network on images")
    g.add_argument("--source", default="real", choices=SOURCES, help="fc/partial inputs: real or synthetic embeddings")
    g.add_argument("--noise_type", default=hparams.SYNTHETIC_DEFAULTS["noise_type"], choices=NOISES,
                   help="synthetic embeddings: noise family")
    g.add_argument("--samples_per_class", type=_int_min(1), default=hparams.SYNTHETIC_DEFAULTS["samples_per_class"],
                   help="synthetic embeddings: quota per class")
    g.add_argument("--select", default="val_aus", choices=SELECTS,
                   help="epoch selection: val_aus (val split), last, or test_aus (the seed's, labelled in the CSV)")
    g.add_argument("--temperature", type=_float_min(0.0, strict=True), default=None, help="distillation temperature")
    g.add_argument("--lambda_1", type=_float_min(0.0), default=None, help="SCAR: weight of the forget (Mahalanobis) loss")
    g.add_argument("--lambda_2", type=_float_min(0.0), default=None, help="SCAR: weight of the distillation loss")
    g.add_argument("--delta", type=_float_min(0.0, strict=True), default=None, help="SCAR: Tukey transform exponent")
    g.add_argument("--gamma1", type=_float_min(0.0), default=None, help="SCAR: covariance shrinkage (diagonal)")
    g.add_argument("--gamma2", type=_float_min(0.0), default=None, help="SCAR: covariance shrinkage (off-diagonal)")
    g.add_argument("--surrogate_dataset", default=None, choices=SURROGATES,
                   help="SCAR full setting: out-of-distribution images to distil on (default: sample_images on digits, "
                        "the other CIFAR when present, else noise; see engine/surrogates.py)")
    g.add_argument("--surrogate_quantity", type=_int_min(1), default=None,
                   help="SCAR full setting: number of surrogate images (default: size of the train split)")
    g.add_argument("--hp", type=_hp, action="append", default=[], metavar="KEY=VALUE",
                   help="method-specific hyperparameter (see hparams.METHOD_DEFAULTS), repeatable")
    g.add_argument("--run_original", action="store_true", help="main.py: also evaluate the original, write its row")
    g.add_argument("--run_unlearn", action="store_true", help="main.py: run the unlearning method (default when "
                   "none of --run_original/--run_unlearn/--run_rt_model is given)")
    g.add_argument("--run_rt_model", action="store_true", help="main.py: evaluate the Oracle; training_oracle.py: "
                   "accepted for the seeds' commands")
    g.add_argument("--load_unlearned_model", action="store_true", help="main.py: reload the saved unlearned tail")
    g.add_argument("--save_model", action="store_true", help="main.py: save the unlearned tail")
    g.add_argument("--save_df", action=B, default=True, help="append result rows to the CSVs under <root>/results")
    g.add_argument("--push_results", action="store_true", help="seed B: push to Google Docs (not supported offline; ignored)")
    g.add_argument("--mia", action=B, default=True, help="compute the membership-inference metrics")

    g = p.add_argument_group("result tables (collect_results.py; --dataset/--model/--setting/--source/--method/"
                             "--mode/--forget_mode/--forget_class/--num_forget_classes filter the rows, unset = all)")
    g.add_argument("--plots", action=B, default=True, help="collect_results.py: also draw the PNG figures")
    return p


def _stage_defaults(args: argparse.Namespace, stage: str) -> dict:
    info = get_info(args.dataset)
    recipe = info.train_recipe
    if stage == "main":
        d = {k: v for k, v in hparams.unlearn_defaults(args.method, args.setting, args.dataset).items() if hasattr(args, k)}
        d.setdefault("label_smoothing", 0.0)
    else:
        d = dict(recipe)
    d["num_workers"] = recipe["num_workers"]
    d["img_size"] = info.img_size[model_family(args.model)]
    d["hr_samples"] = info.hr_samples
    for k in ("temperature", "lambda_1", "lambda_2", "delta", "gamma1", "gamma2"):
        d.setdefault(k, hparams.UNLEARN_COMMON[k])
    return d


def _check_scheduler(p: Parser, sched: list[str]) -> list:
    if len(sched) == 1 and sched[0] in ("cosine", "none"):
        return sched
    try:
        ms = [int(s) for s in sched]
    except ValueError:
        p.error(f"argument --scheduler: invalid value {' '.join(sched)!r}; valid: cosine, none, or integer milestones")
    if ms != sorted(ms) or ms[0] < 1:
        p.error(f"argument --scheduler: milestones {ms} must be increasing positive integers")
    return ms


def flag_table(p: argparse.ArgumentParser) -> dict[str, tuple[str, object]]:
    """{option name: (its flag, its default)}: how a result row spells its rerun command."""
    return {a.dest: (a.option_strings[0], a.default) for a in p._actions if a.option_strings and a.dest != "help"}


def parse_args(argv: list[str] | None = None, stage: str = "main", defaults: dict | None = None) -> argparse.Namespace:
    """Parse, validate against the data set/model/method, and fill unset options from hparams.
    `defaults` overrides parser defaults for one entry point (seed B's main_def.py: --setting full)."""
    assert stage in STAGES, stage
    p = get_parser()
    p.set_defaults(**(defaults or {}))
    if stage == "collect":
        p.set_defaults(**dict.fromkeys(COLLECT_FILTERS))
        args = p.parse_args(argv)
        args.stage, args.root = stage, args.root or paths.default_root()
        return args
    args = p.parse_args(argv)
    args.stage = stage
    args._flags = flag_table(p)
    info = get_info(args.dataset)
    args.num_classes = info.num_classes
    args.root = args.root or paths.default_root()
    args.data_root = args.data_root or paths.default_data_root()
    for k, v in _stage_defaults(args, stage).items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    args.scheduler = _check_scheduler(p, [str(s) for s in args.scheduler])
    args.stem = info.train_recipe["stem"]
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
    known = {k: v for k, v in hparams.unlearn_defaults(args.method, args.setting, args.dataset).items() if not hasattr(args, k)}
    hp = {}
    for k, v in args.hp:
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
        args.surrogate_dataset = default_surrogate(args.dataset, args.data_root)
    if not (args.run_original or args.run_unlearn or args.run_rt_model):
        args.run_unlearn = True
    if args.push_results:
        print("note: --push_results (Google Docs) is not supported offline; results go to CSV only", file=sys.stderr)
    return args
