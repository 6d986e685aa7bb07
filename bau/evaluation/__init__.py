"""Evaluation: ranking metrics, k-reciprocal re-ranking, feature extraction per split."""
