"""The dataset classes, ``build_dataset``, image reading and ``inspect_datasets`` on tiny fake trees."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from bau.cli import main  # noqa: E402
from bau.core.errors import BauError  # noqa: E402
from bau.data.base import DISTRACTOR_PID, PublishedStats  # noqa: E402
from bau.data.datasets import DATASETS, build_dataset  # noqa: E402
from bau.data.datasets.cuhk02 import global_pid  # noqa: E402
from bau.data.images import check_images, read_image  # noqa: E402
from bau.data.inspect import decode_problems, inspect_datasets  # noqa: E402
from tests import fake_layouts as fl

pytestmark = pytest.mark.unit


def pids(items):
    return sorted({pid for _, pid, _ in items})


def cams(items):
    return sorted({cam for _, _, cam in items})


def names(items):
    return sorted(os.path.basename(p) for p, _, _ in items)


def assert_relabelled(items):
    assert pids(items) == list(range(len(pids(items))))


# -- Market-1501 and the Market-named datasets -------------------------------------------------
def test_market1501_ids_cameras_distractors_and_junk(tmp_path):
    fl.make_market(str(tmp_path))
    ds = build_dataset("market1501", str(tmp_path))
    # Train: ids 2 and 7 relabelled 0/1 in sorted order; cameras c1,c2,c3 -> 0,1,2.
    assert sorted((pid, cam) for _, pid, cam in ds.train) == [(0, 0), (0, 1), (1, 0), (1, 2), (1, 2)]
    assert pids(ds.query) == [10, 11]  # junk -1 dropped, original ids kept
    assert pids(ds.gallery) == [DISTRACTOR_PID, 10, 11]  # distractor (file pid 0) kept, junk -1 dropped
    assert cams(ds.gallery) == [1, 3, 4, 5]  # c2, c4, c5, c6
    assert not any(os.path.basename(p).startswith("-1") for p, _, _ in ds.query + ds.gallery)
    assert [pid for _, pid, _ in ds.distractors] == [DISTRACTOR_PID]
    assert [os.path.basename(p)[:5] for p, _, _ in ds.distractors] == ["0000_"]
    assert pids(ds.labelled) == [2, 7, 10, 11]


def test_cuhk03_detected_default_and_labeled_variant(tmp_path):
    fl.make_cuhk03(str(tmp_path))
    detected = build_dataset("cuhk03", str(tmp_path))
    labeled = build_dataset("cuhk03_labeled", str(tmp_path))
    assert all("/detected/" in p for p, _, _ in detected.train + detected.query + detected.gallery)
    assert all("/labeled/" in p for p, _, _ in labeled.query)
    assert pids(detected.query) == [3, 4] and pids(labeled.query) == [3, 4, 5]
    assert cams(detected.train) == [0, 1]
    assert_relabelled(detected.train)


def test_cuhksysu_is_train_only_single_camera(tmp_path):
    fl.make_cuhksysu(str(tmp_path))
    ds = build_dataset("cuhksysu", str(tmp_path))
    assert len(ds.train) == 5 and pids(ds.train) == [0, 1, 2] and cams(ds.train) == [0]
    assert ds.query == [] and ds.gallery == []


def test_folder_dataset_absolute_and_relative(tmp_path):
    fl.make_market_style(str(tmp_path / "synth"), [(1, 1), (2, 2)], [(3, 1)], [(3, 2), (0, 1)])
    by_abs = build_dataset(f"folder:{tmp_path / 'synth'}", "/nonexistent")
    by_rel = build_dataset("folder:synth", str(tmp_path))
    assert by_abs.train == by_rel.train and len(by_abs.train) == 2
    assert pids(by_rel.gallery) == [DISTRACTOR_PID, 3]


def test_folder_dataset_refuses_pid0_in_train(tmp_path):
    fl.make_market_style(str(tmp_path / "synth"), [(0, 1), (2, 2)], [(3, 1)], [(3, 2)])
    with pytest.raises(BauError, match="pid 0 is reserved"):
        build_dataset("folder:synth", str(tmp_path))


MARKET_NAMED = {  # registry name -> (builder, folder of its Market-named test subsets)
    "market1501": (fl.make_market, "Market-1501-v15.09.15"),
    "cuhk03": (fl.make_cuhk03, "cuhk03-np/detected"),
    "cuhk03_labeled": (fl.make_cuhk03, "cuhk03-np/labeled"),
    "folder:synth": (lambda root: fl.make_market_style(os.path.join(root, "synth"), [(1, 1), (1, 2)], [(3, 1)],
                                                       [(3, 2)]), "synth"),
}


@pytest.mark.parametrize("name", sorted(MARKET_NAMED))
def test_market_named_distractors_are_not_an_identity(tmp_path, name):
    root = str(tmp_path)
    make, folder = MARKET_NAMED[name]
    make(root)
    ext = ".png" if name.startswith("cuhk03") else ".jpg"
    for i in range(2):  # two distractor boxes in the gallery
        fl.write_image(os.path.join(root, folder, "bounding_box_test", fl.market_name(0, 2, 900 + i, ext)), i)
    gallery_dir = os.path.join(root, folder, "bounding_box_test")
    n = sum(f.startswith("0000_") for f in os.listdir(gallery_dir))  # Market's fake tree has one already
    assert n >= 2
    ds = build_dataset(name, root)
    assert sorted(pid for _, pid, _ in ds.gallery if pid < 0) == [DISTRACTOR_PID] * n
    assert sorted(pid for _, pid, _ in ds.distractors) == [DISTRACTOR_PID] * n
    assert 0 not in pids(ds.gallery) and all(pid >= 0 for _, pid, _ in ds.query + ds.labelled)
    full = build_dataset(f"full:{name}", root)
    assert len(full.train) == len(ds.labelled) and len(full.distractors) == n
    assert not any("/0000_" in p for p, _, _ in full.train)


def test_cuhksysu_leaves_out_distractor_and_junk_files(tmp_path):
    folder = fl.make_cuhksysu(str(tmp_path))
    fl.write_image(os.path.join(folder, "00000_c1_0100.jpg"))
    fl.write_image(os.path.join(folder, "-1_c1_0101.jpg"))
    ds = build_dataset("cuhksysu", str(tmp_path))
    assert len(ds.train) == 5 and len(ds.labelled) == 5


# -- MSMT17 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("v2", [False, True])
def test_msmt17_lists_v1_and_v2(tmp_path, v2):
    fl.make_msmt17(str(tmp_path), v2=v2)
    ds = build_dataset("msmt17", str(tmp_path))
    assert len(ds.train) == 4  # list_train (3) + list_val (1)
    assert_relabelled(ds.train)
    assert cams(ds.train) == [0, 1, 2, 14]  # cameras 1, 2, 3, 15 from the third name field
    assert pids(ds.query) == [0, 1, 2] and cams(ds.query) == [3, 4, 5]
    assert len(ds.gallery) == 4
    assert all(("mask_test_v2" if v2 else "/test/") in p for p, _, _ in ds.query)
    # Full: test ids shifted past the two training ids so train id 0 and test id 0 stay apart.
    assert pids(ds.labelled) == [0, 1, 2, 3, 4]
    # pid 0 in MSMT17's lists is a real person (train id 0, test id 0), never a distractor
    assert 0 in pids(ds.gallery) and ds.distractors == []


def test_msmt17_bad_list_line_names_file_and_line(tmp_path):
    base = fl.make_msmt17(str(tmp_path))
    with open(os.path.join(base, "list_query.txt"), "a") as f:
        f.write("just_a_path.jpg\n")
    with pytest.raises(BauError, match=r"list_query\.txt line 4"):
        build_dataset("msmt17", str(tmp_path))


# -- CUHK02 ---------------------------------------------------------------------------------------
def test_cuhk02_global_ids_and_ten_cameras(tmp_path):
    fl.make_cuhk02(str(tmp_path))
    ds = build_dataset("cuhk02", str(tmp_path))
    assert len(pids(ds.train)) == 8  # ids 1, 2 of P1..P4 are 8 different people
    assert_relabelled(ds.train)
    assert cams(ds.train) == list(range(8))
    assert pids(ds.query) == [global_pid(5, i) for i in (1, 2, 3)] == pids(ds.gallery)
    assert cams(ds.query) == [8] and cams(ds.gallery) == [9]
    full = build_dataset("full:cuhk02", str(tmp_path))
    assert len(pids(full.train)) == 11 and len(full.train) == 33 and cams(full.train) == list(range(10))


# -- the small datasets: splits -----------------------------------------------------------------------
SMALL = {"cuhk01": fl.make_cuhk01, "prid": fl.make_prid, "viper": fl.make_viper, "ilids": fl.make_ilids,
         "grid": lambda root: fl.make_grid(root, with_mat=False)[0]}
SPLIT_FOLDER = {"cuhk01": "cuhk01", "prid": "prid_2011", "viper": "VIPeR", "ilids": "QMUL-iLIDS",
                "grid": "underground_reid"}


def split_signature(ds):
    return tuple(names(ds.train)), tuple(names(ds.query)), tuple(names(ds.gallery))


def person_of(path: str) -> str:
    """The person a fake small-dataset file shows, read from its name (never from the parsed labels)."""
    base = os.path.basename(path)
    return base.split("_")[1][:4] if base.startswith("person_") else base[:4] if base[:4].isdigit() else base[:3]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_dataset_splits_deterministic_stored_and_disjoint(tmp_path, name):
    root = str(tmp_path)
    SMALL[name](root)
    json_path = os.path.join(root, SPLIT_FOLDER[name], "splits_seed0.json")
    first = build_dataset(name, root, split=0)
    assert first.num_splits == 10
    assert os.path.isfile(json_path)
    with open(json_path) as f:
        stored = json.load(f)
    assert stored["seed"] == 0 and len(stored["splits"]) == 10
    # Same seed -> same split, whether read back from the JSON or made afresh in another folder.
    assert split_signature(build_dataset(name, root, split=0)) == split_signature(first)
    other_root = str(tmp_path / "copy")
    SMALL[name](other_root)
    assert split_signature(build_dataset(name, other_root, split=0)) == split_signature(first)
    # Different seed -> a different split file and (with these sizes) different splits.
    assert any(split_signature(build_dataset(name, root, split=s, split_seed=1)) != split_signature(
        build_dataset(name, root, split=s, split_seed=0)) for s in range(3))
    assert os.path.isfile(os.path.join(root, SPLIT_FOLDER[name], "splits_seed1.json"))
    # Train and test ids are disjoint in every split; splits differ from one another.
    signatures = set()
    for s in range(10):
        ds = build_dataset(name, root, split=s)
        train_paths = {p for p, _, _ in ds.train}
        test_ids = set(pids(ds.query))
        test_paths = {p for p, pid, _ in ds.query + ds.gallery if pid in test_ids}
        assert not train_paths & test_paths
        assert_relabelled(ds.train)
        signatures.add(split_signature(ds))
    assert len(signatures) > 1


def test_split_file_is_read_back_not_remade(tmp_path):
    root = str(tmp_path)
    fl.make_viper(root)
    json_path = os.path.join(root, "VIPeR", "splits_seed0.json")
    build_dataset("viper", root)
    with open(json_path) as f:
        stored = json.load(f)
    stored["splits"][0] = {"train": [0, 1, 2, 3, 4], "test": [5, 6, 7, 8, 9]}
    with open(json_path, "w") as f:
        json.dump(stored, f)
    ds = build_dataset("viper", root)
    assert pids(ds.query) == [5, 6, 7, 8, 9]


def test_stale_split_file_and_out_of_range_split(tmp_path):
    root = str(tmp_path)
    fl.make_viper(root)
    json_path = os.path.join(root, "VIPeR", "splits_seed0.json")
    build_dataset("viper", root)
    with open(json_path) as f:
        stored = json.load(f)
    stored["splits"][0]["train"].append(999)
    with open(json_path, "w") as f:
        json.dump(stored, f)
    with pytest.raises(BauError, match="delete the file"):
        build_dataset("viper", root)
    with pytest.raises(BauError, match="split 10 out of range"):
        build_dataset("viper", root, split=10)


def test_viper_pairs_ith_files_and_protocol_sizes(tmp_path):
    fl.make_viper(str(tmp_path))
    ds = build_dataset("viper", str(tmp_path))
    assert len(ds.query) == len(ds.gallery) == 5 and len(pids(ds.train)) == 5
    assert cams(ds.query) == [0] and cams(ds.gallery) == [1]
    # The i-th files of cam_a and cam_b carry the same id (here: the same name prefix).
    for (qp, qpid, _), (gp, gpid, _) in zip(sorted(ds.query, key=lambda t: t[1]),
                                            sorted(ds.gallery, key=lambda t: t[1])):
        assert qpid == gpid and os.path.basename(qp)[:3] == os.path.basename(gp)[:3]


def test_prid_distractors_in_gallery(tmp_path):
    fl.make_prid(str(tmp_path))
    ds = build_dataset("prid", str(tmp_path))
    assert len(pids(ds.train)) == 100 and len(ds.train) == 200 and cams(ds.train) == [0, 1]
    test_ids = pids(ds.query)
    assert len(test_ids) == 100 and max(test_ids) <= 200 and cams(ds.query) == [0]
    # Gallery: camera-B image of each test id + all single-view camera-B persons 201..210.
    assert pids(ds.gallery) == test_ids + list(range(201, fl.PRID_CAM_B + 1)) and cams(ds.gallery) == [1]
    assert all("cam_b" in p for p, _, _ in ds.gallery)
    # Camera-A persons 201+ are used nowhere; full:prid keeps only the 200 shared ids.
    assert not any("cam_a" in p and pid > 200 for p, pid, _ in ds.query)
    full = build_dataset("full:prid", str(tmp_path))
    assert len(pids(full.train)) == 200 and len(full.train) == 400


@pytest.mark.parametrize("mat_layout", ["structs", "matrix"])
def test_grid_official_partitions_and_distractors(tmp_path, mat_layout):
    _, partitions = fl.make_grid(str(tmp_path), mat_layout=mat_layout)
    for split in (0, 7):
        ds = build_dataset("grid", str(tmp_path), split=split)
        assert ds.official_splits
        train_ids = partitions[split]
        test_ids = sorted(set(range(1, fl.GRID_IDS + 1)) - set(train_ids))
        assert len(ds.train) == 2 * len(train_ids)  # probe + gallery image of each train id
        assert pids(ds.query) == test_ids and all("/probe/" in p for p, _, _ in ds.query)
        assert pids(ds.gallery) == [DISTRACTOR_PID] + test_ids
        assert sum(pid == DISTRACTOR_PID for _, pid, _ in ds.gallery) == fl.GRID_DISTRACTORS
        assert len(ds.distractors) == fl.GRID_DISTRACTORS and DISTRACTOR_PID not in pids(ds.labelled)
    assert not os.path.exists(os.path.join(str(tmp_path), "underground_reid", "splits_seed0.json"))
    # Cameras: second name field, 1-8 -> 0-7.
    full = build_dataset("full:grid", str(tmp_path))
    assert len(pids(full.train)) == fl.GRID_IDS and len(full.train) == 2 * fl.GRID_IDS
    assert all(0 <= c <= 7 for c in cams(full.train))


def test_cuhk01_single_shot_test_protocol(tmp_path):
    fl.make_cuhk01(str(tmp_path))
    ds = build_dataset("cuhk01", str(tmp_path), split=3)
    assert len(pids(ds.train)) == 5 and len(ds.train) == 20
    assert len(ds.query) == len(ds.gallery) == 5 and pids(ds.query) == pids(ds.gallery)
    assert all(os.path.basename(p)[4:7] in ("001", "002") and c == 0 for p, _, c in ds.query)
    assert all(os.path.basename(p)[4:7] in ("003", "004") and c == 1 for p, _, c in ds.gallery)


def test_ilids_query_and_gallery_are_different_images(tmp_path):
    fl.make_ilids(str(tmp_path))
    ds = build_dataset("ilids", str(tmp_path))
    assert len(pids(ds.train)) == 5  # ceil(9 / 2), like 60 of 119
    assert len(ds.query) == len(ds.gallery) == 4
    assert cams(ds.query) == [0] and cams(ds.gallery) == [1]
    assert not {p for p, _, _ in ds.query} & {p for p, _, _ in ds.gallery}
    assert pids(ds.query) == pids(ds.gallery)
    assert not set(pids(ds.query)) & {int(os.path.basename(p)[:4]) for p, _, _ in ds.train}


# -- full variants ------------------------------------------------------------------------------------
def test_full_market_joins_all_subsets_without_distractors(tmp_path):
    fl.make_market(str(tmp_path))
    full = build_dataset("full:market1501", str(tmp_path))
    assert full.name == "full:market1501" and full.query == [] and full.gallery == []
    assert len(full.train) == 5 + 2 + 3  # train + query + gallery minus junk and distractors
    assert_relabelled(full.train)
    assert not any(os.path.basename(p).startswith(("0000_", "-1_")) for p, _, _ in full.train)
    # Each original id stays one class: images of id 10 (query and gallery) share one label.
    labels_of_10 = {pid for p, pid, _ in full.train if os.path.basename(p).startswith("0010_")}
    assert len(labels_of_10) == 1


def test_full_msmt17_keeps_train_and_test_ids_apart(tmp_path):
    fl.make_msmt17(str(tmp_path))
    full = build_dataset("full:msmt17", str(tmp_path))
    assert len(pids(full.train)) == 2 + 3 and len(full.train) == 11


# -- errors -------------------------------------------------------------------------------------------
def test_unknown_dataset_lists_names(tmp_path):
    with pytest.raises(BauError) as err:
        build_dataset("market", str(tmp_path))
    message = str(err.value)
    assert "market1501" in message and "full:NAME" in message and "folder:PATH" in message
    assert set(DATASETS.names()) >= {"market1501", "msmt17", "cuhk03", "cuhk03_labeled", "cuhk02", "cuhk01",
                                     "cuhksysu", "prid", "grid", "viper", "ilids"}


@pytest.mark.parametrize("name", [*DATASETS.names(), "folder:missing"])
def test_missing_folder_is_one_clear_line(tmp_path, name):
    with pytest.raises(BauError) as err:
        build_dataset(name, str(tmp_path))
    message = str(err.value)
    assert "not found" in message and str(tmp_path) in message and "\n" not in message


def test_misnamed_market_file_names_path_and_pattern(tmp_path):
    folder = fl.make_market(str(tmp_path))
    bad = fl.write_image(os.path.join(folder, "query", "person1.jpg"))
    with pytest.raises(BauError) as err:
        build_dataset("market1501", str(tmp_path))
    assert bad in str(err.value) and "NNNN_cNsN_NNNNNN_NN.jpg" in str(err.value)


@pytest.mark.parametrize("maker, bad_name, pattern", [
    (fl.make_cuhk01, "cuhk01/campus/abc.png", "NNNNIII.png"),
    (fl.make_ilids, "QMUL-iLIDS/i-LIDS_Pedestrian/Persons/12.jpg", "PPPPCCC.jpg"),
    (fl.make_prid, "prid_2011/single_shot/cam_a/p_0001.png", "person_NNNN.png"),
    (lambda r: fl.make_grid(r)[0], "underground_reid/probe/x_y.jpeg", "PPPP_C_"),
    (fl.make_cuhk02, "cuhk02/Dataset/P2/cam1/abc.png", "PID_IMG.png"),
])
def test_misnamed_files_of_other_layouts(tmp_path, maker, bad_name, pattern):
    maker(str(tmp_path))
    bad = fl.write_image(os.path.join(str(tmp_path), bad_name))
    name = {"cuhk01": "cuhk01", "QMUL-iLIDS": "ilids", "prid_2011": "prid", "underground_reid": "grid",
            "cuhk02": "cuhk02"}[bad_name.split("/")[0]]
    with pytest.raises(BauError) as err:
        build_dataset(name, str(tmp_path))
    assert bad in str(err.value) and pattern in str(err.value)


def test_viper_unequal_cameras_is_an_error(tmp_path):
    base = fl.make_viper(str(tmp_path))
    os.remove(os.path.join(base, "cam_b", "000_90.bmp"))
    with pytest.raises(BauError, match="same number"):
        build_dataset("viper", str(tmp_path))


# -- images -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp"])
def test_read_image_returns_rgb(tmp_path, ext):
    path = fl.write_image(str(tmp_path / f"a{ext}"), 3)
    Image.open(path).convert("L").save(path)  # stored grey; must come back RGB
    im = read_image(path)
    assert im.mode == "RGB" and im.size == (fl.WIDTH, fl.HEIGHT)


def test_read_image_errors_name_the_path(tmp_path):
    zero = tmp_path / "zero.jpg"
    zero.write_bytes(b"")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image")
    with pytest.raises(BauError, match=r"zero\.jpg: zero-byte file"):
        read_image(str(zero))
    with pytest.raises(BauError, match=r"garbage\.jpg: cannot be decoded as an image"):
        read_image(str(garbage))
    with pytest.raises(BauError, match=r"nothere\.jpg: not found"):
        read_image(str(tmp_path / "nothere.jpg"))


def test_check_images_lists_each_problem(tmp_path):
    good = fl.write_image(str(tmp_path / "good.png"))
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    problems = check_images([good, str(tmp_path / "zero.png"), str(tmp_path / "bad.png")])
    assert problems == [f"image {tmp_path / 'zero.png'}: zero-byte file",
                        f"image {tmp_path / 'bad.png'}: cannot be decoded as an image"]


# -- inspect ------------------------------------------------------------------------------------------
def test_inspect_reports_counts_paper_numbers_and_broken_images(tmp_path):
    root = str(tmp_path)
    folder = fl.make_market(root)
    zero = os.path.join(folder, "bounding_box_test", fl.market_name(10, 3, 99))
    open(zero, "wb").close()
    report = inspect_datasets(root, ["market1501", "viper"])
    text = report.text
    lines = text.splitlines()
    assert lines[0] == "market1501 (split 0 of 1)"
    assert lines[2].split() == ["train", "2", "5", "3"]
    assert lines[3].split() == ["query", "2", "2", "2"]
    assert lines[4].split() == ["gallery", "2", "5", "5"]  # ids 10, 11; the distractor is not an id
    assert lines[5].split() == ["total", "4", "12", "6"]
    assert lines[6].split()[:4] == ["paper", "1,501", "32,217", "6"] and "(BAU paper, Table 1)" in lines[6]
    assert lines[7].startswith("  reference: Liang Zheng") and "ICCV, 2015" in lines[7]
    assert f"image {zero}: zero-byte file" in text
    assert "viper: error: dataset folder" in text and "not found" in text
    assert report.failed == ["viper"] and report.problems == [f"image {zero}: zero-byte file"] and not report.ok
    # Without the image check, no problems section.
    quick = inspect_datasets(root, ["market1501"], check_images=False)
    assert "zero-byte" not in quick.text and quick.ok


# -- dataset classes carry their reference and published statistics -----------------------------------
# The paper's Table 1, typed in again here so the class attributes are checked against the paper.
TABLE1 = {"market1501": (1501, 32217, 6), "msmt17": (4101, 126441, 15), "cuhk02": (1816, 7264, 10),
          "cuhk03": (1467, 14096, 2), "cuhk03_labeled": (1467, 14096, 2), "cuhksysu": (11934, 34574, 1),
          "prid": (200, 1134, 2), "grid": (250, 1275, 8), "viper": (632, 1264, 2), "ilids": (119, 476, 2)}
FAKE_TREE = {"market1501": fl.make_market, "msmt17": fl.make_msmt17, "cuhk03": fl.make_cuhk03,
             "cuhk03_labeled": fl.make_cuhk03, "cuhk02": fl.make_cuhk02, "cuhk01": fl.make_cuhk01,
             "cuhksysu": fl.make_cuhksysu, "prid": fl.make_prid, "grid": lambda r: fl.make_grid(r)[0],
             "viper": fl.make_viper, "ilids": fl.make_ilids}


def test_every_registered_dataset_has_a_fake_tree():
    assert set(DATASETS.names()) == set(FAKE_TREE)


@pytest.mark.parametrize("name", sorted(FAKE_TREE))
def test_registered_dataset_has_reference_and_published_stats(tmp_path, name):
    cls = DATASETS.get(name)
    assert isinstance(cls.reference, str) and len(cls.reference) > 20 and cls.reference.rstrip().endswith(".")
    stats = cls.published
    assert isinstance(stats, PublishedStats) and min(stats[:3]) >= 1 and stats.source
    if name in TABLE1:
        assert tuple(stats[:3]) == TABLE1[name] and stats.source == "BAU paper, Table 1"
    else:  # CUHK01 is not in Table 1: the dataset paper's numbers, and it says so
        assert "Table 1" in stats.source and "not" in stats.source
    FAKE_TREE[name](str(tmp_path))
    ds = build_dataset(name, str(tmp_path))
    assert ds.reference == cls.reference and ds.published == stats
    full = build_dataset(f"full:{name}", str(tmp_path))
    assert full.reference == cls.reference and full.published == stats
    report = inspect_datasets(str(tmp_path), [name])
    assert report.ok, report.text
    paper_row = next(line for line in report.text.splitlines() if line.lstrip().startswith("paper"))
    assert paper_row.split()[1:4] == [f"{n:,}" for n in stats[:3]] and f"({stats.source})" in paper_row


def test_folder_dataset_has_no_published_numbers(tmp_path):
    fl.make_market_style(str(tmp_path / "synth"), [(1, 1), (1, 2)], [(3, 1)], [(3, 2)])
    ds = build_dataset("folder:synth", str(tmp_path))
    assert ds.published is None and ds.reference is None
    report = inspect_datasets(str(tmp_path), ["folder:synth"])
    assert report.ok and "paper: no published numbers" in report.text


def truncated_jpeg(path):
    """A noisy 64x32 JPEG cut in half: its header is intact, its pixel data stops early."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, size=(64, 32, 3), dtype=np.uint8)).save(path, "JPEG")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    return path


