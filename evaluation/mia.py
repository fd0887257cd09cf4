"""Membership-inference attacks (MIA) on a model's outputs: the three attacks of the metrics columns.

Every attack reads logits (N×C, any device) and labels; the per-sample features (softmax, true-class
confidence, cross-entropy loss) are computed on the device and only those leave it, as float64 numpy
arrays, for scikit-learn. Large groups are subsampled without replacement by index (numpy
`default_rng(SEED)`; at most `MAX_PER_GROUP` rows per group, `SVC_MAX_PER_GROUP` for attack a), so
the attacks are deterministic, cost seconds on a CPU even at TinyImageNet scale, and never shuffle a
torch tensor with numpy (the seed's defect that duplicated rows). An attack returns NaN when a group
it needs has fewer than `MIN_PER_GROUP` samples (or the forget set is empty) or a feature is not
finite. The protocols and the direction of "better" are in README § Metrics and membership inference.

    a. svc_softmax: the seed's attack. RBF SVC on softmax vectors, members vs non-members, over
       `SPLITS` stratified 70/30 splits (C, gamma grid-searched by 3-fold CV on the first split's 70%,
       then kept): mean held-out accuracy and chance level.
    b. efficacy: the field's MIA-efficacy (Jia et al. 2023, SalUn). SVC(C=3, gamma='auto', RBF) on the
       true-class confidence, fitted on retain-train (members) vs test (non-members), balanced;
       applied to the forget set: the fraction predicted non-member.
    c. loss_attack: logistic regression on the per-sample loss, forget vs test, balanced: 5-fold
       cross-validated accuracy; `indiscernibility` turns that accuracy into Deep Unlearn's score.
    d. auc: the ROC AUC of the loss-threshold attack (members have the lower loss), forget-train vs
       held-out forget samples and retain-train vs retain-test: no fitting, every sample used.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from core.logits import cross_entropy
from core.logits import softmax as probabilities

SEED = 0
MAX_PER_GROUP = 1000  # rows kept per group (members / non-members / forget) after subsampling
SVC_MAX_PER_GROUP = 500  # svc_softmax fits 23 SVCs on C-dim inputs: its groups are capped lower
MIN_PER_GROUP = 10  # fewer samples in a group: the attack is undefined (NaN)
SPLITS = 5  # svc_softmax: repeated stratified train/test splits
SVC_GRID = {"C": [1.0, 10.0, 100.0], "gamma": ["scale", "auto"]}
NAN = float("nan")


def softmax(logits: torch.Tensor) -> torch.Tensor:
    return probabilities(logits.float())


def confidence(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Softmax probability of each sample's true class (N,)."""
    return softmax(logits).gather(1, y.long()[:, None])[:, 0]


def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy (N,)."""
    return cross_entropy(logits.float(), y.long(), reduction="none")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A detached float64 copy on the CPU, 2-D (N×d) for scikit-learn; `t` is (N,) or (N, d)."""
    a = t.detach().to("cpu", torch.float64).numpy().copy()
    return a[:, None] if a.ndim == 1 else a


def subsample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted distinct indices: all of 0..n-1 when n <= k, else k drawn without replacement."""
    if n <= k:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


def _lean_sklearn():
    """scikit-learn without its per-call checks (parameter validation, finite inputs): the inputs are
    checked once here (`_ok`), and those checks cost about a quarter of the attacks' time."""
    import sklearn

    return sklearn.config_context(assume_finite=True, skip_parameter_validation=True)


def _ok(*groups: np.ndarray, minimum: int = MIN_PER_GROUP) -> bool:
    return all(len(g) >= minimum and np.isfinite(g).all() for g in groups)


