"""The mutation score of `make mutation`, by module, and the survivors that docs/fidelity.md does not explain.

mutmut (``[tool.mutmut]`` in pyproject.toml) leaves one ``mutants/<file>.meta`` per mutated file, whose
``exit_code_by_key`` holds each mutant's verdict as the exit code of its tests (mutmut's ``status_by_exit_code``:
1 killed, 0 survived, 33 no test reached it, 36 timeout, ...). This script reads them, and reads the mutants
docs/fidelity.md lists (section "Mutation testing": table rows naming mutants in backticks; those under a
"### CUDA-only" heading survive on a CPU only, the others are equivalent),
then prints:

- per module: mutants, killed (timeouts count as killed, as in mutmut's badge), survived (equivalent /
  CUDA-only / unexplained), no tests, not checked;
- the score, killed / mutants, overall and with the equivalent mutants left out;
- the unexplained survivors, by function, and each listed mutant that is no longer a survivor
  (a stale entry).

Exit status: 0 when every survivor is explained, 1 when one is not, 2 on a missing or unreadable input.

    python scripts/mutation_report.py [--root .] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from typing import Dict, List, Optional

import tomllib

# mutmut 3.8's verdicts by exit code (mutmut.stats.status_by_exit_code); any other code is "suspicious".
STATUS_BY_EXIT_CODE = {
    1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 2: "interrupted", None: "not checked",
    34: "skipped", 35: "suspicious", 36: "timeout", 37: "caught by type check", -24: "timeout", 24: "timeout",
    152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault",
}
KILLED = ("killed", "timeout", "caught by type check")
MUTANT_NAME = re.compile(r"`(bau\.[\w.]+__mutmut_\d+)`")
SECTION = "## Mutation testing"


class ReportError(Exception):
    """A missing or unreadable input: one line naming the file."""


def status(exit_code: Optional[int]) -> str:
    return STATUS_BY_EXIT_CODE.get(exit_code, "suspicious")


def mutated_files(root: str) -> List[str]:
    path = os.path.join(root, "pyproject.toml")
    try:
        with open(path, "rb") as f:
            files = tomllib.load(f)["tool"]["mutmut"]["only_mutate"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as e:
        raise ReportError(f"{path}: no readable [tool.mutmut] only_mutate ({e.__class__.__name__})")
    return list(files)


def verdicts(root: str, files: List[str]) -> Dict[str, Dict[str, str]]:
    """``{file: {mutant name: status}}`` from mutmut's ``.meta`` files."""
    out = {}
    for file in files:
        path = os.path.join(root, "mutants", file + ".meta")
        try:
            with open(path, encoding="utf-8") as f:
                codes = json.load(f)["exit_code_by_key"]
        except FileNotFoundError:
            raise ReportError(f"{path}: missing; run `make mutation` (mutmut run) first")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ReportError(f"{path}: unreadable mutmut results ({e.__class__.__name__})")
        out[file] = {name: status(code) for name, code in codes.items()}
    return out


def listed_mutants(root: str) -> Dict[str, str]:
    """``{mutant name: "equivalent" | "cuda-only"}`` from the "Mutation testing" section of docs/fidelity.md: the
    names in its table rows, "cuda-only" under a heading that starts with "### CUDA-only"."""
    path = os.path.join(root, "docs", "fidelity.md")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}")
    start = text.find(SECTION)
    if start < 0:
        return {}
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:] if end < 0 else text[start:end]
    listed, kind = {}, "equivalent"
    for line in section.splitlines():
        if line.startswith("### "):
            kind = "cuda-only" if line.startswith("### CUDA-only") else "equivalent"
        elif line.startswith("|"):
            for name in MUTANT_NAME.findall(line):
                listed[name] = kind
    return listed


def summarise(by_file: Dict[str, Dict[str, str]], listed: Dict[str, str]) -> Dict:
    rows, unexplained = [], []
    survivors = set()
    for file, mutants in by_file.items():
        counts = Counter(mutants.values())
        surv = sorted(n for n, s in mutants.items() if s == "survived")
        survivors.update(surv)
        equiv = [n for n in surv if listed.get(n) == "equivalent"]
        cuda = [n for n in surv if listed.get(n) == "cuda-only"]
        unexplained += [n for n in surv if n not in listed]
        rows.append({"file": file, "mutants": len(mutants), "killed": sum(counts[s] for s in KILLED),
                     "survived": len(surv), "equivalent": len(equiv), "cuda_only": len(cuda),
                     "unexplained": len(surv) - len(equiv) - len(cuda),
                     "no_tests": counts["no tests"], "not_checked": counts["not checked"],
                     "other": len(mutants) - sum(counts[s] for s in KILLED) - len(surv) - counts["no tests"]
                     - counts["not checked"]})
    total = sum(r["mutants"] for r in rows)
    killed = sum(r["killed"] for r in rows)
    equivalent_total = sum(r["equivalent"] for r in rows)
    return {
        "files": rows, "mutants": total, "killed": killed, "survived": sum(r["survived"] for r in rows),
        "equivalent": equivalent_total, "cuda_only": sum(r["cuda_only"] for r in rows),
        "no_tests": sum(r["no_tests"] for r in rows),
        "not_checked": sum(r["not_checked"] for r in rows),
        "score": killed / total if total else 0.0,
        "score_without_equivalent": killed / (total - equivalent_total) if total > equivalent_total else 0.0,
        "unexplained": unexplained,
        "stale_listed": sorted(n for n in listed if n not in survivors),
    }


def render(summary: Dict) -> str:
    lines = [f"{'module':28s} {'mutants':>7s} {'killed':>7s} {'survived':>8s} {'equiv.':>6s} {'CUDA':>4s} "
             f"{'unexpl.':>7s} {'no test':>7s} {'unrun':>5s}"]
    for r in summary["files"]:
        lines.append(f"{r['file']:28s} {r['mutants']:7d} {r['killed']:7d} {r['survived']:8d} {r['equivalent']:6d} "
                     f"{r['cuda_only']:4d} {r['unexplained']:7d} {r['no_tests']:7d} {r['not_checked']:5d}")
    lines.append(f"score: {summary['killed']} of {summary['mutants']} mutants killed = {100 * summary['score']:.1f}%; "
                 f"without the {summary['equivalent']} equivalent ones "
                 f"{100 * summary['score_without_equivalent']:.1f}%")
    if summary["not_checked"]:
        lines.append(f"{summary['not_checked']} mutants not checked yet: the run was interrupted (run it again)")
    by_function = Counter(name.rsplit("__mutmut_", 1)[0] for name in summary["unexplained"])
    for function, count in sorted(by_function.items()):
        first = min((n for n in summary["unexplained"] if n.rsplit("__mutmut_", 1)[0] == function),
                    key=lambda n: int(n.rsplit("_", 1)[1]))
        lines.append(f"unexplained survivors: {count} in {function} (first: mutmut show {first})")
    if summary["cuda_only"]:
        lines.append(f"{summary['cuda_only']} survivors only a CUDA device can kill (docs/fidelity.md, CUDA-only; "
                     "their tests are skipped without one)")
    for name in summary["stale_listed"]:
        lines.append(f"listed in docs/fidelity.md but not a survivor: {name}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=".", help="the repository root (holds pyproject.toml and mutants/)")
    parser.add_argument("--json", help="also write the summary as JSON to this path")
    args = parser.parse_args(argv)
    try:
        summary = summarise(verdicts(args.root, mutated_files(args.root)), listed_mutants(args.root))
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(summary))
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
        os.replace(tmp, args.json)
    return 1 if summary["unexplained"] else 0


if __name__ == "__main__":
    sys.exit(main())
