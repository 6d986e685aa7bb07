"""The run layer: run folders, lock, checkpoints, feature caches and files, seed statistics, weight scores."""