def svc_softmax(members: torch.Tensor, non_members: torch.Tensor, seed: int = SEED,
                params: dict | None = None) -> tuple[float, float]:
    """The seed's attack: (mean held-out accuracy, chance level) of an RBF SVC telling member softmax
    vectors from non-member ones. Chance is the held-out majority-group fraction (the groups are not
    balanced, as in the seed), averaged over the same splits. The SVC's C and gamma are `params` when
    given (`svc_reference`: fitted once on the original), else grid-searched on the first split."""
    from sklearn.model_selection import GridSearchCV, StratifiedShuffleSplit
    from sklearn.svm import SVC

    rng = np.random.default_rng(seed)
    a, b = to_numpy(members), to_numpy(non_members)
    if not _ok(a, b):
        return NAN, NAN
    a, b = a[subsample(len(a), SVC_MAX_PER_GROUP, rng)], b[subsample(len(b), SVC_MAX_PER_GROUP, rng)]
    x = np.concatenate([a, b])
    y = np.concatenate([np.ones(len(a), dtype=int), np.zeros(len(b), dtype=int)])
    accs, chances = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = params  # else grid-searched on the first split's training part, reused on the others
        for tr, te in StratifiedShuffleSplit(n_splits=SPLITS, test_size=0.3, random_state=seed).split(x, y):
            if best is None:
                clf = GridSearchCV(SVC(kernel="rbf"), SVC_GRID, cv=3).fit(x[tr], y[tr])
                best = clf.best_params_
            else:
                clf = SVC(kernel="rbf", **best).fit(x[tr], y[tr])
            accs.append(float((clf.predict(x[te]) == y[te]).mean()))
            chances.append(max(y[te].mean(), 1 - y[te].mean()))
    return float(np.mean(accs)), float(np.mean(chances))


def efficacy(members: torch.Tensor, non_members: torch.Tensor, forget: torch.Tensor, seed: int = SEED) -> float:
    """MIA-efficacy: the fraction of forget samples an SVC on true-class confidence, fitted on equal
    numbers of members (retain-train) and non-members (test), predicts to be non-members."""
    from sklearn.svm import SVC

    rng = np.random.default_rng(seed)
    a, b, f = to_numpy(members), to_numpy(non_members), to_numpy(forget)
    if not (_ok(a, b) and _ok(f, minimum=1)):
        return NAN
    n = min(len(a), len(b), MAX_PER_GROUP)
    a, b, f = a[subsample(len(a), n, rng)], b[subsample(len(b), n, rng)], f[subsample(len(f), MAX_PER_GROUP, rng)]
    x = np.concatenate([a, b])
    y = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = SVC(C=3.0, gamma="auto", kernel="rbf").fit(x, y)
        return float(1.0 - clf.predict(f).mean())


def loss_attack(forget: torch.Tensor, non_members: torch.Tensor, seed: int = SEED) -> float:
    """Loss-based attack: 5-fold cross-validated accuracy of a logistic regression on the per-sample
    loss, forget samples vs equally many non-members (chance 0.5)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    a, b = to_numpy(forget), to_numpy(non_members)
    if not _ok(a, b):
        return NAN
    n = min(len(a), len(b), MAX_PER_GROUP)
    x = np.concatenate([a[subsample(len(a), n, rng)], b[subsample(len(b), n, rng)]])
    y = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the folds of cross_val_score(make_pipeline(StandardScaler(), LogisticRegression())), written out:
        # the same fits and scores at half the cost (no cloning, validation or joblib per fold)
        scores = []
        for tr, te in StratifiedKFold(n_splits=5, shuffle=True, random_state=seed).split(x, y):
            scale = StandardScaler().fit(x[tr])
            clf = LogisticRegression().fit(scale.transform(x[tr]), y[tr])
            scores.append(float((clf.predict(scale.transform(x[te])) == y[te]).mean()))
        return float(np.mean(scores))


def auc(members: torch.Tensor, non_members: torch.Tensor) -> float:
    """ROC AUC of the threshold attack that calls a sample a member when its loss is low: the chance
    that a random member has a lower loss than a random non-member (ties count half). 0.5: the two
    groups look alike; 1: every member is told apart; below 0.5: members look *less* seen than unseen
    samples (a leak too, e.g. after gradient ascent on them). All samples are used (no subsampling)."""
    from sklearn.metrics import auc as area
    from sklearn.metrics import roc_curve

    a, b = to_numpy(members)[:, 0], to_numpy(non_members)[:, 0]
    if not _ok(a, b):
        return NAN
    y = np.concatenate([np.ones(len(a), dtype=int), np.zeros(len(b), dtype=int)])
    # roc_auc_score's binary path is this curve and area, after label checks that _ok makes needless
    fpr, tpr, _ = roc_curve(y, -np.concatenate([a, b]))
    return float(area(fpr, tpr))


def indiscernibility(attack_accuracy: float) -> float:
    """Deep Unlearn's indiscernibility 1 − |acc − 0.5| / 0.5 of a balanced attack's accuracy: 1 when the
    attack is at chance, 0 when it is always right (or always wrong)."""
    return 1.0 - abs(attack_accuracy - 0.5) / 0.5


def auc_columns(outputs: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]], mode: str) -> dict:
    """Attack c (`mia_loss`), the attack-AUC columns and the indiscernibility, without the SVC attacks
    (a, b): what the Oracle's reference columns need. Groups as in `attack_columns`."""
    lo_tr, y_tr, fm_tr = outputs["train"]
    lo_te, y_te, fm_te = outputs["test"]
    test_forget = fm_te if mode == "CR" else torch.ones_like(fm_te)
    test_retain = ~fm_te
    l_tr, l_te = loss(lo_tr, y_tr), loss(lo_te, y_te)
    with _lean_sklearn():
        la = loss_attack(l_tr[fm_tr], l_te[test_forget])
        return {"mia_loss": la, "mia_auc_forget": auc(l_tr[fm_tr], l_te[test_forget]),
                "mia_auc_retain": auc(l_tr[~fm_tr], l_te[test_retain]), "mia_indisc": indiscernibility(la)}


