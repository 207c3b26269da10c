"""Ray Tune orchestration: YAML search spaces, the trial function, the experiment driver, summaries."""
