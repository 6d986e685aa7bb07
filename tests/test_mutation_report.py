"""scripts/mutation_report.py: the score and the unexplained survivors from mutmut's result files."""
import importlib.util
import json
import os
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("mutation_report", os.path.join(ROOT, "scripts", "mutation_report.py"))
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def _project(tmp_path, codes, fidelity):
    (tmp_path / "pyproject.toml").write_text('[tool.mutmut]\nonly_mutate = ["pkg/a.py", "pkg/b.py"]\n')
    for file, by_key in codes.items():
        meta = tmp_path / "mutants" / (file + ".meta")
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"exit_code_by_key": by_key}))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "fidelity.md").write_text(fidelity)
    return tmp_path


@pytest.fixture
def run(capsys):
    """The script's ``main`` on a project folder: its exit status, stdout and stderr."""
    def _run(root, *extra):
        code = report.main(["--root", str(root), *extra])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return _run


FIDELITY = """# Fidelity

## Mutation testing

| mutant | change | why it is equivalent |
| --- | --- | --- |
| `bau.a.x_f__mutmut_2` | 0 -> None as a clip bound | the values are never negative |
| `bau.a.x_f__mutmut_9` | gone | no longer a survivor |

### CUDA-only

| `bau.b.x_g__mutmut_2` | a tensor made on the CPU | only a CUDA input tells |

## Next section

| `bau.b.x_g__mutmut_1` | outside the section: not a listing |
"""


def test_score_by_module_equivalent_and_unexplained_survivors(tmp_path, run):
    codes = {
        "pkg/a.py": {"bau.a.x_f__mutmut_1": 1, "bau.a.x_f__mutmut_2": 0, "bau.a.x_f__mutmut_3": 36,
                     "bau.a.x_f__mutmut_4": 33},
        "pkg/b.py": {"bau.b.x_g__mutmut_1": 0, "bau.b.x_g__mutmut_2": 0, "bau.b.x_g__mutmut_3": 1},
    }
    root = _project(tmp_path, codes, FIDELITY)
    done = run(root, "--json", str(tmp_path / "score.json"))
    assert done.returncode == 1, done.stderr  # a survivor of pkg/b.py is explained nowhere
    summary = json.loads((tmp_path / "score.json").read_text())
    # 7 mutants: killed = 1 + the timeout of a.py + 1 of b.py; survivors: a.py's (equivalent), b.py's two (one
    # CUDA-only, one unexplained)
    assert (summary["mutants"], summary["killed"], summary["survived"], summary["equivalent"]) == (7, 3, 3, 1)
    assert summary["cuda_only"] == 1
    assert summary["no_tests"] == 1 and summary["not_checked"] == 0
    assert summary["score"] == pytest.approx(3 / 7) and summary["score_without_equivalent"] == pytest.approx(3 / 6)
    assert summary["unexplained"] == ["bau.b.x_g__mutmut_1"]
    assert summary["stale_listed"] == ["bau.a.x_f__mutmut_9"]
    a, b = summary["files"]
    assert (a["file"], a["mutants"], a["killed"], a["equivalent"], a["unexplained"]) == ("pkg/a.py", 4, 2, 1, 0)
    assert (b["file"], b["survived"], b["cuda_only"], b["unexplained"]) == ("pkg/b.py", 2, 1, 1)
    assert "score: 3 of 7 mutants killed = 42.9%" in done.stdout
    assert "unexplained survivors: 1 in bau.b.x_g (first: mutmut show bau.b.x_g__mutmut_1)" in done.stdout
    assert "1 survivors only a CUDA device can kill" in done.stdout
    assert "not a survivor: bau.a.x_f__mutmut_9" in done.stdout


def test_every_survivor_explained_exits_0_and_unrun_mutants_are_reported(tmp_path, run):
    codes = {"pkg/a.py": {"bau.a.x_f__mutmut_1": 1, "bau.a.x_f__mutmut_2": 0, "bau.a.x_f__mutmut_3": None},
             "pkg/b.py": {"bau.b.x_g__mutmut_1": 1}}
    done = run(_project(tmp_path, codes, FIDELITY))
    assert done.returncode == 0, done.stdout
    assert "1 mutants not checked yet" in done.stdout


def test_missing_results_are_one_line_naming_the_file(tmp_path, run):
    root = _project(tmp_path, {"pkg/a.py": {"bau.a.x_f__mutmut_1": 1}}, FIDELITY)  # no pkg/b.py.meta
    done = run(root)
    assert done.returncode == 2 and done.stdout == ""
    meta = os.path.join(str(root), "mutants", "pkg/b.py.meta")
    assert done.stderr.strip().splitlines() == [f"error: {meta}: missing; run `make mutation` (mutmut run) first"]
    (root / "mutants" / "pkg" / "b.py.meta").write_text("{not json")
    done = run(root)
    assert done.returncode == 2 and "b.py.meta: unreadable mutmut results" in done.stderr
