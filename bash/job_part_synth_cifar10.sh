#!/usr/bin/env bash
#SBATCH --job-name=job_part_synth_cifar10
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=24:00:00
#SBATCH --output=runs/logs/%x-%j.out
# Seed job script: partial-layer unlearning (last block + head) with synthetic embeddings on CIFAR-10.
#   bash bash/job_part_synth_cifar10.sh METHOD LR N_MODEL SAMPLES_PER_CLASS GPU EPOCHS MODEL [NOISE]
#   sbatch bash/job_part_synth_cifar10.sh ...   (submit from the repository root, after mkdir -p runs/logs)
# GPU -1 = CPU. The work is done by bash/_job.sh (options, environment variables, GPU rule).
for R in "${UNLEARN_REPO:-}" "$(dirname "$0")/.." "${SLURM_SUBMIT_DIR:-}" "${SLURM_SUBMIT_DIR:-}/.."; do
  [ -f "$R/bash/_job.sh" ] && exec bash "$R/bash/_job.sh" job_part_synth_cifar10 "$@"
done
echo "error: cannot find the repository (bash/_job.sh); run from it or set UNLEARN_REPO" >&2
exit 2
