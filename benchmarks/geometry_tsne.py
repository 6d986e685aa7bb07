"""Time and memory of the analysis library on a feature file's worth of data.

Measures, on ``--n`` random unit features of ``--dim`` dimensions (20,000 x 2,048 by default,
the size of a Market-1501 test set or a sampled source training set):

* ``alignment`` (Eq. 1, exact, centred per identity; ``--ids`` identities),
* ``uniformity`` (Eq. 2, exact, blocks of ``--chunk-size`` rows),
* ``uniformity`` sub-sampled to ``--max-pairs`` pairs, with its difference to the exact value,
* ``tsne`` of ``--tsne-n`` points (PCA to 50 dims, then t-SNE with ``--backend``).

Each measurement runs in its own fresh process, which makes the features first and then
reports the wall time, CPU time and the growth of its peak resident memory (``ru_maxrss``) over
the memory it held before the call, i.e. the extra memory the function needed on top of the
features themselves.

    python benchmarks/geometry_tsne.py                    # 20,000 x 2,048, t-SNE on 20,000 (minutes)
    python benchmarks/geometry_tsne.py --n 5000 --tsne-n 2000
    python benchmarks/geometry_tsne.py --skip-tsne --json out.json
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from typing import Dict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def make_features(n: int, dim: int, ids: int, seed: int = 0):
    """Clustered unit features (identities around random centres), built in float32 chunks so
    making them never needs a float64 copy of the whole set."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim), dtype=np.float32)
    pids = rng.integers(0, ids, n)
    feats = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 2048):
        block = centres[pids[s:s + 2048]] + 0.8 * rng.standard_normal((len(pids[s:s + 2048]), dim), dtype=np.float32)
        feats[s:s + 2048] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return feats, pids


def _run(task: str, args: Dict, queue) -> None:
    import torch

    torch.set_num_threads(args["threads"])
    from analysis.embedding import tsne
    from bau.evaluation.geometry import alignment, uniformity

    n = args["tsne_n"] if task == "tsne" else args["n"]
    feats, pids = make_features(n, args["dim"], args["ids"])
    # Warm up on a tiny input first: torch loads its kernels and thread pools lazily, which is
    # memory the process pays once, not memory the measured call needs.
    alignment(feats[:64], pids[:64] % 4)
    uniformity(feats[:64])
    before = _current_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    extra = {}
    if task == "alignment":
        value = alignment(feats, pids, chunk_size=args["chunk_size"])
    elif task == "uniformity":
        value = uniformity(feats, chunk_size=args["chunk_size"])
    elif task == "uniformity_sampled":
        value = uniformity(feats, max_pairs=args["max_pairs"], seed=0, chunk_size=args["chunk_size"])
    else:
        emb = tsne(feats, seed=0, backend=args["backend"], n_jobs=args["threads"])
        value = float(np.abs(emb).max())
        from analysis.embedding import available_backends

        extra["backend"] = available_backends()[0] if args["backend"] == "auto" else args["backend"]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_rss_mb()
    queue.put({"task": task, "n": n, "dim": args["dim"], "value": value, "wall_s": wall, "cpu_s": cpu,
               "features_mb": feats.nbytes / 2**20,
               # upper bound: if making the features peaked higher than the call, this overstates
               "extra_peak_mb": max(0.0, peak - before), "process_peak_mb": peak,
               **extra})


def measure(task: str, args: Dict) -> Dict:
    ctx = mp.get_context("spawn")  # a fresh process: its peak memory is this task's alone
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(task, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="features for alignment/uniformity")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--ids", type=int, default=750, help="identities (positive-pair groups)")
    ap.add_argument("--tsne-n", type=int, default=None, help="points for t-SNE (default: --n)")
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--max-pairs", type=int, default=1_000_000)
    ap.add_argument("--backend", default="sklearn", help="t-SNE backend: sklearn, opentsne, auto")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-tsne", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = vars(ap.parse_args())
    args["tsne_n"] = args["tsne_n"] or args["n"]
    tasks = ["alignment", "uniformity", "uniformity_sampled"] + ([] if args["skip_tsne"] else ["tsne"])
    results = []
    print(f"# {args['n']} x {args['dim']} float32 features ({args['n'] * args['dim'] * 4 / 2**20:.0f} MB), "
          f"{args['threads']} threads, chunk {args['chunk_size']}", flush=True)
    exact_u = None
    for task in tasks:
        r = measure(task, args)
        if task == "uniformity":
            exact_u = r["value"]
        if task == "uniformity_sampled" and exact_u is not None:
            r["abs_error_vs_exact"] = abs(r["value"] - exact_u)
        results.append(r)
        note = f"  |err| {r['abs_error_vs_exact']:.2e}" if "abs_error_vs_exact" in r else ""
        note += f"  backend {r['backend']}" if "backend" in r else ""
        print(f"{task:20s} n={r['n']:6d}  value {r['value']:+.5f}  wall {r['wall_s']:7.1f} s  cpu {r['cpu_s']:7.1f} s  "
              f"extra peak {r['extra_peak_mb']:6.0f} MB (process {r['process_peak_mb']:5.0f} MB){note}", flush=True)
    if args["json"]:
        from bau.core.atomic import atomic_write_json

        atomic_write_json(args["json"], {"args": args, "results": results})


if __name__ == "__main__":
    main()
