"""The logic behind the stage scripts at the repository root: what they share (loading inputs from
the runs tree, forget sets), the baselines and the unlearning runs. The only library layer that
holds the parsed command-line namespace."""
