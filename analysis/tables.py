"""The ablation tables of the paper from sweep folders, as Markdown and CSV.

    python -m analysis.tables --sweep runs/demo --out figures/
    python -m analysis.tables --sweep runs/p3_c3 --sweep runs/p3_ms --sweep runs/p3_m --out tables/

- Table 5: loss functions on the augmented images (baseline without augmented images, L_ce,
  L_align, L_align + L_uniform, + L_domain);
- Table 6: the weighting strategy of L_align x domain-specific prototypes of L_domain;
- Table 8: the three augmentations (Random Erasing, RandAugment, Color Jitter) switched on/off;
- Table 9: the augmentation probability p of BAU.

A row is found by what a run IS, not by how its sweep labelled it: each run's resolved
``config.yaml`` is compared with the row's settings (below). Tables 5, 6 and 8 compare at one p
(``--p``, the paper's 0.5; the baseline row is p = 0, and "no augmentation" in Table 8 is any p
with all three switched off, or all on at p = 0, which trains the same pipeline). Only rows some
run matches are printed. With the demo sweep (labels ``method`` in {baseline, bau, bau_noweight,
bau_nodomain, baseline_id} x ``aug_prob``) that is: Table 5 baseline / L_align + L_uniform / full,
Table 6 with and without the weighting, Table 8 none / all, Table 9 every p of BAU.

Columns: per setting (sources -> target, one per distinct training setup among the sweeps; runs of
several sweeps with the same setup share it) mAP and Rank-1 in %, then their average when there are
several settings. Runs trained on their own
target (``baseline_id``: the target is a source) are in-distribution and not part of any table.
If several runs of one setting match a row (e.g. a sweep over lambda), the first in summary order
is used and a note names the others.

Writes ``<out>/tables.md`` (all tables) and ``<out>/table<N>.csv`` per table, and prints the Markdown.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from analysis.sweep_data import base_dataset, dataset_label, run_cli
from bau.errors import BauError
from bau.runs import Run, same_value, sweep_runs

CHECK = "\u2713"
# Loss switches of the full objective (Eq. 9) and the augmentation switches: the fixed context
# of rows that do not vary them.
FULL_LOSS = {"loss.two_view": True, "loss.ce_aug": False, "loss.align": True, "loss.uniform": True,
             "loss.domain": True, "loss.weighting": True, "loss.domain_specific": True}
ALL_AUGMENTATIONS = {"data.random_erasing": True, "data.randaugment": True, "data.color_jitter": True}
P_AT_REFERENCE = "<p>"  # placeholder for --p in a row spec
ANY = None  # a row spec value that matches anything (the setting is irrelevant to that row)


@dataclass
class Row:
    """One table row: its label cells and the config settings a run must have (alternatives)."""

    cells: Tuple[str, ...]
    specs: Tuple[Dict[str, Any], ...]


@dataclass
class Table:
    key: str
    title: str
    header: Tuple[str, ...]  # names of the label cells
    rows: Callable[[float, List[float]], List[Row]]  # (reference p, every p seen) -> rows


def _table5(p: float, _: List[float]) -> List[Row]:
    at_p = {**FULL_LOSS, **ALL_AUGMENTATIONS, "data.aug_prob": P_AT_REFERENCE}
    partial = {"loss.domain": False, "loss.domain_specific": ANY}  # L_domain off: its prototypes are irrelevant
    return [
        # CE + triplet on one view that sees no augmentation (p = 0, or every augmentation switched off)
        Row(("Baseline (w/o augmented images)",),
            ({"loss.two_view": False, "loss.ce_aug": False, "loss.align": False, "loss.uniform": False,
              "loss.domain": False, "_no_augmentation": True},)),
        Row(("L_ce",), ({**at_p, **partial, "loss.ce_aug": True, "loss.align": False, "loss.uniform": False,
                         "loss.weighting": ANY},)),
        Row(("L_align",), ({**at_p, **partial, "loss.uniform": False},)),
        Row(("L_align + L_uniform",), ({**at_p, **partial},)),
        Row(("L_align + L_uniform + L_domain",), (at_p,)),
    ]


def _table6(p: float, _: List[float]) -> List[Row]:
    rows = []
    for weighting, specific in ((False, False), (True, False), (False, True), (True, True)):
        spec = {**FULL_LOSS, **ALL_AUGMENTATIONS, "data.aug_prob": P_AT_REFERENCE, "loss.weighting": weighting,
                "loss.domain_specific": specific}
        rows.append(Row((CHECK if weighting else "", CHECK if specific else ""), (spec,)))
    return rows


def _table8(p: float, _: List[float]) -> List[Row]:
    rows = []
    for re_ in (False, True):
        for ra in (False, True):
            for cj in (False, True):
                if re_ or ra or cj:
                    spec = {**FULL_LOSS, "data.random_erasing": re_, "data.randaugment": ra, "data.color_jitter": cj,
                            "data.aug_prob": P_AT_REFERENCE}
                else:  # nothing applied: all three off at any p, or all on at p = 0 (the same pipeline)
                    spec = {**FULL_LOSS, "_no_augmentation": True}
                rows.append(Row(tuple(CHECK if on else "-" for on in (re_, ra, cj)), (spec,)))
    # the paper's order: by how many augmentations are on, then RE before RA before CJ
    return sorted(rows, key=lambda r: (sum(c == CHECK for c in r.cells), [c != CHECK for c in r.cells]))


def _table9(p: float, all_ps: List[float]) -> List[Row]:
    return [Row((f"{q:g}",), ({**FULL_LOSS, **ALL_AUGMENTATIONS, "data.aug_prob": q},)) for q in sorted(all_ps)]


TABLES = [
    Table("table5", "Table 5: loss functions for augmented images", ("Method",), _table5),
    Table("table6", "Table 6: weighting strategy and domain-specific prototypes",
          ("Weighting of L_align", "Domain-specific prototypes of L_domain"), _table6),
    Table("table8", "Table 8: data augmentations", ("Random Erasing", "RandAugment", "Color Jitter"), _table8),
    Table("table9", "Table 9: probability p of the augmentations", ("p",), _table9),
]


# ---------------------------------------------------------------------------------------------
# matching runs to rows
# ---------------------------------------------------------------------------------------------

def flat_config(run: Run) -> Dict[str, Any]:
    """``{"loss.align": True, "data.aug_prob": 0.5, ...}`` of a run's resolved config."""
    out = {}
    for section, values in run.config().to_dict().items():
        for key, value in values.items():
            out[f"{section}.{key}"] = value
    return out


