"""Results collector: every results CSV under --root -> the paper-style tables (printed, and written as
CSV, Markdown and LaTeX under <root>/tables) and the figures (PNG under <root>/plots).

    python collect_results.py --root runs
    python collect_results.py --root runs --dataset digits --model resnet18 --setting fc
Filters (unset = all): --dataset --model --setting --source --method --mode --forget_mode
--forget_class --num_forget_classes. The best configuration (learning rate) per method is picked on
the val split only; see reporting/tables.py and README § Metrics. Unlearning rows without an Oracle
get one warning line with the training_oracle.py command that trains the missing ones.
"""

import sys

import opts
from core.runtime import UserError, run_stage
from reporting import tables


def main() -> None:
    args = opts.parse_args(stage="collect")
    df = tables.filter_rows(tables.load(args.root), {k: getattr(args, k) for k in tables.FILTERS})
    if df.empty:
        raise UserError(f"no result rows under {args.root} match the filters; drop a filter or run the stages first")
    n, cmd = tables.missing_oracles(df, args.root)
    if n:
        print(f"warning: {n} unlearning row(s) have no Oracle (oracle_status missing, gap_oracle empty); "
              f"train the missing Oracles with: {cmd}", file=sys.stderr)
    for t in tables.build(df):
        print(tables.to_markdown(t))
        for p in tables.write(t, args.root):
            print(f"-> {p}")
        if args.plots:
            from reporting import plots
            for p in plots.draw(t, args.root):
                print(f"-> {p}")


if __name__ == "__main__":
    run_stage(main)
