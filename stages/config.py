"""What a parsed command line means for result rows: the resolved configuration a row records, the
originals it covers, and the command that reruns it. The namespace comes from `opts.parse_args`."""

from __future__ import annotations

import argparse

from reporting import results

# Options that only unlearning runs read: left out of the configuration of training/baseline rows.
UNLEARN_KEYS = {"method", "setting", "source", "noise_type", "samples_per_class", "select", "temperature",
                "lambda_1", "lambda_2", "delta", "gamma1", "gamma2", "surrogate_dataset", "surrogate_quantity", "scar_stats",
                "method_hp", "load_unlearned_model", "save_model", "cuts"}


# What only the training stages read (the recipe and its augmentation): left out of the other stages' rows.
TRAINING_KEYS = {"recipe", "augment"}


def resolved_config(args: argparse.Namespace) -> dict:
    """Every option after defaults were filled, JSON-friendly: what a CSV row records."""
    cfg = {k: v for k, v in sorted(vars(args).items()) if not k.startswith("_")}
    if args.stage != "main":
        cfg = {k: v for k, v in cfg.items() if k not in UNLEARN_KEYS}
    if args.stage not in ("train", "oracle"):
        cfg = {k: v for k, v in cfg.items() if k not in TRAINING_KEYS}
    return cfg


def forget_config(args: argparse.Namespace, n: int, fs) -> dict:
    """The configuration of one (original, forget set) row: the options plus what the forget set fixes
    (model number, tag, and the HR seed of the draw when --hr_seed covered every draw)."""
    cfg = {**resolved_config(args), "model_num": n, "forget_tag": fs.tag}
    if fs.mode == "HR":
        cfg["hr_seed"] = fs.seed
    return cfg


def model_nums(args: argparse.Namespace) -> list[int]:
    """The originals an invocation covers: --model_num, else m0..m<n_model-1>."""
    return [args.model_num] if args.model_num is not None else list(range(args.n_model))


def command(args: argparse.Namespace, script: str, config: dict) -> str:
    """The command line that reruns the row of `config` (flag spellings from the parser that made `args`)."""
    return results.rerun_command(script, config, args._flags)
