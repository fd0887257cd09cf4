#!/usr/bin/env bash
# The README's main job: the whole pipeline on the embedded `digits` data set, on CPU, in a few minutes.
#   1 train an original ResNet-18        4 retrain the Oracle without class $FORGET_CLASS
#   2 cache its fc/partial embeddings    5 every method, fc setting, on real and on synthetic embeddings
#   3 evaluate it for every forget class 6 print method x source: test retain/forget accuracy, AUS, time
# Finished work is skipped on a rerun (delete $UNLEARN_ROOT or pass --overwrite through EXTRA to redo).
# Environment: UNLEARN_ROOT (runs tree, default ./runs), FORGET_CLASS (default 3), DATASET, MODEL,
# METHODS (default: all), EXTRA (more flags for every stage, e.g. "--cuda 0").
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/bash/setup_env.sh"
cd "$REPO"
export UNLEARN_ROOT="${UNLEARN_ROOT:-$REPO/runs}"
DATASET="${DATASET:-digits}" MODEL="${MODEL:-resnet18}" FORGET_CLASS="${FORGET_CLASS:-3}"
METHODS="${METHODS:-$(python -c 'from methods import list_methods; print(*list_methods())')}"
# shellcheck disable=SC2206
COMMON=(--dataset "$DATASET" --model "$MODEL" ${EXTRA:-})
step() { echo; echo "== $*"; }

step "1/6 original";            python training_original.py "${COMMON[@]}" --n_model 1
step "2/6 embeddings";          python create_embeddings.py "${COMMON[@]}"
step "3/6 original, per class"; python test_originalmodel_singleclass.py "${COMMON[@]}"
step "4/6 Oracle c$FORGET_CLASS"; python training_oracle.py "${COMMON[@]}" --forget_class "$FORGET_CLASS"
for source in real synthetic; do
  for method in $METHODS; do
    step "5/6 $method fc $source"
    python main.py "${COMMON[@]}" --forget_class "$FORGET_CLASS" --method "$method" --setting fc --source "$source"
  done
done
step "6/6 results ($UNLEARN_ROOT/results)"
python - "$UNLEARN_ROOT" "$DATASET" "$MODEL" "c$FORGET_CLASS" <<'EOF'
import sys
import pandas as pd
import results
root, dataset, model, tag = sys.argv[1:]
def rows(kind):
    df = pd.DataFrame(list(results.existing(root, kind).values()))
    return df[(df.dataset == dataset) & (df.model == model) & (df.forget_tag == tag)]
for kind in ("original", "oracle"):
    r = rows(kind).iloc[-1]
    print(f"{kind:>8}: test retain {float(r.test_retain_acc):.4f}  test forget {float(r.test_forget_acc):.4f}")
df = rows("unlearn")
df = df[df.setting == "fc"]
cols = ["test_retain_acc", "test_forget_acc", "aus", "time_unlearn_s"]
table = df.set_index(["method", "source"])[cols].astype(float).unstack("source").swaplevel(axis=1).sort_index(axis=1)
pd.set_option("display.width", 200)
print(table.round(4).to_string())
EOF