def _no_augmentation(cfg: Dict[str, Any]) -> bool:
    """The augmented pipeline applies nothing (bau.data.transforms leaves out an op with p = 0 or switched off)."""
    return cfg["data.aug_prob"] == 0 or not (cfg["data.random_erasing"] or cfg["data.randaugment"]
                                             or cfg["data.color_jitter"])


def matches(cfg: Dict[str, Any], spec: Dict[str, Any], p: float) -> bool:
    """Whether a flat config has every setting of a row spec (``ANY`` matches anything)."""
    for key, want in spec.items():
        if want is ANY:
            continue
        if key == "_no_augmentation":
            if _no_augmentation(cfg) != want:
                return False
            continue
        if want == P_AT_REFERENCE:
            want = p
        have = cfg[key]
        if isinstance(want, float):
            if not same_value(have, want):
                return False
        elif have != want:
            return False
    return True


@dataclass(frozen=True)
class Setting:
    """One training setup (sources -> target): a column group. Runs of several sweeps with the
    same setup (e.g. a main grid and an extra ablation grid) share it."""

    sources: Tuple[str, ...]
    target: str

    @property
    def label(self) -> str:
        return f"{'+'.join(dataset_label(s) for s in self.sources)} \u2192 {dataset_label(self.target)}"

    @property
    def full_label(self) -> str:
        return f"{'+'.join(self.sources)} \u2192 {self.target}"


def collect(sweeps: Sequence[str], note: Callable[[str], None]) -> List[Tuple[Setting, Run, Dict[str, Any]]]:
    """Every finished DG run of the sweeps, once per target it was evaluated on: (setting, run, flat config)."""
    out = []
    for sweep in sweeps:
        runs = sweep_runs(sweep)
        unfinished = [r.name for r in runs if r.status != "finished"]
        if unfinished:
            note(f"note: {sweep}: {len(unfinished)} unfinished runs left out ({', '.join(unfinished)})")
        for run in runs:
            if run.status != "finished":
                continue
            cfg = flat_config(run)
            source_bases = {base_dataset(s).lower() for s in cfg["data.sources"]}
            for target in run.metrics():
                if base_dataset(target).lower() in source_bases:
                    continue  # trained on its target: in-distribution, not a DG ablation
                out.append((Setting(tuple(cfg["data.sources"]), target), run, cfg))
    if not out:
        raise BauError(f"sweeps {', '.join(sweeps)}: no finished run evaluated on a target outside its sources")
    return out


