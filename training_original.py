"""Stage 1: train `--n_model` independently seeded originals (m0..m<n-1>, seed + n).

    python training_original.py --dataset digits --model resnet18 --n_model 1
Defaults: CIFAR-10 and ResNet-18 (seed A's examples); the data set's training recipe (--recipe, printed
first). Finished originals are skipped; a killed run resumes from its last epoch. Works under torchrun.
"""

from __future__ import annotations

import time

import opts
from core import paths
from core.feeds import predict
from core.runtime import device_name, get_device, run_stage, seed_everything, set_threads
from data import make_dataset
from engine.training import init_distributed, train_classifier
from evaluation.metrics import accuracy
from reporting import results
from stages.config import command, model_nums, resolved_config
from stages.pipeline import image_feed, net_meta, new_model, recipe_line, seed_of, splits, train_recipe


def main() -> None:
    args = opts.parse_args(stage="train", defaults=opts.SEED_A_STAGE_DEFAULTS)
    print(recipe_line(args))
    set_threads(args.threads)
    device = get_device(args.cuda)
    if args.save_df:
        results.check_csvs(args.root, "training")
    sp = splits(args)
    for n in model_nums(args):
        ckpt = paths.original_ckpt(args.root, args.dataset, args.model, n)
        if ckpt.exists() and not args.overwrite:
            print(f"skip: {ckpt} exists (use --overwrite to retrain)")
            continue
        seed = seed_of(args, n)
        seed_everything(seed, args.deterministic)
        net = new_model(args)
        t0 = time.time()
        summary = train_classifier(net, make_dataset(args.dataset, sp["train"], args.img_size, train=True,
                                                     augment=args.augment),
                                   make_dataset(args.dataset, sp["val"], args.img_size, train=False), train_recipe(args), ckpt,
                                   {**net_meta(args), "seed": seed}, device, seed, desc=f"original m{n}")
        dd, dev = init_distributed(device)
        if not dd.main:
            continue
        test = image_feed(args, "test", dev)
        test_acc = accuracy(predict(net.eval(), test), test.targets)
        config = {**resolved_config(args), "model_num": n}
        row = results.make_row("original", config, command(args, "training_original.py", config), {}, forget_tag="none",
                               img_size=args.img_size, epochs_run=summary["epochs_run"],
                               best_epoch=summary["best_epoch"], best_val_acc=summary["best_val_acc"],
                               test_acc=test_acc, world_size=summary["world_size"], time_s=time.time() - t0,
                               device=device_name(dev), seed=seed)
        row = {k: v for k, v in row.items() if k in results.TRAIN_COLUMNS}
        if args.save_df:
            results.append(args.root, "training", [row])
        print(f"original m{n}: best val acc {summary['best_val_acc']:.4f} (epoch {summary['best_epoch']}), "
              f"test acc {test_acc:.4f}, {summary['seconds']:.0f}s -> {ckpt}")


if __name__ == "__main__":
    run_stage(main)
