"""Feature files: the versioned ``.npz`` format of ``bau extract``, read by ``bau analyze`` and the app.

Any re-ID model's features can be written in it (docs/feature_files.md has a numpy-only snippet
for torchreid and fast-reid). One ``.npz`` (``numpy.savez``, no pickled objects) with one row per
image::

    array                 dtype    shape  required  meaning
    features              float    [N, d] yes       the retrieval features (any scale; L2-normalised when read)
    pids                  integer  [N]    yes       identity per image; negative = distractor / junk, no identity
    camids                integer  [N]    yes       camera per image
    domains               integer  [N]    no        domain (dataset) index per image, into domain_names (default 0)
    domain_names          str      [D]    no        name of each domain (default: the file name; "<file>:<i>")
    subsets               str      [N]    no        "train", "query" or "gallery" (CMC/mAP needs query + gallery)
    paths                 str      [N]    no        image file per row
    bau_features_version  integer  []     no        the format version, FORMAT_VERSION (absent: version 1)

Identities are per domain: pid 3 of domain 0 and pid 3 of domain 1 are two people. Other arrays
in the file are ignored. Files written before the version field existed (by ``bau extract``) are
version 1 and read the same.

This module is the format only, plain arrays in and out: ``write_feature_file`` writes one,
``read_arrays`` reads and validates one (every problem is one ``BauError`` line naming the file and the
array). ``bau.runs.features.read_feature_file`` makes a ``FeatureSet`` of a file (its cache is
``.bau_cache`` next to the file, keyed by the file's identity like a checkpoint's), and
``bau.runs.features.combine_feature_sets`` puts several files side by side as several domains.
"""
from __future__ import annotations

import os
from typing import Dict

import numpy as np

from bau.core.atomic import atomic_savez
from bau.core.errors import BauError

FORMAT_VERSION = 1
VERSION_KEY = "bau_features_version"
REQUIRED = ("features", "pids", "camids")
SUBSET_NAMES = ("train", "query", "gallery")
DOC = "docs/feature_files.md"


def write_feature_file(path: str, arrays: Dict[str, np.ndarray]) -> None:
    """Write ``arrays`` (the fields above) to ``path`` atomically, with the format version."""
    atomic_savez(path, **arrays, **{VERSION_KEY: np.int64(FORMAT_VERSION)})


def _labels(data: Dict[str, np.ndarray], key: str, n: int, where: str) -> np.ndarray:
    """``[N]`` int64 of an integer array of one value per row."""
    a = data[key]
    if a.shape != (n,):
        raise BauError(f"{where}: {key} has shape {a.shape}; expected ({n},), one per row of features")
    if a.dtype.kind not in "iu":
        raise BauError(f"{where}: {key} has dtype {a.dtype}; expected integers")
    return a.astype(np.int64, copy=False)


def _texts(data: Dict[str, np.ndarray], key: str, shape: tuple, where: str) -> np.ndarray:
    a = data[key]
    if a.shape != shape:
        raise BauError(f"{where}: {key} has shape {a.shape}; expected {shape}")
    if a.dtype.kind not in "US":
        raise BauError(f"{where}: {key} has dtype {a.dtype}; expected strings")
    return a.astype(str)


