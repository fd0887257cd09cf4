#!/usr/bin/env bash
#SBATCH --job-name=job_part_synth_digits
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=2
#SBATCH --time=01:00:00
#SBATCH --output=runs/logs/%x-%j.out
# Seed job script: partial-layer unlearning (last block + head) with synthetic embeddings on digits (the embedded CPU data set).
#   bash bash/job_part_synth_digits.sh METHOD LR N_MODEL SAMPLES_PER_CLASS GPU EPOCHS MODEL [NOISE]
#   sbatch bash/job_part_synth_digits.sh ...   (submit from the repository root, after mkdir -p runs/logs)
# GPU -1 = CPU. The work is done by bash/_job.sh (options, environment variables, GPU rule).
for R in "${UNLEARN_REPO:-}" "$(dirname "$0")/.." "${SLURM_SUBMIT_DIR:-}" "${SLURM_SUBMIT_DIR:-}/.."; do
  [ -f "$R/bash/_job.sh" ] && exec bash "$R/bash/_job.sh" job_part_synth_digits "$@"
done
echo "error: cannot find the repository (bash/_job.sh); run from it or set UNLEARN_REPO" >&2
exit 2
