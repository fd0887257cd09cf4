#!/usr/bin/env bash
#SBATCH --job-name=job_multiclass_real_digits
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=2
#SBATCH --time=01:00:00
#SBATCH --output=runs/logs/%x-%j.out
# Seed job script: multi-class FC-only unlearning with real embeddings on digits (the embedded CPU data set).
#   bash bash/job_multiclass_real_digits.sh METHOD LR N_MODEL SAMPLES_PER_CLASS GPU EPOCHS MODEL [NUM_FORGET]
#   sbatch bash/job_multiclass_real_digits.sh ...   (submit from the repository root, after mkdir -p runs/logs)
# GPU -1 = CPU. The work is done by bash/_job.sh (options, environment variables, GPU rule).
for R in "${UNLEARN_REPO:-}" "$(dirname "$0")/.." "${SLURM_SUBMIT_DIR:-}" "${SLURM_SUBMIT_DIR:-}/.."; do
  [ -f "$R/bash/_job.sh" ] && exec bash "$R/bash/_job.sh" job_multiclass_real_digits "$@"
done
echo "error: cannot find the repository (bash/_job.sh); run from it or set UNLEARN_REPO" >&2
exit 2
