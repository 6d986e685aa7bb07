"""``combine``: several training sets merged into one with global ids, cameras and class domains."""
from __future__ import annotations

import pytest

from bau.core.errors import BauError  # noqa: E402
from bau.data.base import ReIDDataset  # noqa: E402
from bau.data.datasets import build_dataset  # noqa: E402
from bau.data.multisource import MultiSourceTrainSet, combine  # noqa: E402
from tests import fake_layouts as fl

pytestmark = pytest.mark.unit


def dataset(train):
    ds = ReIDDataset("unused")
    ds.train = train
    return ds


def test_combine_offsets_ids_and_cameras_per_domain():
    a = dataset([("a0", 0, 0), ("a1", 1, 2), ("a2", 1, 0)])  # 2 ids, cameras {0, 2}
    b = dataset([("b0", 0, 0), ("b1", 2, 1), ("b2", 1, 1)])  # 3 ids, cameras {0, 1}
    merged = combine([a, b], ["A", "B"])
    assert isinstance(merged, MultiSourceTrainSet)
    # Hand-computed: B's ids shift by 2 (A has 2 classes); cameras are renumbered densely per
    # domain (A: 0->0, 2->1) and B's shift by A's 2 cameras.
    assert merged.train == [("a0", 0, 0, 0), ("a1", 1, 1, 0), ("a2", 1, 0, 0),
                            ("b0", 2, 2, 1), ("b1", 4, 3, 1), ("b2", 3, 3, 1)]
    assert merged.class_domains == [0, 0, 1, 1, 1]
    assert merged.num_classes == 5 and merged.num_cameras == 4
    assert merged.domain_names == ["A", "B"] and len(merged) == 6


def test_combine_relabels_sparse_train_ids():
    merged = combine([dataset([("x", 10, 0), ("y", 30, 0)]), dataset([("z", 7, 0)])], ["X", "Z"])
    assert [pid for _, pid, _, _ in merged.train] == [0, 1, 2]
    assert merged.class_domains == [0, 0, 1]


def test_combine_real_layouts(tmp_path):
    root = str(tmp_path)
    fl.make_market(root)
    fl.make_cuhksysu(root)
    fl.make_msmt17(root)
    names = ["msmt17", "cuhksysu", "full:market1501"]
    datasets = [build_dataset(n, root) for n in names]
    merged = combine(datasets, names)
    sizes = [len({pid for _, pid, _ in d.train}) for d in datasets]  # 2, 3, 4
    assert merged.num_classes == sum(sizes) == 9
    assert merged.class_domains == [0] * 2 + [1] * 3 + [2] * 4
    for path, pid, cam, domain in merged.train:
        assert merged.class_domains[pid] == domain
    # Cameras never shared across domains.
    cams_by_domain = [{c for _, _, c, d in merged.train if d == k} for k in range(3)]
    assert not (cams_by_domain[0] & cams_by_domain[1]) and not (cams_by_domain[1] & cams_by_domain[2])
    assert len(merged) == sum(len(d.train) for d in datasets)


def test_combine_refuses_empty_training_set_and_no_sources():
    with pytest.raises(BauError, match="dataset B: no training images"):
        combine([dataset([("a", 0, 0)]), dataset([])], ["A", "B"])
    with pytest.raises(BauError, match="none given"):
        combine([], [])
