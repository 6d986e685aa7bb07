"""The run layer every reader and writer shares: run folders, their lock, checkpoints, cached and written features,
seed statistics and Eq. 4 weight scores.

What it offers (re-exported here; each module's docstring says more):

- ``folder``: finding and reading run and sweep folders; preparing one for its writer (resume included): ``Run``,
  ``discover_runs``, ``open_run_folder``, ``read_summary``, ``remove_orphan_temp_files``, ``resume_config``,
  ``run_status``, ``same_value``, ``select``, ``sweep_runs``, ``truncate_log``, ``visible_walk``.
- ``lock``: one writer per run folder: ``RunLock``.
- ``checkpoint``: checkpoints as plain state_dicts + config, and models loaded from them: ``checkpoint_identity``,
  ``load_checkpoint``, ``load_model``, ``model_from_checkpoint``, ``save_checkpoint``.
- ``cache``: the ``.bau_cache`` next to a checkpoint or feature file: ``DiskCache``, ``cache_key``.
- ``feature_file``: the versioned ``.npz`` feature-file format, plain arrays in and out: ``FORMAT_VERSION``,
  ``VERSION_KEY``, ``read_arrays``, ``write_feature_file``.
- ``features``: ``FeatureSet``: a checkpoint's cached features, or a feature file's: ``FeatureSet``,
  ``collect_items``, ``combine_feature_sets``, ``extract_to_npz``, ``feature_set``, ``lookup_features``,
  ``read_feature_file``, ``subsample_per_domain``.
- ``statistics``: numbers over training seeds: mean, spread, paired differences: ``PairedDifference``, ``Spread``,
  ``paired_difference``, ``runs_by_seed``, ``seed_of``, ``spread``.
- ``weight_scores``: the Eq. 4 weight scores of augmented views of a checkpoint: ``WeightedPair``, ``batch_with``,
  ``checkpoint_weight_scores``, ``training_batch``, ``weight_scores``.
"""
from bau.runs.cache import DiskCache, cache_key
from bau.runs.checkpoint import checkpoint_identity, load_checkpoint, load_model, model_from_checkpoint, save_checkpoint
from bau.runs.feature_file import FORMAT_VERSION, VERSION_KEY, read_arrays, write_feature_file
from bau.runs.features import (
    FeatureSet,
    collect_items,
    combine_feature_sets,
    extract_to_npz,
    feature_set,
    lookup_features,
    read_feature_file,
    subsample_per_domain,
)
from bau.runs.folder import (
    Run,
    discover_runs,
    open_run_folder,
    read_summary,
    remove_orphan_temp_files,
    resume_config,
    run_status,
    same_value,
    select,
    sweep_runs,
    truncate_log,
    visible_walk,
)
from bau.runs.lock import RunLock
from bau.runs.statistics import PairedDifference, Spread, paired_difference, runs_by_seed, seed_of, spread
from bau.runs.weight_scores import WeightedPair, batch_with, checkpoint_weight_scores, training_batch, weight_scores

__all__ = [
    "Run", "discover_runs", "open_run_folder", "read_summary", "remove_orphan_temp_files", "resume_config",
    "run_status", "same_value", "select", "sweep_runs", "truncate_log", "visible_walk", "RunLock",
    "checkpoint_identity", "load_checkpoint", "load_model", "model_from_checkpoint", "save_checkpoint", "DiskCache",
    "cache_key", "FORMAT_VERSION", "VERSION_KEY", "read_arrays", "write_feature_file", "FeatureSet",
    "collect_items", "combine_feature_sets", "extract_to_npz", "feature_set", "lookup_features",
    "read_feature_file", "subsample_per_domain", "PairedDifference", "Spread", "paired_difference", "runs_by_seed",
    "seed_of", "spread", "WeightedPair", "batch_with", "checkpoint_weight_scores", "training_batch", "weight_scores",
]
