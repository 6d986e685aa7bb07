"""Feature files of any model (bau.runs.feature_file) and their diagnostics (analysis.feature_report, `bau analyze`).

The features here come from no bau model: Gaussian clusters, one per identity, written with the
numpy-only snippet of docs/feature_files.md. Every number `bau analyze` reports is recomputed by
brute force from the definitions.
"""
import json
import os
import re

import numpy as np
import pytest

from analysis.feature_report import geometry, identity_labels, retrieval
from bau.cli import main
from bau.core.errors import BauError
from bau.runs.feature_file import FORMAT_VERSION, VERSION_KEY, read_arrays
from bau.runs.features import combine_feature_sets, read_feature_file
from tests.brute_geometry import brute_alignment, brute_uniformity, unit

pytestmark = pytest.mark.unit

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "feature_files.md")


def doc_snippet():
    """The numpy-only snippet of the docs (the first python block)."""
    with open(DOC) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)[0]


def clusters(seed, ids=5, per_id=4, dim=12, spread=1.0, shift=0.0):
    """Images of ``ids`` identities around random centres; the first image of each is a query (camera 0),
    the others gallery images (cameras 0, 1, 2, ...), plus two gallery distractors (pid -1)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim)) + shift
    feats, pids, camids, subsets = [], [], [], []
    for i in range(ids):
        for j in range(per_id):
            feats.append(centres[i] + spread * rng.standard_normal(dim))
            pids.append(i)
            camids.append(j % 3)
            subsets.append("query" if j == 0 else "gallery")
    for _ in range(2):
        feats.append(rng.standard_normal(dim) + shift)
        pids.append(-1)
        camids.append(1)
        subsets.append("gallery")
    return np.array(feats), np.array(pids), np.array(camids), subsets


def write_with_snippet(path, feats, pids, camids, subsets):
    """Run the docs' snippet with these arrays, as a user would (the file name replaced)."""
    code = doc_snippet().replace('"market1501_osnet.npz"', repr(str(path)))
    paths = [f"img_{i}.jpg" for i in range(len(pids))]
    exec(code, {"features": feats, "pids": pids, "camids": camids, "subsets": subsets, "paths": paths})


def brute_retrieval(f, pids, camids, subsets):
    """mAP and Rank-1 of the queries against the gallery, Market protocol, by sorting each query's row."""
    f = unit(f)
    subsets = np.asarray(subsets)
    q, g = np.flatnonzero(subsets == "query"), np.flatnonzero(subsets == "gallery")
    aps, firsts = [], []
    for qi in q:
        keep = [gi for gi in g if not (pids[gi] == pids[qi] and camids[gi] == camids[qi])]  # same camera: junk
        dist = [((f[qi] - f[gi]) ** 2).sum() for gi in keep]
        ranked = [keep[k] for k in np.argsort(dist, kind="stable")]
        hits = [pids[gi] == pids[qi] for gi in ranked]
        if not any(hits):
            continue
        ranks = [r + 1 for r, h in enumerate(hits) if h]
        aps.append(np.mean([(n + 1) / r for n, r in enumerate(ranks)]))
        firsts.append(ranks[0])
    return float(np.mean(aps)), float(np.mean(np.array(firsts) == 1))


@pytest.fixture
def foreign(tmp_path):
    """Two feature files of two domains with the SAME pid numbers (0..4) but other people, from the snippet."""
    data = {"A": clusters(1), "B": clusters(2, shift=1.5)}
    paths = {}
    for name, arrays in data.items():
        paths[name] = str(tmp_path / f"{name}.npz")
        write_with_snippet(paths[name], *arrays)
    return data, paths


# -- the format -------------------------------------------------------------------------------------

def test_snippet_is_fifteen_lines_of_numpy_and_writes_a_valid_file(foreign):
    code = doc_snippet()
    assert len(code.strip().splitlines()) <= 15
    assert set(re.findall(r"^(?:import|from) (\w+)", code, re.M)) == {"numpy"}
    data, paths = foreign
    a = read_arrays(paths["A"])
    feats, pids, camids, subsets = data["A"]
    assert int(a["version"]) == FORMAT_VERSION == 1 and a["features"].dtype == np.float32
    np.testing.assert_allclose(a["features"], feats.astype(np.float32))
    assert a["pids"].tolist() == pids.tolist() and a["subsets"].tolist() == subsets
    assert a["domain_names"].tolist() == ["market1501"] and set(a["domains"].tolist()) == {0}


