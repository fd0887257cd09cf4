"""Metrics: accuracies, AUS, gap to the Oracle, membership-inference attacks, and the metric columns
of a result row. Computed the same way in every stage."""
