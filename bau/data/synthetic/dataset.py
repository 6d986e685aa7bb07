"""``generate``: every domain planned, rendered (in worker processes) and moved into place; ``format_stats``.

Rendering is split into tasks, each a chunk of ids of one domain; a task draws everything from
generators keyed by ``(seed, domain, what, ids...)``, so the files do not depend on the number of
workers or on which task finishes first. A domain is written to a hidden ``.NAME.partial`` folder
and renamed into place once complete; ``synthetic.json`` is written last, atomically.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_all_start_methods, get_context
from typing import Dict, List, Optional, Tuple

import numpy as np

from bau.core.atomic import atomic_write_json
from bau.core.errors import BauError
from bau.data.synthetic.camera import Camera, camera_canvas, make_camera
from bau.data.synthetic.domains import SPLIT_DIRS, Shot, domain_names, plan_domain
from bau.data.synthetic.identity import Person, sample_person
from bau.data.synthetic.render import render_image
from bau.data.synthetic.styles import DomainStyle, domain_style

GENERATOR_VERSION = 1  # bump when the drawing changes: a stored synthetic.json with another version is stale
IDS_PER_TASK = 40  # small enough to balance two cores, large enough to reuse the scenes


# -- rendering (one task = a chunk of ids of one domain; picklable for worker processes) --------
@dataclass
class _Task:
    folder: str
    seed: int
    domain: int
    style: DomainStyle
    height: int
    width: int
    shots: List[Shot] = field(default_factory=list)


def _render_task(task: _Task) -> int:
    """Render and write every shot of ``task``; returns the number of images written."""
    ch, cw = camera_canvas(task.style, task.height, task.width)
    cameras: Dict[int, Camera] = {}
    people: Dict[int, Person] = {}
    for shot in task.shots:
        if shot.cam not in cameras:
            cameras[shot.cam] = make_camera(np.random.default_rng([task.seed, task.domain, 2, shot.cam]), task.style,
                                            ch, cw)
        if shot.pid not in people:
            people[shot.pid] = sample_person(np.random.default_rng([task.seed, task.domain, 1, shot.pid]), task.style)
        rng = np.random.default_rng([task.seed, task.domain, 3, shot.pid, shot.index])
        occluder = sample_person(rng, task.style) if rng.random() < task.style.occlusion_prob else None
        img = render_image(people[shot.pid], cameras[shot.cam], task.style, rng, task.height, task.width, occluder)
        buffer = io.BytesIO()  # encode in memory, then one write: file creation is the slow part here
        img.save(buffer, "JPEG", quality=task.style.jpeg_quality)
        with open(os.path.join(task.folder, SPLIT_DIRS[shot.split], shot.filename), "wb") as f:
            f.write(buffer.getvalue())
    return len(task.shots)


def _describe(shots: List[Shot], split: str) -> Dict[str, int]:
    sel = [s for s in shots if s.split == split]
    return {"ids": len({s.pid for s in sel}), "images": len(sel), "cameras": len({s.cam for s in sel})}


# -- options and existing output ----------------------------------------------------------------
def _options(num_domains: int, ids_per_domain: int, seed: int, height: int, width: int,
             images_per_id: Optional[int], num_cameras: Optional[int]) -> Dict[str, object]:
    return {"num_domains": num_domains, "ids_per_domain": ids_per_domain, "seed": seed, "height": height,
            "width": width, "images_per_id": images_per_id, "num_cameras": num_cameras}


def _check_options(num_domains: int, ids_per_domain: int, height: int, width: int, images_per_id: Optional[int],
                   num_cameras: Optional[int], workers: int) -> None:
    if num_domains < 1:
        raise BauError(f"synthetic option num_domains={num_domains}: expected >= 1")
    if ids_per_domain < 2:
        raise BauError(f"synthetic option ids_per_domain={ids_per_domain}: expected >= 2 (train and test ids)")
    if height < 128 or width < 64:
        raise BauError(f"synthetic option height x width = {height}x{width}: expected at least 128x64")
    if images_per_id is not None and images_per_id < 4:
        raise BauError(f"synthetic option images_per_id={images_per_id}: expected >= 4 "
                       "(two cameras with two images each, so every query has a cross-camera match)")
    if num_cameras is not None and not 2 <= num_cameras <= 9:
        raise BauError(f"synthetic option num_cameras={num_cameras}: expected 2..9 (Market names use one digit)")
    if workers < 0:
        raise BauError(f"synthetic option workers={workers}: expected >= 0 (0 = one per CPU core)")


def _stored_result(out_dir: str, names: List[str], options: Dict[str, object]) -> Optional[Dict[str, object]]:
    """The ``synthetic.json`` of ``out_dir`` if it describes this exact data set and its folders are there."""
    meta_path = os.path.join(out_dir, "synthetic.json")
    if not os.path.isfile(meta_path):
        return None
    try:
        with open(meta_path) as f:
            stored = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    if (isinstance(stored, dict) and stored.get("version") == GENERATOR_VERSION
            and stored.get("options") == options
            and all(os.path.isdir(os.path.join(out_dir, n, d)) for n in names for d in SPLIT_DIRS.values())):
        return stored
    return None


# -- planning, rendering, moving into place ---------------------------------------------------------
def _prepare_domain(out_dir: str, name: str, d: int, seed: int, ids_per_domain: int, height: int, width: int,
                    images_per_id: Optional[int], num_cameras: Optional[int]
                    ) -> Tuple[str, List[_Task], Dict[str, object]]:
    """Plan domain ``d``, create its empty partial folder; returns the folder, its tasks and its statistics."""
    style = domain_style(seed, d)
    cams = num_cameras if num_cameras is not None else style.num_cameras
    shots = plan_domain(np.random.default_rng([seed, d, 0]), style, ids_per_domain, cams, images_per_id)
    folder = os.path.join(out_dir, f".{name}.partial")  # renamed into place once complete
    if os.path.exists(folder):
        shutil.rmtree(folder)
    for sub in SPLIT_DIRS.values():
        os.makedirs(os.path.join(folder, sub))
    by_pid: Dict[int, List[Shot]] = {}
    for shot in shots:
        by_pid.setdefault(shot.pid, []).append(shot)
    pids = sorted(by_pid)
    tasks = []
    for i in range(0, len(pids), IDS_PER_TASK):
        ids = pids[i:i + IDS_PER_TASK]
        tasks.append(_Task(folder, seed, d, style, height, width, [s for p in ids for s in by_pid[p]]))
    info: Dict[str, object] = {split: _describe(shots, split) for split in SPLIT_DIRS}
    info["num_cameras"] = cams
    info["style"] = asdict(style)
    return folder, tasks, info


def _render_all(tasks: List[_Task], workers: int, partial: Dict[str, str]) -> None:
    """Run ``tasks`` in ``workers`` processes (0 = one per core); on any failure remove the partial folders."""
    n_workers = min(workers or (os.cpu_count() or 1), len(tasks))
    try:
        if n_workers <= 1:
            for task in tasks:
                _render_task(task)
        else:
            # fork keeps start-up cheap; the output does not depend on which process draws what.
            method = "fork" if "fork" in get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context(method)) as pool:
                list(pool.map(_render_task, tasks))
    except BaseException:  # Ctrl-C or a failure: leave no half-written domain behind
        for folder in partial.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise


def generate(out_dir: str, num_domains: int = 4, ids_per_domain: int = 240, seed: int = 0, height: int = 128,
             width: int = 64, images_per_id: Optional[int] = None, num_cameras: Optional[int] = None,
             workers: int = 0, overwrite: bool = False) -> Dict[str, object]:
    """Write ``num_domains`` synthetic domains under ``out_dir`` and return their statistics.

    ``images_per_id`` / ``num_cameras``: ``None`` keeps each domain's own habits (they differ
    between domains on purpose); a number forces it for every domain. ``workers``: processes
    (0 = one per core); the output does not depend on it. If ``out_dir`` already holds this exact
    data set (same options, seed and generator version) it is reused; other existing domain
    folders are only replaced with ``overwrite=True``.

    Returns the content of ``out_dir/synthetic.json``: ``{"generator", "version", "seed",
    "options", "domains": {name: {"train"|"query"|"gallery": {"ids", "images", "cameras"},
    "style": {...}}}}``.
    """
    _check_options(num_domains, ids_per_domain, height, width, images_per_id, num_cameras, workers)
    options = _options(num_domains, ids_per_domain, seed, height, width, images_per_id, num_cameras)
    names = domain_names(num_domains)
    if not overwrite:
        stored = _stored_result(out_dir, names, options)
        if stored is not None:
            return stored
        for name in names:
            target = os.path.join(out_dir, name)
            if os.path.exists(target):
                raise BauError(f"synthetic output {target}: already exists and holds other data; "
                               "choose another folder or overwrite it (--force)")
    os.makedirs(out_dir, exist_ok=True)

    tasks: List[_Task] = []
    domains: Dict[str, Dict[str, object]] = {}
    partial: Dict[str, str] = {}
    for d, name in enumerate(names):
        partial[name], domain_tasks, domains[name] = _prepare_domain(
            out_dir, name, d, seed, ids_per_domain, height, width, images_per_id, num_cameras)
        tasks.extend(domain_tasks)
    _render_all(tasks, workers, partial)

    for name, folder in partial.items():
        target = os.path.join(out_dir, name)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(folder, target)
    stats: Dict[str, object] = {"generator": "bau.data.synthetic", "version": GENERATOR_VERSION, "seed": seed,
                                "options": options, "domains": domains}
    atomic_write_json(os.path.join(out_dir, "synthetic.json"), stats)
    return stats


def format_stats(stats: Dict[str, object]) -> str:
    """A readable table of ``generate``'s result: ids / images / cameras per split and domain."""
    domains = stats.get("domains", {})
    if not isinstance(domains, dict):
        raise BauError("synthetic stats: expected a 'domains' mapping (the result of generate)")
    header = f"{'domain':<10} {'scene':<24} " + " ".join(f"{s + ' ids/imgs/cams':>24}" for s in SPLIT_DIRS)
    lines = [header, "-" * len(header)]
    totals = {s: [0, 0] for s in SPLIT_DIRS}
    for name, info in domains.items():
        cells = []
        for split in SPLIT_DIRS:
            c = info[split]
            cells.append(f"{c['ids']:>8} / {c['images']:>6} / {c['cameras']:>2}")
            totals[split][0] += c["ids"]
            totals[split][1] += c["images"]
        desc = str(info.get("style", {}).get("description", ""))
        lines.append(f"{name:<10} {desc:<24} " + " ".join(f"{c:>24}" for c in cells))
    lines.append("-" * len(header))
    lines.append(f"{'total':<10} {'':<24} " + " ".join(f"{totals[s][0]:>8} / {totals[s][1]:>6} / {'':>2}"
                                                        for s in SPLIT_DIRS))
    opts = stats.get("options", {})
    if isinstance(opts, dict) and opts:
        lines.append(f"seed {stats.get('seed')}, images {opts.get('height')}x{opts.get('width')} (HxW), "
                     f"generator version {stats.get('version')}")
    return "\n".join(lines)
