"""Stage 2: cache the inputs of the fc and partial cuts of every original, for train (no
augmentation), val and test, with labels, under <root>/<dataset>/<model>/embeddings/<cut>/.

    python create_embeddings.py --dataset digits --model resnet18 --n_model 1
Defaults: CIFAR-10 and ResNet-18 (seed A's `python create_embeddings.py`).
"""

from __future__ import annotations

import opts
from core import paths
from core.runtime import get_device, run_stage, set_threads
from core.storage import atomic_torch_save
from engine.embeddings import extract, fingerprint
from stages.config import model_nums
from stages.pipeline import image_feed, load_original

SPLITS = ("train", "val", "test")


def main() -> None:
    args = opts.parse_args(stage="embed", defaults=opts.SEED_A_STAGE_DEFAULTS)
    set_threads(args.threads)
    device = get_device(args.cuda)
    for n in model_nums(args):
        todo = [(cut, split) for split in SPLITS for cut in args.cuts
                if args.overwrite or not paths.embeddings_file(args.root, args.dataset, args.model, cut, n, split).exists()]
        if not todo:
            print(f"skip: embeddings of m{n} exist for {', '.join(args.cuts)} (use --overwrite to redo)")
            continue
        net = load_original(args, n).to(device)
        fp = fingerprint(net)
        for split in SPLITS:
            cuts = [c for c, s in todo if s == split]
            if not cuts:
                continue
            feed = image_feed(args, split, device)
            embs = extract(net, feed, cuts, args.bsize * 2, desc=f"m{n} {split}")
            for cut, x in embs.items():
                f = paths.embeddings_file(args.root, args.dataset, args.model, cut, n, split)
                meta = dict(dataset=args.dataset, model=args.model, cut=cut, split=split, img_size=args.img_size,
                            model_num=n, original=fp, shape=list(x.shape[1:]))
                atomic_torch_save({"x": x, "y": feed.targets.cpu(), "meta": meta}, f)
                print(f"m{n} {split} {cut}: {tuple(x.shape)} -> {f}")


if __name__ == "__main__":
    run_stage(main)
