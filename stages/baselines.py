"""Stage 3: metrics of the originals, per forget set, from the cached fc embeddings (the original's
head over them gives exactly its outputs), so this stage costs one matrix product per split."""

from __future__ import annotations

import argparse

from core.feeds import predict
from core.runtime import device_name, get_device, set_threads
from evaluation.columns import original_accuracy, row_metrics
from reporting import results
from stages.config import command, forget_config, model_nums
from stages.pipeline import forget_sets, load_embeddings, load_original, seed_of


def original_outputs(args, n: int, device, splits=("train", "val", "test")) -> dict:
    """{split: (logits, labels)} of original m<n>, through its head over the fc embeddings."""
    net = load_original(args, n).to(device)
    head = net.tail("fc").eval()
    out = {}
    for s in splits:
        feed = load_embeddings(args, n, "fc", s, device)
        out[s] = (predict(head, feed), feed.y)
    return out


def evaluate_originals(args: argparse.Namespace, script: str) -> None:
    """Stage 3: one row per (original, forget set) of `args` in results/original.csv."""
    device = get_device(args.cuda)
    set_threads(args.threads)
    done = results.existing(args.root, "original")
    for n in model_nums(args):
        outputs = None
        rows = []
        for fs in forget_sets(args):
            config = forget_config(args, n, fs)
            rid = results.run_id(config)
            if rid in done and not args.overwrite:
                print(f"skip: original m{n} {fs.tag} already in results/original.csv")
                continue
            if outputs is None:
                outputs = original_outputs(args, n, device)
            a_or = original_accuracy(outputs, fs)
            m = row_metrics(outputs, fs, a_or, mia=args.mia)
            rows.append(results.make_row("original", config, command(args, script, config), m,
                                         forget_tag=fs.tag, forget_classes=list(fs.classes), seed=seed_of(args, n),
                                         device=device_name(device)))
            print(f"original m{n} {fs.tag}: test retain {m['test_retain_acc']:.4f} forget {m['test_forget_acc']:.4f} "
                  f"AUS {m['aus']:.4f}")
        if rows and args.save_df:
            print(f"-> {results.append(args.root, 'original', rows)}")
