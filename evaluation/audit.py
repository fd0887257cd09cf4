"""The representation columns of a result row: linear-probe recovery, CKA to the Original and the
Oracle, few-shot relearning (README § Metrics and membership inference).

`Audit` serves every row of one group (data set, backbone, original, setting): the Original's
representations and probes, and each Oracle's features and relearning attack, are computed once, on
first use, and shared by every row; only the unlearned model's own metrics are computed per row. In
the fc setting the head's input is the cached embedding, identical to the Original's by construction:
those rows copy the Original's probe (no refit) and have CKA 1 to it. The Oracle's scalar values that do
not depend on the setting (its probe, its CKA to the Original, its attack AUCs) are those of its own
row in oracle.csv, copied by the stage like its accuracies; here it is only read on the forget-class test
images (CKA) and on the few relearning samples, so an Oracle costs a fraction of one pass over test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from core.feeds import Feed, TensorFeed, predict
from core.runtime import UserError
from data.forget import ForgetSet
from evaluation import representation as rep
from models.cutnet import CutNet, Tail

EVAL_SPLITS = ("val", "test")  # probe: fitted on val (all of it, every class), scored on test
RELEARN_PARTS = {"fc": "head", "partial": "last block + head", "full": "whole network"}


@dataclass
class Reps:
    """A model's representations of the real val and test splits: `feat[split]` the classifier's input,
    `cut[split]` the pooled input of the last block (None where not probed), `y[split]` the labels.
    Probe logits on test are fitted once and kept."""

    feat: dict[str, torch.Tensor]
    cut: dict[str, torch.Tensor] | None
    y: dict[str, torch.Tensor]
    num_classes: int
    _probes: dict[str, torch.Tensor] = field(default_factory=dict)

    def probe_logits(self, which: str = "feat") -> torch.Tensor:
        if which not in self._probes:
            src = self.feat if which == "feat" else self.cut
            self._probes[which] = rep.probe_predictions(src["val"], self.y["val"], src["test"], self.num_classes)
        return self._probes[which]

    def forget_features(self, fs: ForgetSet) -> torch.Tensor:
        """Penultimate features of the forget-class test samples (CKA's inputs), in test order."""
        return self.feat["test"][fs.mask("test", self.y["test"])]


def probe_columns(reps: Reps, fs: ForgetSet, prefix: str = "") -> dict:
    """probe_forget_acc / probe_retain_acc (penultimate features) and, where the model has a cut,
    probe_cut_forget_acc / probe_cut_retain_acc, on the test split."""
    y = reps.y["test"]
    fm = fs.mask("test", y)
    cols = dict(zip((f"{prefix}probe_forget_acc", f"{prefix}probe_retain_acc"),
                    rep.forget_retain_accuracy(reps.probe_logits("feat"), y, fm)))
    if reps.cut is not None:
        cols.update(zip((f"{prefix}probe_cut_forget_acc", f"{prefix}probe_cut_retain_acc"),
                        rep.forget_retain_accuracy(reps.probe_logits("cut"), y, fm)))
    return cols


def network_reps(net: CutNet, feeds: dict[str, Feed], num_classes: int) -> tuple[Reps, dict]:
    """Reps of a whole network on image feeds (val and test among them), and its {split: (logits,
    labels)} on every split of `feeds`, from one pass per split."""
    feat, cut, outputs = {}, {}, {}
    net.eval()
    for s, f in feeds.items():
        feat[s], cut[s], logits = rep.net_features(net, f)
        outputs[s] = (logits, f.targets)
    return (Reps({s: feat[s] for s in EVAL_SPLITS}, {s: cut[s] for s in EVAL_SPLITS},
                 {s: feeds[s].targets for s in EVAL_SPLITS}, num_classes), outputs)


def cka(a: Reps, b: Reps, fs: ForgetSet) -> float:
    """Linear CKA of two models' penultimate features on the forget-class test samples."""
    return rep.linear_cka(a.forget_features(fs), b.forget_features(fs))


def reference_columns(reps: Reps, fs: ForgetSet, probe: bool, cka_on: bool, cka_original: float | None,
                      cka_oracle: float | None) -> dict:
    """The representation columns of an Original's or an Oracle's own row: its probe (timed) and its CKA
    to the Original and to the Oracle (1 to itself; empty when the other is unknown). No relearning:
    the Oracle's, in each setting, is in the unlearning rows (`oracle_relearn_*`)."""
    cols = {}
    if probe:
        t = time.perf_counter()
        cols.update(probe_columns(reps, fs))
        cols["time_probe_s"] = time.perf_counter() - t
    if cka_on:
        cols["cka_original"], cols["cka_oracle"] = cka_original, cka_oracle
    return cols


def relearn_setup(setting: str, lr: float) -> str:
    """What the relearning attack did, in words (the row's `relearn_setup` column)."""
    return (f"{RELEARN_PARTS[setting]} ({setting}) from the evaluated weights: {rep.RELEARN_STEPS} SGD steps, lr {lr:g}, "
            f"momentum {rep.RELEARN_MOMENTUM:g}, batch <= {rep.RELEARN_BSIZE}, on k real train samples per class "
            f"(forget classes included; draw seed {rep.SEED}); BatchNorm frozen")


class Audit:
    """Representation metrics for one group. `evals` are the tail's real train/val/test inputs (cached
    cut inputs, or images in the full setting); `images(split)` gives image feeds (the Oracle's inputs);
    `load_oracle(fs)` the Oracle network of a forget set, raising UserError when there is none;
    `relearn_lr` the attack's learning rate (one per setting, the same for every method and the Oracle)."""

    def __init__(self, setting: str, num_classes: int, net: CutNet, evals: dict[str, Feed],
                 images: Callable[[str], Feed], load_oracle: Callable[[ForgetSet], CutNet], relearn_lr: float):
        self.setting, self.num_classes, self.net, self.evals = setting, num_classes, net, evals
        self.images, self.load_oracle, self.relearn_lr = images, load_oracle, relearn_lr
        self._original: Reps | None = None
        self._oracles: dict[str, CutNet | UserError] = {}
        self._cache: dict[tuple, object] = {}

    def _once(self, key: tuple, make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # --- the Original --------------------------------------------------------------------------------
    def original(self) -> Reps:
        """The Original's Reps in this setting: fc: the cached embeddings themselves (no cut); partial:
        its last block over the cached cut inputs, the cut being those inputs pooled; full: images."""
        if self._original is None:
            y = {s: self.evals[s].targets for s in EVAL_SPLITS}
            net = self.net.eval()
            if self.setting == "fc":
                self._original = Reps({s: self.evals[s].x for s in EVAL_SPLITS}, None, y, self.num_classes)
            elif self.setting == "partial":
                tail = net.tail("partial")
                feat = {s: predict(tail.features, self.evals[s]) for s in EVAL_SPLITS}
                cut = {s: predict(lambda x: net.pool(x).flatten(1), self.evals[s]) for s in EVAL_SPLITS}
                self._original = Reps(feat, cut, y, self.num_classes)
            else:
                self._original, _ = network_reps(net, {s: self.evals[s] for s in EVAL_SPLITS}, self.num_classes)
        return self._original

    # --- the Oracle of a forget set --------------------------------------------------------------------
    def oracle_net(self, fs: ForgetSet, required: bool = False) -> CutNet | None:
        """The Oracle of `fs`, or None when it has not been trained (with `required`: its UserError)."""
        if fs.tag not in self._oracles:
            try:
                self._oracles[fs.tag] = self.load_oracle(fs).eval()
            except UserError as e:
                self._oracles[fs.tag] = e
        net = self._oracles[fs.tag]
        if isinstance(net, UserError):
            if required:
                raise net
            return None
        return net

    def oracle_evaluation(self, fs: ForgetSet) -> tuple[Reps, dict]:
        """The Oracle on every image of train, val and test (main.py --run_rt_model): Reps and outputs."""
        net = self.oracle_net(fs, required=True)
        return self._once(("oracle_all", fs.tag), lambda: network_reps(
            net, {s: self.images(s) for s in ("train", *EVAL_SPLITS)}, self.num_classes))

    def _forget_test(self, fs: ForgetSet) -> Feed:
        test = self.evals["test"]
        return test.subset(fs.mask("test", test.targets))

    def _oracle_forget_test(self, fs: ForgetSet, net: CutNet) -> tuple[torch.Tensor, Feed]:
        """The Oracle on the forget-class test images only: (penultimate features, the same samples as
        the input of its tail in this setting)."""
        def make():
            test = self.images("test")
            sub = test.subset(fs.mask("test", test.targets))
            y = sub.targets
            if self.setting == "full":
                return rep.net_features(net, sub)[0], sub
            with torch.inference_mode():
                h = torch.cat([net.trunk(x) for x, _, _ in sub.batches(512)])
                feat = net.pool(net.last_block(h)).flatten(1)
            return feat, TensorFeed(feat if self.setting == "fc" else h, y)
        return self._once(("oracle_forget_test", fs.tag), make)

    def oracle_cka_to_original(self, fs: ForgetSet) -> float | None:
        """CKA of the Original's and the Oracle's features on the forget-class test images (None without
        an Oracle, or in HR, where no test sample is forgotten)."""
        net = self.oracle_net(fs) if fs.mode == "CR" else None
        if net is None:
            return None
        return self._once(("cka_oracle_original", fs.tag), lambda: rep.linear_cka(
            self.original().forget_features(fs), self._oracle_forget_test(fs, net)[0]))

    def _oracle_relearn(self, fs: ForgetSet, net: CutNet) -> dict[int, float]:
        """The Oracle under the rows' relearning attack: the same part of it, trained the same way."""
        def make():
            setting = self.setting
            return rep.relearn_forget_accuracy(net.tail(setting), self.images("train"), self._oracle_forget_test(fs, net)[1],
                                               self.relearn_lr, to_input=lambda x: net.features_at(x, setting))
        return self._once(("oracle_relearn", fs.tag), make)

    # --- rows -------------------------------------------------------------------------------------------
    def references(self, fs: ForgetSet, probe: bool, relearn: bool) -> dict:
        """The group's `original_probe_*` and `oracle_relearn_*` columns for this forget set (the Oracle's
        empty when it has not been trained)."""
        out = {}
        if probe:
            out.update({k: v for k, v in probe_columns(self.original(), fs, "original_").items() if "forget" in k})
        net = self.oracle_net(fs) if relearn and fs.mode == "CR" else None
        if net is not None:
            out.update({f"oracle_relearn_k{k}_forget_acc": v for k, v in self._oracle_relearn(fs, net).items()})
        return out

    def unlearn_columns(self, tail: Tail, fs: ForgetSet, probe: bool = True, cka_on: bool = True,
                        relearn: bool = True) -> dict:
        """Every representation column of an unlearning row, with the seconds each took; the group's
        shared work (Original, Oracle) is timed apart as `time_reference_s` (about 0 once cached)."""
        t0 = time.perf_counter()
        cka_on = cka_on and fs.mode == "CR"  # CKA on forget-class test samples: HR has none
        cols = self.references(fs, probe, relearn)
        if cka_on:
            self.oracle_cka_to_original(fs)
        cols["time_reference_s"] = time.perf_counter() - t0
        own: Reps | None = None
        if probe or cka_on:
            t = time.perf_counter()
            own = self._own_reps(tail)  # the features: counted with the probe (or with CKA without it)
            cols["time_probe_s" if probe else "time_cka_s"] = time.perf_counter() - t
        if probe:
            t = time.perf_counter()
            cols.update(probe_columns(own, fs))  # fc: `own` is the Original's, its probe already fitted
            cols["time_probe_s"] += time.perf_counter() - t
        if cka_on:
            t = time.perf_counter()
            net = self.oracle_net(fs)
            if self.setting == "fc":  # the features are the Original's, exactly
                cols["cka_original"], cols["cka_oracle"] = 1.0, self.oracle_cka_to_original(fs)
            else:
                mine = own.forget_features(fs)
                cols["cka_original"] = rep.linear_cka(mine, self.original().forget_features(fs))
                cols["cka_oracle"] = (rep.linear_cka(mine, self._oracle_forget_test(fs, net)[0])
                                      if net is not None else None)
            cols["time_cka_s"] = cols.get("time_cka_s", 0.0) + time.perf_counter() - t
        if relearn and fs.mode == "CR":
            t = time.perf_counter()
            acc = rep.relearn_forget_accuracy(tail, self.evals["train"], self._forget_test(fs), self.relearn_lr)
            cols.update({f"relearn_k{k}_forget_acc": v for k, v in acc.items()})
            cols["relearn_setup"] = relearn_setup(self.setting, self.relearn_lr)
            cols["time_relearn_s"] = time.perf_counter() - t
        return cols

    def _own_reps(self, tail: Tail) -> Reps:
        """An unlearned tail's Reps: fc: the Original's (the features are its input); partial: its block
        over the cached cut inputs (cut: the Original's, unchanged); full: its whole network on images."""
        orig = self.original()
        if self.setting == "fc":
            return orig
        tail.eval()
        feat, cut = {}, {}
        for s in EVAL_SPLITS:
            feat[s], cut[s] = rep.tail_features(tail, self.setting, self.evals[s])
        return Reps(feat, orig.cut if self.setting == "partial" else cut, orig.y, self.num_classes)

    def reference_row_columns(self, which: str, fs: ForgetSet, probe: bool = True, cka_on: bool = True) -> dict:
        """The representation columns of the Original's or the Oracle's own row (main.py --run_original,
        --run_rt_model), in this setting."""
        reps = self.original() if which == "original" else self.oracle_evaluation(fs)[0]
        between = self.oracle_cka_to_original(fs) if cka_on else None
        return reference_columns(reps, fs, probe, cka_on, *((1.0, between) if which == "original" else (between, 1.0)))
