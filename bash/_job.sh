#!/usr/bin/env bash
# The one implementation behind the seed's job scripts bash/job_<kind>_<dataset>.sh, which call
#     bash _job.sh job_<kind>_<dataset> METHOD LR N_MODEL SAMPLES_PER_CLASS GPU EPOCHS MODEL [NOISE] [NUM_FORGET]
# kind:    real | synth | part_real | part_synth | multiclass_real | multiclass_synth
# dataset: cifar10 | cifar100 | tiny (TinyImageNet) | digits
# It runs main.py once, which unlearns every forget class of the data set in turn (multiclass: the
# first NUM_FORGET classes of the fixed permutation, or each k of the data set's multi_k) for the originals
# m0..m<N_MODEL-1>, skipping runs whose result row exists. Every argument changes the runs and their ids:
# SAMPLES_PER_CLASS is the synthetic quota per class, and with real embeddings keeps at most that many
# train samples of each class (drawn with --seed). GPU -1 = CPU. Environment:
#   UNLEARN_ROOT    runs tree (default: <repo>/runs)       UNLEARN_PYTHON  interpreter (default: python)
#   UNLEARN_ARGS    extra main.py options, e.g. "--forget_class 3 --save_model"
set -euo pipefail

NAME="${1:?usage: _job.sh job_<kind>_<dataset> ARGS...}"
shift
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
core="${NAME#job_}"
# Seed A's job scripts pass --bsize 1024 --patience 50 to every run on its data sets; so do these (a
# flag in UNLEARN_ARGS overrides them). digits keeps main.py's defaults (engine/hparams.py).
SEED_OPTS=(--bsize 1024 --patience 50)
case "$core" in
  *_cifar100) DATASET=cifar100 ;;
  *_cifar10) DATASET=cifar10 ;;
  *_tiny) DATASET=TinyImageNet ;;
  *_digits) DATASET=digits; SEED_OPTS=() ;;
  *) echo "error: unknown job script $NAME (expected job_<kind>_<cifar10|cifar100|tiny|digits>)" >&2; exit 2 ;;
esac
KIND="${core%_*}"
case "$KIND" in
  real)             SETTING=fc;      SOURCE=real;      MULTI=0; MAXARGS=7 ;;
  synth)            SETTING=fc;      SOURCE=synthetic; MULTI=0; MAXARGS=8 ;;
  part_real)        SETTING=partial; SOURCE=real;      MULTI=0; MAXARGS=7 ;;
  part_synth)       SETTING=partial; SOURCE=synthetic; MULTI=0; MAXARGS=8 ;;
  multiclass_real)  SETTING=fc;      SOURCE=real;      MULTI=1; MAXARGS=8 ;;
  multiclass_synth) SETTING=fc;      SOURCE=synthetic; MULTI=1; MAXARGS=9 ;;
  *) echo "error: unknown job kind '$KIND' in $NAME" >&2; exit 2 ;;
esac

usage() {
  local extra="" example="FT 0.01 1 5000 0 200 resnet18" what="every forget class of $DATASET in turn"
  [ "$SOURCE" = synthetic ] && extra=" [NOISE]" && example="$example gaussian"
  [ "$MULTI" = 1 ] && extra="$extra [NUM_FORGET]" && example="$example 10" \
    && what="the first NUM_FORGET classes of $DATASET's fixed permutation"
  {
    echo "usage: $NAME.sh METHOD LR N_MODEL SAMPLES_PER_CLASS GPU EPOCHS MODEL$extra"
    echo "  $SETTING unlearning with $SOURCE embeddings: $what, originals m0..m<N_MODEL-1>"
    echo "  GPU: device index, -1 = CPU (under Slurm: index among the allocated GPUs)"
    [ "$SOURCE" = synthetic ] && echo "  NOISE: gaussian|uniform|laplace|gumbel|bernoulli (default gaussian)"
    [ "$MULTI" = 1 ] && echo "  NUM_FORGET: classes forgotten at once (default: each k of the data set's multi_k list in turn)"
    echo "  e.g.  bash bash/$NAME.sh $example"
    echo "        sbatch bash/$NAME.sh $example   (from the repository root, after mkdir -p runs/logs)"
  } >&2
  exit 2
}
if [ $# -lt 7 ] || [ $# -gt "$MAXARGS" ]; then
  range=7; [ "$MAXARGS" -gt 7 ] && range="7 to $MAXARGS"
  echo "error: $NAME.sh takes $range arguments, got $#" >&2
  usage
fi
METHOD=$1 LR=$2 N_MODEL=$3 SPC=$4 GPU=$5 EPOCHS=$6 MODEL=$7
NOISE=gaussian NUM_FORGET=""
if [ "$SOURCE" = synthetic ] && [ $# -ge 8 ]; then NOISE=$8; fi
if [ "$MULTI" = 1 ]; then
  if [ "$SOURCE" = synthetic ] && [ $# -ge 9 ]; then NUM_FORGET=$9; fi
  if [ "$SOURCE" = real ] && [ $# -ge 8 ]; then NUM_FORGET=$8; fi
fi
if ! [[ "$GPU" =~ ^-?[0-9]+$ ]] || [ "$GPU" -lt -1 ]; then
  echo "error: GPU must be a device index or -1 for the CPU, got '$GPU'" >&2
  usage
fi

# GPU: -1 = CPU. When CUDA_VISIBLE_DEVICES is already set (Slurm sets it to the allocated GPUs), GPU
# indexes the visible devices (0 = the first allocated one); otherwise only GPU is made visible.
if [ "$GPU" -lt 0 ]; then
  CUDA=-1
elif [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
  CUDA=$GPU
else
  export CUDA_VISIBLE_DEVICES=$GPU
  CUDA=0
fi

if [ -n "${UNLEARN_ROOT:-}" ]; then
  UNLEARN_ROOT="$(realpath -m "$UNLEARN_ROOT")"
  export UNLEARN_ROOT
fi
cmd=("${UNLEARN_PYTHON:-python}" main.py --run_name "$NAME" --dataset "$DATASET" --model "$MODEL" --method "$METHOD"
     --lr "$LR" --n_model "$N_MODEL" --samples_per_class "$SPC" --epochs "$EPOCHS" --setting "$SETTING"
     --source "$SOURCE" --cuda "$CUDA" "${SEED_OPTS[@]}")
[ "$SOURCE" = synthetic ] && cmd+=(--noise_type "$NOISE")
[ "$MULTI" = 1 ] && cmd+=(--forget_mode multi)
[ -n "$NUM_FORGET" ] && cmd+=(--num_forget_classes "$NUM_FORGET")
read -r -a extra_args <<< "${UNLEARN_ARGS:-}"
cmd+=("${extra_args[@]}")

cd "$REPO"
echo "$NAME on $(hostname -s) ${SLURM_JOB_ID:+(slurm job $SLURM_JOB_ID) }CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}: ${cmd[*]}"
# exec: SIGTERM (time limit, preemption, scancel) reaches python itself, which stops cleanly.
exec "${cmd[@]}"
