"""Feature extraction and evaluation of a model on a target dataset.

Features are extracted once for the union of all images of all query/gallery splits (the small
datasets have 10), then each split is ranked with ``bau.evaluation.metrics.evaluate_features``, which
computes and ranks the query-gallery distances block by block (the full ``[Q, G]`` matrix is never
held: MSMT17's would be 3.8 GB); the result is the mean over splits, each split kept in ``splits``.
Re-ranking needs the full matrices, so ``--rerank`` builds them (and ranks with ``evaluate_ranking``).

When the model is on a GPU, the distances, the ranking and the dense pass of re-ranking run there
too (torch kernels, in blocks); on the CPU, the NumPy kernels.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from bau.core.config import Config
from bau.data.datasets import build_dataset
from bau.data.loader import build_test_loader
from bau.evaluation.geometry import alignment, uniformity
from bau.evaluation.metrics import METRIC_KEYS, distance_matrix, evaluate_features, evaluate_ranking
from bau.models.reid import input_memory_format


@torch.no_grad()
def extract_features(model: torch.nn.Module, items: Sequence[tuple], cfg: Config, device: torch.device,
                     progress: bool = False, desc: str = "features", workers: Optional[int] = None) -> np.ndarray:
    """L2-normalised retrieval features ``[N, C]`` (float32) for ``(path, pid, camid, ...)`` items, in order.

    ``workers``: loader processes (default ``data.workers``; 0 for a few images, where starting a
    process costs more than decoding them)."""
    was_training = model.training
    model.eval()
    loader = build_test_loader([tuple(it[:3]) for it in items], cfg.data.height, cfg.data.width,
                               cfg.eval.batch_size, cfg.data.workers if workers is None else workers)
    chunks: List[np.ndarray] = []
    use_amp = cfg.train.amp and device.type == "cuda"
    fmt = input_memory_format(cfg)
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        with torch.autocast(device_type=device.type, enabled=use_amp):
            f = model(batch["img"].to(device, non_blocking=True, memory_format=fmt))
        chunks.append(f.float().cpu().numpy())
    model.train(was_training)
    if not chunks:
        return np.zeros((0, getattr(model, "feat_dim", 0)), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)


def _summary(results: List[Dict[str, float]]) -> Dict[str, float]:
    return {k: float(np.mean([r[k] for r in results])) for k in METRIC_KEYS}


def rank_split(qf: np.ndarray, gf: np.ndarray, query: Sequence[tuple], gallery: Sequence[tuple],
               rerank: bool = False, max_rank: int = 50,
               device: Optional[torch.device] = None) -> Dict[str, float]:
    """Metrics of one query/gallery split from its features ``qf [Q, d]``, ``gf [G, d]``.

    Without re-ranking the distances are computed and ranked in blocks of queries (never the whole
    ``[Q, G]`` matrix); ``device`` is where (default: the features' device, i.e. the CPU for NumPy).
    """
    q_pids, q_cams = np.array([it[1] for it in query]), np.array([it[2] for it in query])
    g_pids, g_cams = np.array([it[1] for it in gallery]), np.array([it[2] for it in gallery])
    if rerank:
        from bau.evaluation.reranking import re_ranking

        dist = re_ranking(*(distance_matrix(a, b, device=device) for a, b in ((qf, gf), (qf, qf), (gf, gf))))
        on_device = device is not None and torch.device(device).type != "cpu"
        r = evaluate_ranking(torch.from_numpy(dist).to(device) if on_device else dist, q_pids, g_pids, q_cams,
                             g_cams, max_rank=max_rank)
    else:
        r = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank, device=device)
    cmc = r["cmc"]
    return {"mAP": float(r["mAP"]), "rank1": float(cmc[0]), "rank5": float(cmc[min(4, len(cmc) - 1)]),
            "rank10": float(cmc[min(9, len(cmc) - 1)]), "mINP": float(r["mINP"]),
            "num_query": len(query), "num_gallery": len(gallery)}


def _rows(feats: np.ndarray, index: List[int]) -> np.ndarray:
    """``feats[index]``: a view when the rows are consecutive, else a copy."""
    if index and index == list(range(index[0], index[0] + len(index))):
        return feats[index[0]:index[0] + len(index)]
    return feats[index]


def evaluate_target(model: torch.nn.Module, name: str, cfg: Config, device: torch.device,
                    root: Optional[str] = None, splits: Optional[Sequence[int]] = None,
                    rerank: Optional[bool] = None, progress: bool = False, geometry: bool = False) -> Dict:
    """Evaluate on dataset ``name``: mean over its splits (all by default) plus each split.

    ``geometry=True`` adds ``"geometry": {"L_align", "L_uniform"}``: Eq. 1 and Eq. 2 of the
    features just extracted (every query and gallery image once; ``bau.evaluation.geometry``), and
    ``"num_images"``, how many images were extracted, and ``"geometry_s"``, the seconds it took."""
    root = root or cfg.data.root
    rerank = cfg.eval.rerank if rerank is None else rerank
    first = build_dataset(name, root, split=0, split_seed=cfg.data.split_seed, num_splits=cfg.data.num_splits)
    indices = list(range(first.num_splits)) if splits is None else list(splits)
    sets = [first if i == 0 else build_dataset(name, root, split=i, split_seed=cfg.data.split_seed,
                                               num_splits=cfg.data.num_splits) for i in indices]
    # Each image once, in the first split's query-then-gallery order: a one-split target's query and
    # gallery features are then two slices of the extracted array, not copies (MSMT17: 770 MB each).
    paths = list(dict.fromkeys(it[0] for ds in sets for it in (*ds.query, *ds.gallery)))
    feats = extract_features(model, [(p, 0, 0) for p in paths], cfg, device, progress=progress, desc=name)
    row = {p: i for i, p in enumerate(paths)}
    per_split = []
    for i, ds in zip(indices, sets):
        qf = _rows(feats, [row[it[0]] for it in ds.query])
        gf = _rows(feats, [row[it[0]] for it in ds.gallery])
        res = rank_split(qf, gf, ds.query, ds.gallery, rerank=rerank, max_rank=cfg.eval.max_rank, device=device)
        per_split.append({"split": i, **res})
    result = {"dataset": name, **_summary(per_split), "rerank": bool(rerank), "splits": per_split}
    if geometry:
        start = time.perf_counter()
        pid_of = {it[0]: it[1] for ds in sets for it in (*ds.query, *ds.gallery)}
        result["geometry"] = target_geometry(feats, np.array([pid_of[p] for p in paths]))
        result["geometry_s"] = time.perf_counter() - start
        result["num_images"] = len(paths)
    return result


# Pairs beyond which the geometry logged during training is a seeded sample of pairs (an unbiased
# estimate of each expectation in Eq. 1 / 2) rather than exact: MSMT17's 93k test images have 4e9 pairs.
GEOMETRY_MAX_PAIRS = 2_000_000


def target_geometry(feats: np.ndarray, pids: np.ndarray, max_pairs: Optional[int] = GEOMETRY_MAX_PAIRS
                    ) -> Dict[str, float]:
    """``{"L_align": Eq. 1 over the identities, "L_uniform": Eq. 2 over every row}`` of L2-normalised
    features ``[N, d]`` with pids ``[N]`` (negative pids, distractors, are in L_uniform only); exact up
    to ``max_pairs`` pairs, a seeded sample of that many pairs beyond (``bau.evaluation.geometry``)."""
    return {"L_align": alignment(feats, pids, max_pairs=max_pairs), "L_uniform": uniformity(feats, max_pairs=max_pairs)}
