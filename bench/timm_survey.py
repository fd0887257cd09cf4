"""Which timm models the cuts cover: the smallest model of each timm model module, built as a CutNet
(random init, CPU), with the cut identity checked for fc, partial and full on two random images.

Prints one line per module (model, input size, last block or 'no partial cut', seconds) and a
summary; the README's counts come from this script.

    python bench/timm_survey.py                  # each model at its pretrained input size
    python bench/timm_survey.py --img_size 32    # at digits' size
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.runtime import UserError  # noqa: E402
from models import create_model  # noqa: E402
from models.cutnet import CUTS  # noqa: E402


def smallest_per_module(max_params: int) -> dict[str, tuple[str, int]]:
    """{timm module: (its smallest model, parameters)}, counted on the meta device (no memory, no init)."""
    import timm
    pick: dict[str, tuple[str, int]] = {}
    for module in timm.list_modules():
        for name in timm.list_models(module=module):
            try:
                with torch.device("meta"):
                    n = sum(p.numel() for p in timm.create_model(name, num_classes=0).parameters())
            except Exception:  # a model that does not build on the meta device is left out
                continue
            if n <= max_params and (module not in pick or n < pick[module][1]):
                pick[module] = (name, n)
    return pick


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--img_size", type=int, default=0, help="input size; 0 = each model's pretrained size")
    p.add_argument("--max_params", type=int, default=60_000_000, help="leave out modules whose smallest model is larger")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    import timm
    from timm.models import get_pretrained_cfg
    pick = smallest_per_module(args.max_params)
    counts = {"partial": 0, "no partial": 0, "failed": 0}
    for module, (name, n) in pick.items():
        cfg = get_pretrained_cfg(name)
        size = args.img_size or (cfg.input_size[-1] if cfg is not None else 224)
        t0 = time.perf_counter()
        try:
            torch.manual_seed(0)
            net = create_model(f"timm:{name}", num_classes=7, img_size=size).eval()
            x = torch.randn(2, 3, size, size)
            with torch.no_grad():
                y = net(x)
                for cut in CUTS if not net.no_partial else ("fc", "full"):
                    assert torch.equal(net.tail(cut)(net.features_at(x, cut)), y), cut
            kind = "no partial" if net.no_partial else "partial"
            what = "no partial cut" if net.no_partial else type(net.last_block).__name__
        except (UserError, AssertionError, RuntimeError) as e:
            kind, what = "failed", f"{type(e).__name__}: {str(e).splitlines()[0][:150]}"
        counts[kind] += 1
        print(f"{module:28s} {name:36s} {n / 1e6:6.1f}M {size:4d}px  {what}  {time.perf_counter() - t0:.1f}s", flush=True)
    print(f"timm {timm.__version__}: {len(pick)} of {len(timm.list_modules())} modules surveyed "
          f"(smallest model <= {args.max_params / 1e6:.0f}M parameters): " + ", ".join(f"{v} {k}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
