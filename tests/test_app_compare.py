"""The Geometry page compares two or more feature files of the same images (AppTest)."""
import json
import os

import numpy as np
import pytest

from analysis.feature_report import geometry, retrieval
from app.paths import RUNS_ENV
from bau.runs.features import read_feature_file
from tests.test_feature_report import clusters, write_with_snippet

pytestmark = pytest.mark.integration

MAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app", "main.py")


def _charts(node):
    """Every Vega-Lite chart element under ``node`` of an AppTest tree."""
    out = []
    for child in getattr(node, "children", {}).values():
        if child.type == "vega_lite_chart":
            out.append(child)
        out += _charts(child)
    return out


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    (root / "feats").mkdir(parents=True)
    f, pids, camids, subsets = clusters(1, spread=0.3)
    write_with_snippet(root / "feats" / "sharp.npz", f, pids, camids, subsets)
    blurry = f + 2.0 * np.random.default_rng(7).standard_normal(f.shape)
    write_with_snippet(root / "feats" / "blurry.npz", blurry, pids, camids, subsets)
    g, pids, camids, subsets = clusters(5, ids=3)
    write_with_snippet(root / "feats" / "other.npz", g, pids, camids, subsets)
    return str(root)


def test_geometry_page_compares_feature_files_side_by_side(runs_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(RUNS_ENV, runs_root)
    at = AppTest.from_file(MAIN, default_timeout=90).run()
    at.switch_page("views/geometry.py").run()
    at.radio(key="geo_source").set_value("compare feature files").run()
    assert not at.exception and [i.value for i in at.info][0].startswith("Pick two or more")
    at.multiselect(key="cmp_files").set_value(["feats/sharp.npz", "feats/blurry.npz"]).run()
    assert not at.exception and not [e.value for e in at.error], [e.value for e in at.error]
    assert [h.value for h in at.subheader] == ["Alignment and uniformity", "CMC", "t-SNE"]
    (table,) = [d.value.set_index("model") for d in at.dataframe]
    for name in ("sharp", "blurry"):
        fs = read_feature_file(os.path.join(runs_root, "feats", f"{name}.npz"))
        geo, ret = geometry(fs), retrieval(fs)
        assert table.loc[name, "L_align"] == f"{geo['alignment']:.4f}"
        assert table.loc[name, "mAP market1501"] == f"{100 * ret['per_domain']['market1501']['mAP']:.1f}"
    # one CMC chart; one t-SNE panel per model, both with the same fixed axes domains
    vega = [json.loads(c.proto.spec) for c in _charts(at._tree)]
    scatters = [v for v in vega if v["mark"]["type"] == "circle"]
    assert [v["mark"]["type"] for v in vega].count("line") == 1 and len(scatters) == 2
    x_domains = [v["encoding"]["x"]["scale"]["domain"] for v in scatters]
    y_domains = [v["encoding"]["y"]["scale"]["domain"] for v in scatters]
    assert x_domains[0] == x_domains[1] and y_domains[0] == y_domains[1] and x_domains[0][0] < x_domains[0][1]
    # files of other images: one error line, the page keeps running
    at.multiselect(key="cmp_files").set_value(["feats/sharp.npz", "feats/other.npz"]).run()
    assert not at.exception and any("does not hold the same images" in e.value for e in at.error)
