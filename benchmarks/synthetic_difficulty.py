"""Is the synthetic data set a fair test? A colour-histogram baseline must not solve it.

Reads (or generates) the synthetic domains of ``bau.data.synthetic`` and, for each target
domain, ranks its gallery for every query with hand-made colour histograms, scored with the
Market protocol (same-id same-camera gallery entries ignored) by ``bau.evaluation.metrics.evaluate_ranking``.
Three histogram variants, from naive to careful:

* ``hsv-global``: one joint HSV histogram (8x4x4 bins) of the whole image;
* ``hsv-stripes``: 6 horizontal stripes, a joint HSV histogram (8x3x3) each, concatenated;
* ``hsv-stripes-centre``: the same on the middle half of the width (less background).

Each stripe histogram is L1-normalised and images are compared with the Hellinger
(Bhattacharyya) distance ``||sqrt(h1) - sqrt(h2)||_2``.

Optionally (``--learned-epochs N``) a small CNN is trained with cross-entropy on the target's
own training ids and evaluated the same way, to show the identities *are* distinguishable by a
learned model: the gap to the histograms is what makes the data set a meaningful test.

    python benchmarks/synthetic_difficulty.py                 # generate defaults into a temp dir
    python benchmarks/synthetic_difficulty.py --data DIR --target synth_b --learned-epochs 15
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bau.evaluation.metrics import evaluate_ranking  # noqa: E402

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")
Item = Tuple[str, int, int]


def read_market_folder(folder: str) -> List[Item]:
    """``(path, pid, camid)`` for every Market-named JPEG in ``folder`` (camid 0-based)."""
    items = []
    for name in sorted(os.listdir(folder)):
        match = MARKET_NAME.match(name)
        if match and name.lower().endswith((".jpg", ".jpeg", ".png")):
            items.append((os.path.join(folder, name), int(match.group(1)), int(match.group(2)) - 1))
    if not items:
        raise SystemExit(f"error: {folder}: no Market-named images (expected NNNN_cNsN_NNNNNN_NN.jpg)")
    return items


def hsv_stripe_histogram(rgb: np.ndarray, stripes: int, bins: Tuple[int, int, int], centre: bool) -> np.ndarray:
    """Concatenated per-stripe joint HSV histograms, each L1-normalised. ``rgb``: (H, W, 3) uint8."""
    hsv = np.asarray(Image.fromarray(rgb).convert("HSV"), dtype=np.int64)
    if centre:
        w = hsv.shape[1]
        hsv = hsv[:, w // 4: w - w // 4]
    nh, ns, nv = bins
    index = (hsv[..., 0] * nh // 256) * ns * nv + (hsv[..., 1] * ns // 256) * nv + hsv[..., 2] * nv // 256
    n_bins = nh * ns * nv
    rows = np.array_split(np.arange(hsv.shape[0]), stripes)
    parts = []
    for r in rows:
        h = np.bincount(index[r].reshape(-1), minlength=n_bins).astype(np.float64)
        parts.append(h / max(1.0, h.sum()))
    return np.concatenate(parts)


BASELINES: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "hsv-global": lambda im: hsv_stripe_histogram(im, 1, (8, 4, 4), centre=False),
    "hsv-stripes": lambda im: hsv_stripe_histogram(im, 6, (8, 3, 3), centre=False),
    "hsv-stripes-centre": lambda im: hsv_stripe_histogram(im, 6, (8, 3, 3), centre=True),
}


def hellinger_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[Q, G]`` Euclidean distances between the square roots of non-negative histograms ``a`` [Q, D], ``b`` [G, D]."""
    sa, sb = np.sqrt(a), np.sqrt(b)
    sq = (sa ** 2).sum(1)[:, None] + (sb ** 2).sum(1)[None, :] - 2.0 * sa @ sb.T
    return np.sqrt(np.maximum(sq, 0.0))


def load_images(items: List[Item]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path, _, _ in items])


def score(dist: np.ndarray, query: List[Item], gallery: List[Item]) -> Dict[str, float]:
    result = evaluate_ranking(dist, np.array([p for _, p, _ in query]), np.array([p for _, p, _ in gallery]),
                              np.array([c for _, _, c in query]), np.array([c for _, _, c in gallery]), max_rank=50)
    return {"mAP": 100.0 * result["mAP"], "rank1": 100.0 * float(result["cmc"][0]),
            "rank5": 100.0 * float(result["cmc"][4])}