def build_table(table: Table, entries: List[Tuple[Setting, Run, Dict[str, Any]]], p: float,
                note: Callable[[str], None]) -> Tuple[List[str], List[List[str]], List[Setting]]:
    """``(header, rows, settings)`` of one table: rows no run matches are left out."""
    settings: List[Setting] = []
    for setting, _, _ in entries:
        if setting not in settings:
            settings.append(setting)
    unique_ps: List[float] = []
    for q in sorted(float(cfg["data.aug_prob"]) for _, _, cfg in entries):
        if not any(same_value(q, u) for u in unique_ps):
            unique_ps.append(q)
    labels = [s.label for s in settings]
    # abbreviations can collide (cuhk03 and cuhk03_labeled are both C3): then the full names
    names = [s.full_label if labels.count(s.label) > 1 else s.label for s in settings]
    header = list(table.header)
    for name in names:
        header += [f"{name} mAP", f"{name} Rank-1"]
    if len(settings) > 1:
        header += ["Average mAP", "Average Rank-1"]
    header.append("runs")
    rows = []
    for row in table.rows(p, unique_ps):
        cells, used, values = list(row.cells), [], []
        for setting in settings:
            found = [(run, cfg) for s, run, cfg in entries
                     if s == setting and any(matches(cfg, spec, p) for spec in row.specs)]
            if len(found) > 1:
                note(f"note: {table.key} row {' / '.join(c or '-' for c in row.cells)} ({setting.label}): runs "
                     f"{', '.join(r.path for r, _ in found)} all match; using {found[0][0].path}")
            if found:
                run = found[0][0]
                m, r1 = 100 * run.metric(setting.target, "mAP"), 100 * run.metric(setting.target, "rank1")
                values.append((m, r1))
                cells += [f"{m:.1f}", f"{r1:.1f}"]
                used.append(run.name)
            else:
                values.append(None)
                cells += ["", ""]
        if not used:
            continue
        if len(settings) > 1:
            if all(v is not None for v in values):
                cells += [f"{sum(v[0] for v in values) / len(values):.1f}",
                          f"{sum(v[1] for v in values) / len(values):.1f}"]
            else:
                cells += ["", ""]
        cells.append(" ".join(used))
        rows.append(cells)
    return header, rows, settings


def markdown(title: str, header: List[str], rows: List[List[str]]) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    lines = [f"### {title}", "", "| " + " | ".join(map(esc, header)) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def build_tables(sweeps: Sequence[str], p: float = 0.5, note: Callable[[str], None] = lambda s: None
                 ) -> List[Dict[str, Any]]:
    """Every table with at least one row: ``[{"key", "title", "header", "rows"}]``."""
    entries = collect(sweeps, note)
    out = []
    for table in TABLES:
        header, rows, _ = build_table(table, entries, p, note)
        if rows:
            out.append({"key": table.key, "title": table.title, "header": header, "rows": rows})
    return out


def _body(args: argparse.Namespace) -> None:
    from bau.atomic import atomic_write_text

    note = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    tables = build_tables(args.sweep, args.p, note)
    if not tables:
        raise BauError(f"sweeps {', '.join(args.sweep)}: no run matches a row of Tables 5, 6, 8 or 9 "
                       f"(at p = {args.p:g}; see `python -m analysis.tables --help`)")
    text = f"Metrics in %, mAP and Rank-1 per setting (sources \u2192 target); p = {args.p:g} unless the row says.\n\n"
    text += "\n".join(markdown(t["title"], t["header"], t["rows"]) for t in tables)
    os.makedirs(args.out, exist_ok=True)
    for t in tables:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(t["header"])
        writer.writerows(t["rows"])
        atomic_write_text(os.path.join(args.out, f"{t['key']}.csv"), buf.getvalue())
    atomic_write_text(os.path.join(args.out, "tables.md"), text)
    print(text, end="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="append", required=True,
                        help="sweep folder written by `bau sweep` (repeat for several settings)")
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument("--p", type=float, default=0.5, help="p of the rows of Tables 5, 6, 8 (default 0.5)")
    parser.add_argument("--quiet", action="store_true", help="no notes on stderr")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(_body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
