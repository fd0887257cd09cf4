#!/usr/bin/env bash
# The README's main job: the whole pipeline on the embedded `digits` data set, on CPU, in a few minutes.
#   1 train an original ResNet-18        4 retrain the Oracle without class $FORGET_CLASS
#   2 cache its fc/partial embeddings    5 every method, fc setting, on real and on synthetic embeddings
#   3 evaluate it for every forget class 6 table (method x source: test retain/forget accuracy, AUS, MIA,
#                                          gap to the Oracle, time) and plots, via collect_results.py
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
step "5/6 every method, fc, real and synthetic (one process, one progress bar)"
# shellcheck disable=SC2086
python main.py "${COMMON[@]}" --forget_class "$FORGET_CLASS" --method $METHODS --setting fc --source real synthetic
step "6/6 results ($UNLEARN_ROOT/results)"
python collect_results.py "${COMMON[@]}" --setting fc --forget_class "$FORGET_CLASS"