# -- an optional learned reference --------------------------------------------------------------
def learned_baseline(train: List[Item], query: List[Item], gallery: List[Item], epochs: int, seed: int
                     ) -> Dict[str, float]:
    """A small CNN trained with softmax cross-entropy on ``train`` ids, scored by cosine distance."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(seed)
    pids = sorted({p for _, p, _ in train})
    label = {p: i for i, p in enumerate(pids)}

    def tensors(items: List[Item]) -> torch.Tensor:
        x = torch.from_numpy(load_images(items)).permute(0, 3, 1, 2).float() / 255.0
        return F.interpolate(x, size=(64, 32), mode="bilinear", align_corners=False, antialias=True)

    x_train, y_train = tensors(train), torch.tensor([label[p] for _, p, _ in train])
    mean, std = x_train.mean((0, 2, 3), keepdim=True), x_train.std((0, 2, 3), keepdim=True)

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2))

    body = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(128, 128), nn.BatchNorm1d(128))
    head = nn.Linear(128, len(pids))
    params = list(body.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=3e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((len(train) + 63) // 64))
    for _ in range(epochs):
        body.train()
        order = torch.randperm(len(train))
        for start in range(0, len(train), 64):
            idx = order[start:start + 64]
            x = (x_train[idx] - mean) / std
            flip = torch.rand(len(idx)) < 0.5  # mirrored images are the same person
            x[flip] = x[flip].flip(-1)
            loss = F.cross_entropy(head(body(x)), y_train[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    body.eval()
    with torch.no_grad():
        fq = F.normalize(body((tensors(query) - mean) / std), dim=1)
        fg = F.normalize(body((tensors(gallery) - mean) / std), dim=1)
    return score((1.0 - fq @ fg.T).numpy(), query, gallery)


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="folder written by bau.data.synthetic.generate (default: generate into a temp dir)")
    ap.add_argument("--target", action="append", help="domain to evaluate (repeatable; default: every domain)")
    ap.add_argument("--domains", type=int, default=4, help="domains to generate when --data is not given")
    ap.add_argument("--ids", type=int, default=240, help="ids per domain to generate when --data is not given")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0, help="generation processes (0 = one per core)")
    ap.add_argument("--learned-epochs", type=int, default=0,
                    help="also train a small CNN on the target's training ids for N epochs (0 = skip)")
    ap.add_argument("--json", help="write the results here as JSON")
    args = ap.parse_args(argv)

    tmp = None
    data = args.data
    if data is None or not os.path.isfile(os.path.join(data, "synthetic.json")):
        from bau.data.synthetic import format_stats, generate

        if data is None:
            tmp = tempfile.TemporaryDirectory(prefix="bau_synth_")
            data = tmp.name
        start = time.perf_counter()
        stats = generate(data, num_domains=args.domains, ids_per_domain=args.ids, seed=args.seed,
                         workers=args.workers)
        print(f"generated {data} in {time.perf_counter() - start:.1f} s "
              f"({os.cpu_count()} CPU cores, workers={args.workers or os.cpu_count()})")
        print(format_stats(stats))
    with open(os.path.join(data, "synthetic.json")) as f:
        domains = list(json.load(f)["domains"])
    targets = args.target or domains
    unknown = [t for t in targets if t not in domains]
    if unknown:
        raise SystemExit(f"error: --target {unknown[0]}: not in {data}; expected one of {', '.join(domains)}")

    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    print(f"\n{'target':<10} {'method':<20} {'mAP':>6} {'R1':>6} {'R5':>6}   (%; Market protocol)")
    for target in targets:
        root = os.path.join(data, target)
        query = read_market_folder(os.path.join(root, "query"))
        gallery = read_market_folder(os.path.join(root, "bounding_box_test"))
        q_img, g_img = load_images(query), load_images(gallery)
        results[target] = {}
        for method, feature in BASELINES.items():
            fq = np.stack([feature(im) for im in q_img])
            fg = np.stack([feature(im) for im in g_img])
            results[target][method] = score(hellinger_distance(fq, fg), query, gallery)
        if args.learned_epochs > 0:
            start = time.perf_counter()
            train = read_market_folder(os.path.join(root, "bounding_box_train"))
            results[target]["cnn-in-domain"] = learned_baseline(train, query, gallery, args.learned_epochs, args.seed)
            results[target]["cnn-in-domain"]["seconds"] = time.perf_counter() - start
        for method, r in results[target].items():
            print(f"{target:<10} {method:<20} {r['mAP']:>6.1f} {r['rank1']:>6.1f} {r['rank5']:>6.1f}")
    best = {t: max(r[m]["mAP"] for m in BASELINES) for t, r in results.items()}
    print("\nbest histogram mAP per domain: " + ", ".join(f"{t} {v:.1f}%" for t, v in best.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
