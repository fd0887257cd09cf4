#!/usr/bin/env bash
#SBATCH --job-name=sweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
#SBATCH --output=runs/logs/%x-%A_%a.out
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
# One task of a sweep: runs line INDEX+1 (INDEX = $SLURM_ARRAY_TASK_ID by default) of TASKFILE, a task
# list written by sweep.py (one command a line: `python main.py --rows_file ROWS --rows START:STOP`,
# several result rows in one process). sweep.py --launcher slurm submits it as
#     sbatch --array=0-<N-1> ... bash/sweep_task.sh TASKFILE      (its options override the lines above)
# and by hand:   bash bash/sweep_task.sh TASKFILE INDEX
# The command replaces this shell (exec), so SIGTERM from Slurm (--signal before the time limit,
# preemption with --requeue, scancel) reaches python, which stops cleanly: an unfinished unlearning
# row leaves no result and is run again by the next submission (or the requeued task), which skips
# the rows already done.
# Environment: UNLEARN_REPO (repository), UNLEARN_PYTHON (interpreter used for "python"), both set by sweep.py.
set -euo pipefail
TASKS="${1:?usage: sweep_task.sh TASKFILE [INDEX]}"
I="${2:-${SLURM_ARRAY_TASK_ID:-}}"
if ! [[ "$I" =~ ^[0-9]+$ ]]; then
  echo "error: no task index (give INDEX, or run as a Slurm array task); got '$I'" >&2
  exit 2
fi
[ -f "$TASKS" ] || { echo "error: task file $TASKS not found" >&2; exit 2; }
TASKS="$(realpath "$TASKS")"
line="$(sed -n "$((I + 1))p" "$TASKS")"
if [ -z "$line" ]; then
  echo "error: $TASKS has no line $((I + 1)) (it has $(wc -l < "$TASKS"))" >&2
  exit 2
fi
REPO=""
for R in "${UNLEARN_REPO:-}" "$(dirname "$0")/.." "${SLURM_SUBMIT_DIR:-}" "${SLURM_SUBMIT_DIR:-}/.."; do
  if [ -f "$R/bash/sweep_task.sh" ] && [ -f "$R/main.py" ]; then REPO="$R"; break; fi
done
[ -n "$REPO" ] || { echo "error: cannot find the repository; set UNLEARN_REPO" >&2; exit 2; }
cd "$REPO"
if [[ "$line" == "python "* ]] && [ -x "${UNLEARN_PYTHON:-}" ]; then
  line="\"\$UNLEARN_PYTHON\" ${line#python }"
fi
echo "task $I of $TASKS on $(hostname -s)${SLURM_ARRAY_JOB_ID:+ (slurm ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}, restart ${SLURM_RESTART_COUNT:-0})}: $line"
eval "exec $line"
