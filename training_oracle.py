"""Stage 4: the Oracle, retrained without the forget set (same recipe as the original).

    python training_oracle.py --dataset digits --model resnet18 --mode CR --forget_class 3
    python training_oracle.py --dataset cifar100 --forget_mode multi --num_forget_classes 2
    python training_oracle.py --dataset cifar10 --mode HR       (after sample_fgt_samples.py: every seed)
One call trains one Oracle per (original, forget set) the unlearning runs need, as the seeds do: every
original in the runs tree (unless --n_model/--model_num), every forget class (unless --forget_class),
every HR draw (unless --hr_seed); several values per option are accepted. Each writes a row to
<root>/results/oracle.csv with the same metrics as the originals and unlearned models. The class head
keeps all classes. Defaults: CIFAR-10 and ResNet-18 (seed A's examples).
"""

from __future__ import annotations

import time

import opts
from core import paths
from core.runtime import device_name, get_device, run_stage, seed_everything, set_threads
from data import make_dataset
from data.forget import ForgetSet
from engine.training import init_distributed, load_net, train_classifier
from evaluation.audit import EVAL_SPLITS, cka, network_reps, reference_columns
from evaluation.columns import original_accuracy, row_metrics
from reporting import results
from stages.config import command, forget_config, model_nums
from stages.pipeline import (
    forget_sets,
    image_feed,
    load_original,
    net_meta,
    new_model,
    recipe_line,
    seed_of,
    splits,
    train_recipe,
)

SCRIPT = "training_oracle.py"


def image_feeds(args, device, splits=("train", "val", "test")) -> dict:
    return {s: image_feed(args, s, device) for s in splits}


def train_oracle(args, n: int, fs: ForgetSet, device) -> None:
    ckpt = paths.oracle_ckpt(args.root, args.dataset, args.model, fs.tag, n)
    config = forget_config(args, n, fs)
    seed = seed_of(args, n)
    t0 = time.time()
    if ckpt.exists() and not args.overwrite:
        if not args.save_df or results.run_id(config) in results.existing(args.root, "oracle"):
            print(f"skip: {ckpt} exists (use --overwrite to retrain)")
            return
        # Trained, but its row is missing (e.g. a results CSV was moved away): evaluate, do not retrain.
        print(f"{ckpt} exists but has no row in results/oracle.csv: evaluating it")
        net, meta = load_net(ckpt, net_meta(args, fs.tag), "")
        summary = dict(best_epoch=meta.get("best_epoch", ""), epochs_run=meta.get("epochs_run", ""),
                       best_val_acc=meta.get("val_acc", ""), world_size="")
        write_rows(args, n, fs, net, config, seed, summary, t0, device)
        return
    sp = splits(args)
    train, val = sp["train"], sp["val"]
    keep_train = ~fs.mask("train", train.targets)
    keep_val = ~fs.mask("val", val.targets)
    seed_everything(seed, args.deterministic)
    net = new_model(args)
    print(f"oracle m{n} {fs.tag}: training on {int(keep_train.sum())}/{len(train)} train samples")
    summary = train_classifier(net, make_dataset(args.dataset, train.subset(keep_train.nonzero()[:, 0]), args.img_size, True,
                                                 args.augment),
                               make_dataset(args.dataset, val.subset(keep_val.nonzero()[:, 0]), args.img_size, False),
                               train_recipe(args), ckpt, {**net_meta(args, fs.tag), "seed": seed}, device, seed,
                               desc=f"oracle m{n} {fs.tag}")
    dd, dev = init_distributed(device)
    if dd.main:
        write_rows(args, n, fs, net, config, seed, summary, t0, dev)


def write_rows(args, n: int, fs: ForgetSet, net, config: dict, seed: int, summary: dict, t0: float, dev) -> None:
    """The Oracle's metrics row (oracle.csv) and its training row (training.csv)."""
    ckpt = paths.oracle_ckpt(args.root, args.dataset, args.model, fs.tag, n)
    net = net.to(dev).eval()
    reps, outputs = network_reps(net, image_feeds(args, dev), args.num_classes)
    try:
        orig = load_original(args, n).to(dev).eval()
        orig_reps, orig_out = network_reps(orig, image_feeds(args, dev, EVAL_SPLITS), args.num_classes)
        a_or = original_accuracy(orig_out, fs)
        cka_original = cka(reps, orig_reps, fs) if args.cka and fs.mode == "CR" else None
    except Exception as e:  # no original yet: the oracle row is still useful, AUS and CKA are not
        print(f"note: no original m{n} to measure A_or ({e}); AUS and cka_original left empty")
        a_or, cka_original = float("nan"), None
    m = row_metrics(outputs, fs, a_or, mia=args.mia)
    m.update(reference_columns(reps, fs, args.probe, args.cka, cka_original=cka_original, cka_oracle=1.0))
    row = results.make_row("oracle", config, command(args, SCRIPT, config), m, forget_tag=fs.tag,
                           forget_classes=list(fs.classes), seed=seed, best_epoch=summary["best_epoch"],
                           epochs_run=summary["epochs_run"], time_total_s=time.time() - t0,
                           device=device_name(dev))
    if args.save_df:
        results.append(args.root, "oracle", [row])
        train_row = results.make_row("oracle", config, command(args, SCRIPT, config), {}, forget_tag=fs.tag,
                                     img_size=args.img_size, epochs_run=summary["epochs_run"],
                                     best_epoch=summary["best_epoch"], best_val_acc=summary["best_val_acc"],
                                     test_acc=m["test_retain_acc"], world_size=summary["world_size"],
                                     time_s=time.time() - t0, device=device_name(dev), seed=seed)
        results.append(args.root, "training", [{k: v for k, v in train_row.items() if k in results.TRAIN_COLUMNS}])
    print(f"oracle m{n} {fs.tag}: test retain {m['test_retain_acc']:.4f} forget {m['test_forget_acc']:.4f} "
          f"train forget {m['train_forget_acc']:.4f} -> {ckpt}")


def plan(runs: list) -> list[tuple]:
    """Every (options, original, forget set) the parsed command covers: each original (every one in the
    runs tree unless --n_model/--model_num) times each forget set (every class, k or stored HR draw
    unless given)."""
    return [(args, n, fs) for args in runs for n_train in [len(splits(args)["train"])]
            for n in model_nums(args) for fs in forget_sets(args, n_train)]


def main() -> None:
    runs = opts.parse_runs(stage="oracle", defaults=opts.SEED_A_STAGE_DEFAULTS)
    print(recipe_line(runs[0]))
    set_threads(runs[0].threads)
    device = get_device(runs[0].cuda)
    for args in runs:
        if args.save_df:
            results.check_csvs(args.root, "oracle", "training")
    todo = plan(runs)
    for i, (args, n, fs) in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] oracle m{n} {fs.tag}")
        train_oracle(args, n, fs, device)


if __name__ == "__main__":
    run_stage(main)
