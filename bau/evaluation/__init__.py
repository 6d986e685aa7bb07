"""Evaluation: ranking metrics, k-reciprocal re-ranking, and feature extraction and evaluation per split.

What it offers (re-exported here; each module's docstring says more):

- ``metrics``: mAP / CMC / mINP (Market protocol) without a full sort, from distances or chunked from features:
  ``METRIC_KEYS``, ``distance_matrix``, ``evaluate_features``, ``evaluate_ranking``, ``feature_block_rows``,
  ``pairwise_distance``, ``top_k_gallery``.
- ``reranking``: k-reciprocal re-ranking (Zhong et al. 2017): ``re_ranking``.
- ``inference``: features of a dataset's images, and a model's evaluation on a target (averaged over splits,
  with the geometry of its features on request): ``evaluate_target``, ``extract_features``, ``rank_split``,
  ``target_geometry``.
- ``geometry``: alignment (Eq. 1) and uniformity (Eq. 2) of a feature set, exact and chunked, overall and per
  group: ``alignment``, ``alignment_uniformity``, ``uniformity``, ``uniformity_by_group``.
"""
from bau.evaluation.geometry import alignment, alignment_uniformity, uniformity, uniformity_by_group
from bau.evaluation.inference import evaluate_target, extract_features, rank_split, target_geometry
from bau.evaluation.metrics import (
    METRIC_KEYS,
    distance_matrix,
    evaluate_features,
    evaluate_ranking,
    feature_block_rows,
    pairwise_distance,
    top_k_gallery,
)
from bau.evaluation.reranking import re_ranking

__all__ = [
    "METRIC_KEYS", "distance_matrix", "evaluate_features", "evaluate_ranking", "feature_block_rows",
    "pairwise_distance", "top_k_gallery", "re_ranking", "alignment", "alignment_uniformity", "uniformity",
    "uniformity_by_group", "evaluate_target",
    "extract_features", "rank_split", "target_geometry",
]