def test_minimal_file_without_version_gets_the_defaults(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, features=np.eye(3, dtype=np.float64), pids=np.array([1, 1, 2]), camids=np.array([0, 1, 0]))
    a = read_arrays(str(path))
    assert int(a["version"]) == 1 and a["features"].dtype == np.float32
    assert a["domain_names"].tolist() == ["old"] and a["domains"].tolist() == [0, 0, 0]
    assert a["subsets"].tolist() == ["", "", ""] and a["paths"].tolist() == ["", "", ""]
    fs = read_feature_file(str(path))
    assert fs.domain_names == ["old"] and len(fs) == 3 and len(fs.subset("query")) == 0
    assert fs.cache().folder == os.path.join(os.path.realpath(tmp_path), ".bau_cache")  # next to the file


GOOD = {"features": np.ones((3, 2), np.float32) + np.eye(3, 2), "pids": np.array([0, 0, 1]),
        "camids": np.array([0, 1, 0])}


@pytest.mark.parametrize("change, fragment", [
    ({"pids": None}, "missing array pids (required: features, pids, camids"),
    ({"features": np.ones(3, np.float32)}, "features has shape (3,); expected [N, d]"),
    ({"features": np.ones((3, 2), np.int64)}, "features has dtype int64; expected floating point"),
    ({"features": np.array([[1, 0], [np.nan, 1], [1, 1]], np.float32)},
     "NaN or infinite values (1 rows, the first is row 1)"),
    ({"features": np.array([[1, 0], [0, 0], [1, 1]], np.float32)}, "all-zero rows (the first is row 1)"),
    ({"pids": np.array([0, 1])}, "pids has shape (2,); expected (3,)"),
    ({"camids": np.array([0.0, 1.0, 0.0])}, "camids has dtype float64; expected integers"),
    ({"domains": np.array([0, 1, 2]), "domain_names": np.array(["a", "b"])},
     "domains goes up to 2 but domain_names has 2"),
    ({"domains": np.array([0, -1, 0])}, "domains has negative values"),
    ({"domain_names": np.array(["a", "b"])}, "domain_names has 2 names but there is no domains array"),
    ({"domains": np.array([0, 1, 1]), "domain_names": np.array(["a", "a"])}, "domain_names has repeated names"),
    ({"subsets": np.array(["query", "probe", "gallery"])},
     "subsets has values ['probe']; expected train, query, gallery"),
    ({"paths": np.array([1, 2, 3])}, "paths has dtype int64; expected strings"),
    ({VERSION_KEY: np.int64(2)}, "format version 2 is newer than this bau reads (1)"),
    ({VERSION_KEY: np.array([1, 1])}, "bau_features_version is"),
])
def test_bad_feature_files_are_one_line_naming_file_and_array(tmp_path, change, fragment):
    arrays = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = str(tmp_path / "bad.npz")
    np.savez(path, **arrays)
    with pytest.raises(BauError) as info:
        read_arrays(path)
    message = str(info.value)
    assert message.startswith(f"feature file {path}: ") and fragment in message and "\n" not in message


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(BauError, match=r"junk.npz: cannot be read as a .npz"):
        read_arrays(str(junk))
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, features=np.array([object()], dtype=object))
    with pytest.raises(BauError, match=r"objects.npz: cannot be read as a .npz of plain arrays"):
        read_arrays(str(pickled))
    with pytest.raises(BauError, match=r"nope.npz: not found"):
        read_arrays(str(tmp_path / "nope.npz"))


# -- the numbers --------------------------------------------------------------------------------------

def test_identity_labels_are_per_domain_and_skip_distractors():
    ids = identity_labels(np.array([3, 3, 5, -1, 3, -2]), np.array([0, 0, 0, 0, 1, 1]))
    assert ids.tolist() == [0, 0, 1, -1, 2, -1]


def test_combined_files_are_domains_and_numbers_match_brute_force(foreign):
    data, paths = foreign
    # both files name their domain market1501 (the snippet's name): the file name keeps them apart
    fs = combine_feature_sets([read_feature_file(paths[k]) for k in "AB"], [paths[k] for k in "AB"])
    assert fs.domain_names == ["A:market1501", "B:market1501"]
    feats = np.concatenate([data[k][0] for k in "AB"])
    pids = np.concatenate([data[k][1] for k in "AB"])
    domains = np.repeat([0, 1], [len(data["A"][1]), len(data["B"][1])])
    ids = np.where(pids >= 0, domains * 100 + pids, -1)  # identity = (domain, pid)
    geo = geometry(fs)
    assert geo["alignment"] == pytest.approx(brute_alignment(feats, ids), abs=1e-6)
    # pid 0 of A and pid 0 of B are not one person: pooling them would give another number
    assert geo["alignment"] != pytest.approx(brute_alignment(feats, pids), abs=1e-3)
    assert geo["uniformity"] == pytest.approx(brute_uniformity(feats), abs=1e-6)
    for d, name in enumerate(fs.domain_names):
        assert geo["per_domain"][name] == pytest.approx(brute_uniformity(feats[domains == d]), abs=1e-6)
    assert geo["num_images"] == len(feats) and geo["num_identities"] == 10
    ret = retrieval(fs)
    assert ret["skipped"] == {}
    for k, name in zip("AB", fs.domain_names):
        mAP, rank1 = brute_retrieval(*data[k])
        m = ret["per_domain"][name]
        assert m["mAP"] == pytest.approx(mAP, abs=1e-6) and m["rank1"] == pytest.approx(rank1, abs=1e-6)
        assert m["num_query"] == 5 and m["num_gallery"] == 17
    assert all(0 < m["mAP"] < 1 for m in ret["per_domain"].values())  # not a trivial dataset