def svc_reference(outputs: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]], mode: str,
                  seed: int = SEED) -> dict | None:
    """C and gamma of attack a, grid-searched on `outputs` (the original's): a reference fitted once per
    (original, forget set) and reused for every model unlearned from it (None when undefined)."""
    from sklearn.model_selection import GridSearchCV, StratifiedShuffleSplit
    from sklearn.svm import SVC

    lo_tr, _, fm_tr = outputs["train"]
    lo_te, _, fm_te = outputs["test"]
    rng = np.random.default_rng(seed)
    a, b = to_numpy(softmax(lo_tr[fm_tr])), to_numpy(softmax(lo_te[fm_te if mode == "CR" else torch.ones_like(fm_te)]))
    if not _ok(a, b):
        return None
    a, b = a[subsample(len(a), SVC_MAX_PER_GROUP, rng)], b[subsample(len(b), SVC_MAX_PER_GROUP, rng)]
    x = np.concatenate([a, b])
    y = np.concatenate([np.ones(len(a), dtype=int), np.zeros(len(b), dtype=int)])
    tr, _ = next(StratifiedShuffleSplit(n_splits=SPLITS, test_size=0.3, random_state=seed).split(x, y))
    with warnings.catch_warnings(), _lean_sklearn():
        warnings.simplefilter("ignore")
        return GridSearchCV(SVC(kernel="rbf"), SVC_GRID, cv=3).fit(x[tr], y[tr]).best_params_


def attack_columns(outputs: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]], mode: str,
                   svc_params: dict | None = None) -> dict:
    """`outputs[split] = (logits, labels, forget_mask)` (train and test) -> the MIA columns: the four of
    attacks a-c, the two attack AUCs and the indiscernibility (see `auc_columns`).

    Groups: CR: forget = forget-class train samples, their non-members the forget-class test
    samples (attacks a, c); MIA-efficacy's members are retain-train, non-members retain-test. HR:
    forget = the forgotten train samples, non-members all of test (every attack)."""
    lo_tr, y_tr, fm_tr = outputs["train"]
    lo_te, y_te, fm_te = outputs["test"]
    test_forget = fm_te if mode == "CR" else torch.ones_like(fm_te)
    test_retain = ~fm_te  # HR: the test split has no forget part, so this is all of test
    if not bool(fm_tr.any()):  # nothing was forgotten: no attack has a question to answer
        return dict.fromkeys(("mia_svc", "mia_svc_chance", "mia_efficacy", "mia_loss", "mia_auc_forget",
                              "mia_auc_retain", "mia_indisc"), NAN)
    with _lean_sklearn():
        svc, chance = svc_softmax(softmax(lo_tr[fm_tr]), softmax(lo_te[test_forget]), params=svc_params)
        eff = efficacy(confidence(lo_tr[~fm_tr], y_tr[~fm_tr]), confidence(lo_te[test_retain], y_te[test_retain]),
                       confidence(lo_tr[fm_tr], y_tr[fm_tr]))
    rest = auc_columns(outputs, mode)
    return {"mia_svc": svc, "mia_svc_chance": chance, "mia_efficacy": eff, "mia_loss": rest.pop("mia_loss"), **rest}
