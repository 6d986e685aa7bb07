"""The ablation tables of the paper from sweep folders, as Markdown and CSV.

    python -m analysis.tables --sweep runs/demo --out figures/
    python -m analysis.tables --sweep runs/p3_c3 --sweep runs/p3_ms --sweep runs/p3_m --out tables/

- Table 5: loss functions on the augmented images (baseline without augmented images, L_ce,
  L_align, L_align + L_uniform, + L_domain);
- Table 6: the weighting strategy of L_align x domain-specific prototypes of L_domain;
- Table 8: the three augmentations (Random Erasing, RandAugment, Color Jitter) switched on/off;
- Table 9: the augmentation probability p of BAU, with the paired difference BAU - baseline in
  mAP at the same p (per seed, then the mean and its 95 % t-interval) where the sweeps have both.

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

Seeds: every cell is the mean over the runs that match it and differ only in their training seed
(sweep label ``seed``; ``bau.runs.statistics``), written ``31.6 ± 1.2 (n=3)`` (sample std; a single seed is
``31.6 (n=1)``). The average over settings is the mean over the seeds every setting has of the
per-seed average. Runs that match one cell and differ in anything else (two sweeps, a lambda
axis) are an error naming both runs; nothing is picked silently.

Writes ``<out>/tables.md`` (all tables) and ``<out>/table<N>.csv`` per table (columns ``mean``,
``std``, ``n`` per number; ``std`` empty for n = 1), and prints the Markdown.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from analysis.sweep_data import UNCONVERGED_MARK, base_dataset, cell_convergence, dataset_label, run_cli
from bau.core.errors import BauError
from bau.runs.folder import Run, same_value, sweep_runs
from bau.runs.statistics import SEED, PairedDifference, Spread, paired_difference, runs_by_seed, seed_of, spread

CHECK = "\u2713"
# Loss switches of the full objective (Eq. 9) and the augmentation switches: the fixed context
# of rows that do not vary them.
FULL_LOSS = {"loss.two_view": True, "loss.ce_aug": False, "loss.align": True, "loss.uniform": True,
             "loss.domain": True, "loss.weighting": True, "loss.domain_specific": True}
ANY = None  # a row spec value that matches anything (the setting is irrelevant to that row)
# The augmentations of the rows that vary something else (Tables 5, 6, 9): Random Erasing and
# RandAugment on, colour jitter as the sweep chose it for all its methods (the paper's BAU has it on;
# the Figure-1 sweep has it off everywhere, Sec. 3.1). A sweep that mixes both in one cell is an error.
SETTING_AUGMENTATIONS = {"data.random_erasing": True, "data.randaugment": True, "data.color_jitter": ANY}
P_AT_REFERENCE = "<p>"  # placeholder for --p in a row spec


@dataclass
class Row:
    """One table row: its label cells and the config settings a run must have (alternatives).

    ``reference``: the settings of the runs the row is compared with, paired by seed (Table 9:
    the baseline at the row's p); empty for no comparison.
    """

    cells: Tuple[str, ...]
    specs: Tuple[Dict[str, Any], ...]
    reference: Tuple[Dict[str, Any], ...] = ()


@dataclass
class Table:
    key: str
    title: str
    header: Tuple[str, ...]  # names of the label cells
    rows: Callable[[float, List[float]], List[Row]]  # (reference p, every p seen) -> rows


def _table5(p: float, _: List[float]) -> List[Row]:
    at_p = {**FULL_LOSS, **SETTING_AUGMENTATIONS, "data.aug_prob": P_AT_REFERENCE}
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
        spec = {**FULL_LOSS, **SETTING_AUGMENTATIONS, "data.aug_prob": P_AT_REFERENCE, "loss.weighting": weighting,
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


# CE + triplet on one view with the augmentations at some p (the Figure 1 baseline): Table 9's reference
BASELINE = {"loss.two_view": False, "loss.ce_aug": False, "loss.align": False, "loss.uniform": False,
            "loss.domain": False, **SETTING_AUGMENTATIONS}


def _table9(p: float, all_ps: List[float]) -> List[Row]:
    return [Row((f"{q:g}",), ({**FULL_LOSS, **SETTING_AUGMENTATIONS, "data.aug_prob": q},),
                reference=({**BASELINE, "data.aug_prob": q},)) for q in sorted(all_ps)]


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
    seen = set()
    for sweep in sweeps:
        if os.path.realpath(sweep) in seen:
            continue  # the same folder given twice: its runs once
        seen.add(os.path.realpath(sweep))
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


@dataclass
class Cell:
    """One row on one setting: its runs by seed, mAP and Rank-1 (in %) over them, and the paired
    mAP difference to the row's reference (None without a reference run)."""

    runs: Dict[int, Run]
    mAP: Spread
    rank1: Spread
    difference: Optional[PairedDifference] = None
    reference: Optional[Dict[int, Run]] = None  # the runs the difference is against
    # the runs were still improving at the end (analysis.sweep_data.cell_convergence); None: no curve to judge
    still_improving: Optional[bool] = None


@dataclass
class TableRows:
    """A table's content before it is written: label names, settings, and per row its label cells,
    one ``Cell`` (or None) per setting and the average over settings (or None)."""

    labels: Tuple[str, ...]
    settings: List[Setting]
    names: List[str]  # display names of the settings
    rows: List[Tuple[Tuple[str, ...], List[Optional[Cell]], Optional[Tuple[Spread, Spread]]]]

    @property
    def compared(self) -> bool:
        """Whether some cell has a paired difference (its columns are shown)."""
        return any(c is not None and c.difference is not None for _, cells, _ in self.rows for c in cells)


def _seed(run: Run, cfg: Dict[str, Any]) -> int:
    """A run's training seed: its ``seed`` label, else ``train.seed`` of its (flat) config."""
    return seed_of(run) if SEED in run.labels else int(cfg["train.seed"])


def _cell_runs(entries: List[Tuple[Setting, Run, Dict[str, Any]]], setting: Setting, specs: Sequence[Dict[str, Any]],
               p: float, what: str) -> Optional[Dict[int, Run]]:
    """``{seed: run}`` of the runs of ``setting`` matching one of ``specs`` (None if none does)."""
    found = [(run, cfg) for s, run, cfg in entries if s == setting and any(matches(cfg, spec, p) for spec in specs)]
    if not found:
        return None
    seeds = {id(run): _seed(run, cfg) for run, cfg in found}
    return runs_by_seed([run for run, _ in found], what, seed=lambda r: seeds[id(r)])


def _value_of_seed(values: Spread, seed: int) -> float:
    return values.values[values.seeds.index(seed)]


def _average(cells: List[Optional[Cell]], what: str, note: Callable[[str], None]) -> Optional[Tuple[Spread, Spread]]:
    """Per seed the mean over settings of mAP and Rank-1, over the seeds every setting has."""
    if any(c is None for c in cells):
        return None
    common = sorted(set.intersection(*(set(c.runs) for c in cells)))
    left_out = sorted(set.union(*(set(c.runs) for c in cells)) - set(common))
    if left_out:
        note(f"note: {what}: seeds {', '.join(map(str, left_out))} are not in every setting; "
             f"left out of the average" if common else f"note: {what}: no seed is in every setting; no average")
    if not common:
        return None
    out = []
    for key in ("mAP", "rank1"):
        per_seed = {s: sum(_value_of_seed(getattr(c, key), s) for c in cells) / len(cells) for s in common}
        out.append(spread(per_seed))
    return out[0], out[1]


def build_table(table: Table, entries: List[Tuple[Setting, Run, Dict[str, Any]]], p: float,
                note: Callable[[str], None]) -> TableRows:
    """The rows of one table some run matches, over seeds (rows no run matches are left out).

    Raises:
        BauError: runs that match one cell differ in more than the seed (``bau.runs.statistics.runs_by_seed``).
    """
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
    rows = []
    for row in table.rows(p, unique_ps):
        row_name = " / ".join(c or "-" for c in row.cells)
        cells: List[Optional[Cell]] = []
        for setting, name in zip(settings, names):
            what = f"{table.key} row {row_name} ({name})"
            runs = _cell_runs(entries, setting, row.specs, p, what)
            if runs is None:
                cells.append(None)
                continue
            mAP = spread({s: 100 * r.metric(setting.target, "mAP") for s, r in runs.items()})
            rank1 = spread({s: 100 * r.metric(setting.target, "rank1") for s, r in runs.items()})
            reference = _cell_runs(entries, setting, row.reference, p, f"{what}, reference") if row.reference else None
            difference = None
            if reference is not None:
                difference = paired_difference({s: 100 * r.metric(setting.target, "mAP") for s, r in reference.items()},
                                               dict(zip(mAP.seeds, mAP.values)))
                if difference.unpaired:
                    note(f"note: {what}: seeds {', '.join(map(str, difference.unpaired))} have no run of the other "
                         f"method; left out of the paired difference")
            late = cell_convergence(runs, setting.target).still_improving
            cells.append(Cell(runs, mAP, rank1, difference, reference, late))
        if all(c is None for c in cells):
            continue
        average = _average(cells, f"{table.key} row {row_name}", note) if len(settings) > 1 else None
        rows.append((row.cells, cells, average))
    return TableRows(table.header, settings, names, rows)


DIFFERENCE = "\u0394mAP vs baseline"


def _layout(t: TableRows, number_columns: Callable[[str], List[str]],
            number_cells: Callable[[Optional[Spread]], List[str]], difference_columns: Callable[[str], List[str]],
            difference_cells: Callable[[Optional[PairedDifference]], List[str]],
            late_columns: Callable[[str], List[str]] = lambda title: [],
            late_cells: Callable[[List[str], Optional[Cell]], List[str]] = lambda cells, c: cells
            ) -> Tuple[List[str], List[List[str]]]:
    """``(header, rows)`` of ``t``: the row labels, per setting mAP, Rank-1 (and the paired difference
    when compared), the averages over settings, and the runs. ``number_columns(title)`` and
    ``number_cells(spread or None)`` give a number's columns; ``difference_*`` a difference's;
    ``late_cells(mAP cells, cell)`` marks a cell whose runs were still improving (``late_columns``:
    the columns it adds)."""
    header = list(t.labels)
    for name in t.names:
        header += number_columns(f"{name} mAP") + late_columns(f"{name} mAP") + number_columns(f"{name} Rank-1")
        if t.compared:
            header += difference_columns(f"{name} {DIFFERENCE}")
    if len(t.settings) > 1:
        header += number_columns("Average mAP") + number_columns("Average Rank-1")
    header += ["runs"] + (["baseline runs"] if t.compared else [])
    rows = []
    for labels, cells, average in t.rows:
        out = list(labels)
        for c in cells:
            out += (late_cells(number_cells(None if c is None else c.mAP), c)
                    + number_cells(None if c is None else c.rank1))
            if t.compared:
                out += difference_cells(None if c is None else c.difference)
        if len(t.settings) > 1:
            out += number_cells(None if average is None else average[0])
            out += number_cells(None if average is None else average[1])
        out.append(_run_names(cells))
        if t.compared:
            out.append(_run_names(cells, reference=True))
        rows.append(out)
    return header, rows


def _run_names(cells: List[Optional[Cell]], reference: bool = False) -> str:
    """The names of the runs behind a row's cells (or behind their paired differences' reference)."""
    return " ".join(r.name for c in cells if c is not None
                    for r in ((c.reference or {}) if reference else c.runs).values())


def markdown_rows(t: TableRows) -> Tuple[List[str], List[List[str]]]:
    """``(header, rows)`` as shown: ``31.6 ± 1.2 (n=3)`` cells, the difference as ``+2.3 [-1.5, +6.1] (n=3)``;
    a cell whose runs were still improving at the end gets the dagger."""
    def mark(cells: List[str], c: Optional[Cell]) -> List[str]:
        return [cells[0] + f" {UNCONVERGED_MARK}"] if c is not None and c.still_improving else cells

    return _layout(t, lambda title: [title], lambda s: [""] if s is None else [s.text()],
                   lambda title: [f"{title} (95% CI)"], lambda d: [""] if d is None else [d.text()],
                   late_cells=mark)


def _number(x: Optional[float]) -> str:
    return "" if x is None else f"{x:.4f}"


def csv_rows(t: TableRows) -> Tuple[List[str], List[List[str]]]:
    """``(header, rows)`` for the CSV: ``mean``, ``std`` (empty for n = 1) and ``n`` columns per number;
    the difference as ``mean``, ``ci_low``, ``ci_high``, ``n``."""
    def spread_cells(s: Optional[Spread]) -> List[str]:
        return ["", "", ""] if s is None else [f"{s.mean:.4f}", "" if s.std is None else f"{s.std:.4f}", str(s.n)]

    def difference_cells(d: Optional[PairedDifference]) -> List[str]:
        return ["", "", "", ""] if d is None else [_number(d.mean), _number(d.ci_low), _number(d.ci_high), str(d.n)]

    def late(cells: List[str], c: Optional[Cell]) -> List[str]:
        flag = "" if c is None or c.still_improving is None else str(int(c.still_improving))
        return cells + [flag]

    return _layout(t, lambda title: [f"{title} {k}" for k in ("mean", "std", "n")], spread_cells,
                   lambda title: [f"{title} {k}" for k in ("mean", "ci_low", "ci_high", "n")], difference_cells,
                   late_columns=lambda title: [f"{title} still_improving"], late_cells=late)


def markdown(title: str, header: List[str], rows: List[List[str]]) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    lines = [f"### {title}", "", "| " + " | ".join(map(esc, header)) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def build_tables(sweeps: Sequence[str], p: float = 0.5, note: Callable[[str], None] = lambda s: None
                 ) -> List[Dict[str, Any]]:
    """Every table with at least one row: ``[{"key", "title", "markdown": (header, rows), "csv": (header, rows)}]``."""
    entries = collect(sweeps, note)
    out = []
    for table in TABLES:
        content = build_table(table, entries, p, note)
        if content.rows:
            out.append({"key": table.key, "title": table.title, "markdown": markdown_rows(content),
                        "csv": csv_rows(content)})
    return out


def _body(args: argparse.Namespace) -> None:
    from bau.core.atomic import atomic_write_text

    note = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    tables = build_tables(args.sweep, args.p, note)
    if not tables:
        raise BauError(f"sweeps {', '.join(args.sweep)}: no run matches a row of Tables 5, 6, 8 or 9 "
                       f"(at p = {args.p:g}; see `python -m analysis.tables --help`)")
    text = (f"Metrics in %, mAP and Rank-1 per setting (sources \u2192 target); p = {args.p:g} unless the row says. "
            f"Each cell: mean \u00b1 sample std over the seeds of its runs (n = number of seeds; n=1: one run, no "
            f"spread). {DIFFERENCE}: BAU minus the baseline at the same p, paired by seed, mean [95% t-interval]. "
            f"{UNCONVERGED_MARK}: the cell's runs were still improving at the end of training (the last 20% of "
            f"steps raised mAP by more than the seed spread).\n\n")
    text += "\n".join(markdown(t["title"], *t["markdown"]) for t in tables)
    os.makedirs(args.out, exist_ok=True)
    for t in tables:
        buf = io.StringIO()
        writer = csv.writer(buf)
        header, rows = t["csv"]
        writer.writerow(header)
        writer.writerows(rows)
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