def test_combining_files_of_different_feature_sizes_is_an_error(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, **GOOD)
    np.savez(b, **{**GOOD, "features": np.ones((3, 5), np.float32)})
    with pytest.raises(BauError, match=r"different feature sizes .*a.npz: 2, .*b.npz: 5"):
        combine_feature_sets([read_feature_file(str(a)), read_feature_file(str(b))], [str(a), str(b)])


# -- bau analyze ------------------------------------------------------------------------------------------

def test_bau_analyze_on_foreign_features(foreign, tmp_path, capsys):
    data, paths = foreign
    out = tmp_path / "report"
    # A and B have the same rows (names, pids, cameras) but other people: --domains makes them two domains
    assert main(["analyze", "--features", paths["A"], paths["B"], "--domains", "--out", str(out), "--max-points", "30",
                 "--tsne-iters", "100", "--perplexity", "5", "--quiet"]) == 0
    printed = capsys.readouterr().out
    numbers = json.loads((out / "report.json").read_text())
    geo = numbers["geometry"]
    feats = np.concatenate([data[k][0] for k in "AB"])
    assert geo["uniformity"] == pytest.approx(brute_uniformity(feats), abs=1e-6)
    assert numbers["files"] == [paths["A"], paths["B"]] and numbers["dimension"] == 12
    assert [d["domain"] for d in numbers["domains"]] == ["A:market1501", "B:market1501"]
    assert numbers["domains"][0] == {"domain": "A:market1501", "images": 22, "identities": 5, "train": 0,
                                     "query": 5, "gallery": 17}
    mAP, _ = brute_retrieval(*data["B"])
    assert numbers["retrieval"]["per_domain"]["B:market1501"]["mAP"] == pytest.approx(mAP, abs=1e-6)
    assert f"B:market1501: mAP {100 * mAP:.1f}" in printed and f"uniformity {geo['uniformity']:.4f}" in printed
    report = (out / "report.md").read_text()
    assert f"**{geo['alignment']:.4f}**" in report and "| A:market1501 | 22 | 5 | 0 | 5 | 17 |" in report
    assert "![t-SNE by domain and by identity](tsne.png)" in report
    tsne = json.loads((out / "tsne.json").read_text())
    assert len(tsne["rows"]) == 30 == len(tsne["embedding"]) and len(set(tsne["rows"])) == 30
    assert tsne["rows"] == sorted(tsne["rows"]) and max(tsne["rows"]) < len(feats)
    assert len(tsne["identities"]) == 30 and len(tsne["embedding"][0]) == 2
    assert all(os.path.getsize(out / f"tsne.{e}") > 0 for e in ("png", "pdf"))


def test_bau_analyze_without_query_gallery_says_so(tmp_path):
    path = tmp_path / "train_only.npz"
    feats, pids, camids, _ = clusters(3)
    np.savez(path, features=feats, pids=pids, camids=camids)
    out = tmp_path / "r"
    assert main(["analyze", "--features", str(path), "--out", str(out), "--max-points", "0", "--quiet"]) == 0
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["retrieval"] == {"per_domain": {},
                                    "skipped": {"train_only": "no query and gallery images (subsets)"}}
    assert "tsne" not in numbers and not (out / "tsne.png").exists()
    assert "train_only: not evaluated (no query and gallery images (subsets))" in (out / "report.md").read_text()


@pytest.mark.parametrize("argv, fragment", [
    (["--features", "{tmp}/missing.npz"], "feature file {tmp}/missing.npz: not found"),
    (["--features", "{tmp}/nan.npz"], "feature file {tmp}/nan.npz: features has NaN"),
    (["--features", "{tmp}/ok.npz", "--max-points", "-1"], "--max-points -1: expected 0"),
    (["--features", "{tmp}/ok.npz", "--perplexity", "0"], "--perplexity 0"),
])
def test_bau_analyze_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, fragment):
    np.savez(tmp_path / "nan.npz", **{**GOOD, "features": np.full((3, 2), np.nan, np.float32)})
    np.savez(tmp_path / "ok.npz", **GOOD)
    tmp = str(tmp_path)
    assert main(["analyze", *[a.format(tmp=tmp) for a in argv], "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and fragment.format(tmp=tmp) in err
