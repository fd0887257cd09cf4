"""Result CSVs (one schema, one row per run), the paper-style tables and the figures."""
