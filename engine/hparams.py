"""One table of unlearning defaults: per setting, per method, per (method, setting) and per data set.

`opts.parse_args` fills every option the user left unset from here (and from the data set's own
facts and training recipe, which live with its definition in `data/`); the CSV row records the
values actually used. A method without an entry here takes the setting's defaults.
"""

from __future__ import annotations

# Unlearning: defaults per setting (seed A: lr 0.01, 200 epochs FC-only), then per-method overrides
# (seed B: SCAR with Adam, lr 5e-4, 30 epochs, batch 1024), then per source (SOURCE_DEFAULTS). A run
# stops once its selection score has not improved for `patience` epochs.
UNLEARN_SETTING_DEFAULTS: dict[str, dict] = {
    "fc": dict(lr=0.01, epochs=200, bsize=256, patience=20),
    "partial": dict(lr=0.003, epochs=50, bsize=256, patience=10),
    "full": dict(lr=0.01, epochs=10, bsize=256),
}
UNLEARN_COMMON: dict = dict(momentum=0.9, wd=0.0, scheduler=["none"], temperature=1.0,
                            lambda_1=1.0, lambda_2=5.0, delta=0.5, gamma1=3.0, gamma2=3.0)
# Keys that are not command-line flags are method-specific extras (override with --hp KEY=VALUE):
# NGFTW alpha: retain weight (forget weight 1-alpha); SCRUB alpha/gamma: KL and CE weights of the
# min-step, msteps: epochs with a max-step (-1 = half of the epochs).
METHOD_DEFAULTS: dict[str, dict] = {
    "FT": {},
    "NG": {},
    "NGFTW": dict(alpha=0.9),
    "RL": {},
    "BS": {},
    "BE": {},
    "SCRUB": dict(temperature=2.0, alpha=1.0, gamma=1.0, msteps=-1),
    "SCAR": {},
    "SCAR_self": {},
    "DELETE": dict(scheduler=["cosine"]),
    # CMF align: weight of the class-mean terms that move the features (retain: nearest-class-mean CE;
    # forget: squared distance to the target class's mean, in units of the class spread)
    "CMF": dict(align=1.0),
}
# Seed B's SCAR recipe (Adam, lr 5e-4, 30 epochs, batch 1024) is for the whole network on images;
# on a tail, SCAR takes the setting's defaults like every other method (seed A's job scripts).
METHOD_SETTING_DEFAULTS: dict[tuple[str, str], dict] = {
    ("BE", "fc"): dict(lr=0.1),  # real inputs: the shadow row starts from scratch and needs larger steps
    ("SCAR", "full"): dict(lr=5e-4, epochs=30, bsize=1024),
    ("SCAR_self", "full"): dict(lr=5e-4, epochs=30, bsize=1024),
    ("BE", "full"): dict(lr=0.01),
    ("SCAR", "partial"): dict(lr=5e-4),  # Adam on a whole residual block: seed B's step size
    ("SCAR_self", "partial"): dict(lr=5e-4),
    # 25 max-step epochs (half of 50) drive the forget KL of a residual block to inf (measured on
    # digits: non-finite at epoch 12); SCRUB's paper uses a few max-step epochs.
    ("SCRUB", "partial"): dict(msteps=5, lr=0.01),  # at 0.003 its 5 max-steps leave the forget class
}

# Per data set, last: (data set, method or "*", setting). The seeds' whole-network recipes are for
# CIFAR-sized sets; on digits' 1,200 training images they wreck the original in one epoch (measured,
# class 3, 16 px: SCAR at Adam 5e-4 / batch 1024 keeps 10.9% retain accuracy; SGD at lr 0.01 costs
# RL/BS 8 points of retain in the first epoch and NG diverges by epoch 6; at lr 1e-3 the one forget
# batch per epoch gives NG only 5 steps and 0.76 forget accuracy).
DATASET_DEFAULTS: dict[tuple[str, str, str], dict] = {
    ("digits", "*", "full"): dict(lr=3e-3, epochs=5),
    ("digits", "SCAR", "full"): dict(lr=1e-4, bsize=128, epochs=10),
    ("digits", "SCAR_self", "full"): dict(lr=1e-4, bsize=128, epochs=10),
    # The max-step KL starts at its minimum (zero gradient): 2 max-step epochs of 5 leave test forget
    # at 0.913; max-steps in all 5 epochs reach 0.000 at epoch 5 (retain 0.983; 10 of 10 overshoot).
    ("digits", "SCRUB", "full"): dict(msteps=5),
}

# Synthetic embeddings: the generator, and the quota per class per cut (partial inputs cost a residual
# block per sample and step: 100 per class is about the size of digits' real train split).
# Per source, after the method's: (source, method or "*", setting). Source-free fc rows take the learning
# rate chosen without real data (README, "Source-free unlearning"): among 0.003 / 0.01 / 0.03, the one
# with the best held-out synthetic AUS over 5 digits originals x 10 classes (median, then worst), ties
# broken by the smallest change to the original on held-out synthetic retain samples (mean KL, the epoch
# log's `synthetic_retain_kl`): 0.03 for FT, 0.01 for SCRUB and for SCAR's Adam, 0.003 for the others.
SOURCE_DEFAULTS: dict[tuple[str, str, str], dict] = {
    ("synthetic", "*", "fc"): dict(lr=0.003),
    ("synthetic", "FT", "fc"): dict(lr=0.03),
    ("synthetic", "SCRUB", "fc"): dict(lr=0.01),
    ("synthetic", "SCAR", "fc"): dict(lr=0.01),
    ("synthetic", "SCAR_self", "fc"): dict(lr=0.01),
    # Partial SCRUB on synthetic inputs: 10 max-step epochs instead of 5. Held-out synthetic AUS over 5
    # digits originals x classes 3, 7: median 1.0 either way, worst 0.52 with 5, 1.00 with 10.
    ("synthetic", "SCRUB", "partial"): dict(msteps=10),
}

SYNTHETIC_DEFAULTS: dict = dict(noise_type="matched", samples_per_class={"fc": 500, "partial": 100})


def unlearn_defaults(method: str, setting: str, dataset: str = "", source: str = "real") -> dict:
    """Defaults for one unlearning run: common < setting < method < (method, setting) < (source, any
    method, setting) < (source, method, setting) < (data set, any method, setting) < (data set,
    method, setting)."""
    return {**UNLEARN_COMMON, **UNLEARN_SETTING_DEFAULTS[setting], **METHOD_DEFAULTS.get(method, {}),
            **METHOD_SETTING_DEFAULTS.get((method, setting), {}),
            **SOURCE_DEFAULTS.get((source, "*", setting), {}), **SOURCE_DEFAULTS.get((source, method, setting), {}),
            **DATASET_DEFAULTS.get((dataset, "*", setting), {}), **DATASET_DEFAULTS.get((dataset, method, setting), {})}