def test_truncated_jpeg_is_a_problem(tmp_path):
    root = str(tmp_path)
    folder = fl.make_market(root)
    bad = truncated_jpeg(os.path.join(folder, "query", fl.market_name(10, 5, 77)))
    assert check_images([bad]) == [], "the header check alone does not see the truncation"
    assert decode_problems([bad]) == [f"image {bad}: cannot be decoded as an image"]
    report = inspect_datasets(root, ["market1501"])
    assert report.problems == [f"image {bad}: cannot be decoded as an image"] and not report.ok
    assert "problems: 1" in report.text


def test_data_inspect_exit_status(tmp_path, capsys):
    root = str(tmp_path)
    fl.make_market(root)
    assert main(["data", "inspect", "--root", root, "market1501"]) == 0
    assert "market1501 (split 0 of 1)" in capsys.readouterr().out
    # a named dataset that fails to load: the report still prints, then one error line, status 2
    assert main(["data", "inspect", "--root", root, "market1501", "viper"]) == 2
    captured = capsys.readouterr()
    assert "market1501 (split 0 of 1)" in captured.out and "viper: error:" in captured.out
    err = captured.err.strip()
    assert err.startswith("error: data inspect: 1 dataset(s) could not be opened (viper)") and "\n" not in err
    # a broken image: status 2 as well, unless the image check is switched off
    truncated_jpeg(os.path.join(root, "Market-1501-v15.09.15", "query", fl.market_name(10, 5, 77)))
    assert main(["data", "inspect", "--root", root, "market1501"]) == 2
    assert "1 image file(s) cannot be read" in capsys.readouterr().err
    assert main(["data", "inspect", "--root", root, "market1501", "--no-image-check"]) == 0