def validate(data: Dict[str, np.ndarray], where: str, name: str) -> Dict[str, np.ndarray]:
    """Every field of a feature file, checked and completed with the defaults.

    Args:
        data: the arrays as read from the file.
        where: how messages name the file (``feature file PATH``).
        name: the default domain name (the file's name without ``.npz``).

    Returns:
        ``features [N, d] float32`` (as stored), ``pids``, ``camids``, ``domains [N] int64``,
        ``domain_names [D] str``, ``subsets [N] str`` ("" where unknown), ``paths [N] str``
        ("" where unknown), ``version`` (int).

    Raises:
        BauError: a required array is missing, a shape or dtype is wrong, a value is out of range
            (NaN or infinite features, a domain index without a name, an unknown subset), or the
            file is of a newer format version.
    """
    version = FORMAT_VERSION
    if VERSION_KEY in data:
        v = data[VERSION_KEY]
        if v.shape != () or v.dtype.kind not in "iu":
            raise BauError(f"{where}: {VERSION_KEY} is {v!r}; expected one integer")
        version = int(v)
        if version > FORMAT_VERSION:
            raise BauError(f"{where}: format version {version} is newer than this bau reads ({FORMAT_VERSION}); "
                           f"update bau")
        if version < 1:
            raise BauError(f"{where}: {VERSION_KEY} is {version}; expected 1..{FORMAT_VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise BauError(f"{where}: missing array{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                       f"(required: {', '.join(REQUIRED)}; see {DOC})")
    feats = data["features"]
    if feats.ndim != 2 or feats.shape[0] < 1 or feats.shape[1] < 1:
        raise BauError(f"{where}: features has shape {feats.shape}; expected [N, d] with N, d >= 1")
    if feats.dtype.kind != "f":
        raise BauError(f"{where}: features has dtype {feats.dtype}; expected floating point")
    finite = np.isfinite(feats).all(axis=1)
    if not finite.all():
        raise BauError(f"{where}: features has NaN or infinite values ({int((~finite).sum())} rows, the first "
                       f"is row {int(np.argmin(finite))})")
    if not np.any(feats, axis=1).all():
        raise BauError(f"{where}: features has all-zero rows "
                       f"(the first is row {int(np.argmin(np.any(feats, axis=1)))}); "
                       f"a zero vector has no direction")
    n = feats.shape[0]
    out: Dict[str, np.ndarray] = {"features": feats.astype(np.float32, copy=False),
                                  "pids": _labels(data, "pids", n, where), "camids": _labels(data, "camids", n, where)}
    names = None
    if "domain_names" in data:
        if data["domain_names"].ndim != 1 or len(data["domain_names"]) < 1:
            raise BauError(f"{where}: domain_names has shape {data['domain_names'].shape}; expected [D] names")
        names = _texts(data, "domain_names", data["domain_names"].shape, where)
    if "domains" in data:
        domains = _labels(data, "domains", n, where)
        if domains.min() < 0:
            raise BauError(f"{where}: domains has negative values; expected indices into domain_names")
        if names is None:
            count = int(domains.max()) + 1
            names = np.array([name] if count == 1 else [f"{name}:{d}" for d in range(count)])
        elif domains.max() >= len(names):
            raise BauError(f"{where}: domains goes up to {int(domains.max())} but domain_names has {len(names)} "
                           f"names")
    else:
        if names is not None and len(names) != 1:
            raise BauError(f"{where}: domain_names has {len(names)} names but there is no domains array "
                           f"(one domain index per row)")
        domains = np.zeros(n, dtype=np.int64)
        names = np.array([name]) if names is None else names
    if len(set(names.tolist())) != len(names):
        raise BauError(f"{where}: domain_names has repeated names; expected one name per domain")
    out["domains"], out["domain_names"] = domains, names
    if "subsets" in data:
        subsets = _texts(data, "subsets", (n,), where)
        unknown = sorted(set(subsets.tolist()) - set(SUBSET_NAMES))
        if unknown:
            raise BauError(f"{where}: subsets has values {unknown}; expected {', '.join(SUBSET_NAMES)}")
    else:
        subsets = np.full(n, "", dtype="<U1")
    out["subsets"] = subsets
    out["paths"] = _texts(data, "paths", (n,), where) if "paths" in data else np.full(n, "", dtype="<U1")
    out["version"] = np.int64(version)
    return out


def read_arrays(path: str) -> Dict[str, np.ndarray]:
    """The validated fields of feature file ``path`` (``validate``)."""
    where = f"feature file {path}"
    if not os.path.isfile(path):
        raise BauError(f"{where}: not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise BauError(f"{where}: cannot be read as a .npz of plain arrays ({type(e).__name__}); see {DOC}") from None
    except Exception as e:  # a damaged zip raises zipfile.BadZipFile and others
        raise BauError(f"{where}: cannot be read as a .npz ({type(e).__name__}); see {DOC}") from None
    name = os.path.splitext(os.path.basename(path))[0]
    return validate(data, where, name)
