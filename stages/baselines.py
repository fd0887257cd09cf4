"""Stage 3: metrics of the originals, per forget set, from the cached fc embeddings (the original's
head over them gives exactly its outputs), so this stage costs one matrix product per split."""

from __future__ import annotations

import argparse

from core import paths
from core.feeds import predict
from core.runtime import device_name, get_device, set_threads
from evaluation.audit import EVAL_SPLITS, Reps, reference_columns
from evaluation.columns import original_accuracy, row_metrics
from reporting import results
from stages.config import command, forget_config, model_nums
from stages.pipeline import forget_sets, load_embeddings, load_original, seed_of


def original_outputs(args, n: int, device, splits=("train", "val", "test")) -> tuple[dict, Reps]:
    """{split: (logits, labels)} of original m<n>, through its head over the fc embeddings, and its
    representations for the probe: the fc embeddings of val and test (the head's input), with the cached
    partial embeddings (the last block's input) pooled as the cut when they exist."""
    net = load_original(args, n).to(device).eval()
    head = net.tail("fc")
    out, feat = {}, {}
    for s in splits:
        feed = load_embeddings(args, n, "fc", s, device)
        out[s] = (predict(head, feed), feed.y)
        if s in EVAL_SPLITS:
            feat[s] = feed.x
    cut = None
    if all(paths.embeddings_file(args.root, args.dataset, args.model, "partial", n, s).exists() for s in EVAL_SPLITS):
        cut = {s: predict(lambda x: net.pool(x).flatten(1), load_embeddings(args, n, "partial", s, device))
               for s in EVAL_SPLITS}
    return out, Reps(feat, cut, {s: out[s][1] for s in EVAL_SPLITS}, args.num_classes)


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
                outputs, reps = original_outputs(args, n, device)
            a_or = original_accuracy(outputs, fs)
            m = row_metrics(outputs, fs, a_or, mia=args.mia)
            # the Oracle is trained later (stage 4): its CKA to the original is in oracle.csv's rows
            m.update(reference_columns(reps, fs, args.probe, args.cka, cka_original=1.0, cka_oracle=None))
            rows.append(results.make_row("original", config, command(args, script, config), m,
                                         forget_tag=fs.tag, forget_classes=list(fs.classes), seed=seed_of(args, n),
                                         device=device_name(device)))
            print(f"original m{n} {fs.tag}: test retain {m['test_retain_acc']:.4f} forget {m['test_forget_acc']:.4f} "
                  f"AUS {m['aus']:.4f}")
        if rows and args.save_df:
            print(f"-> {results.append(args.root, 'original', rows)}")
