"""Seeds as an axis: the runs of one cell over their training seeds, and the numbers reported for them.

A sweep may repeat every run over seeds (``seeds: [1, 2, 3]`` in the sweep file, or a
``train.seed`` grid axis); the copies carry the label ``seed`` (``bau.engine.sweep``). A CELL is what
one table cell or one plotted point stands for (a method at a p, a table row on one setting);
every number reported for it is over the cell's seeds:

- ``Spread``: mean, sample standard deviation (ddof = 1) and n. With n = 1 there is no spread
  and none is shown: ``31.6 (n=1)``, never ``31.6 ± 0.0``.
- ``PairedDifference``: treatment minus reference per seed, for two methods at the same other
  settings, paired by seed value (seeds only one side has are left out and listed); the mean
  difference and its 95 % t-interval ``mean ± t(0.975, n - 1) * sd / sqrt(n)``.
- ``PairedDifference.detectable``: the smallest true difference the design would detect with 80 %
  power at the 5 % level, from the observed spread of the differences (``(t(0.975, n-1) +
  t(0.80, n-1)) * sd / sqrt(n)``), so "not shown" reads "smaller than X", not "unknown".
- ``late_gain`` / ``Convergence``: how much a run's learning curve still rose over its last 20 %
  of steps, and whether a cell's runs were still improving at the end (the mean late gain exceeds
  the spread of the final values over seeds, or a floor when there is no spread).
- ``runs_by_seed``: the runs of one cell keyed by seed. Runs that differ in anything but the seed
  (another sweep folder, another label such as a lambda axis), or two runs of one seed, are an
  ambiguity: a one-line ``BauError`` naming both runs. Nothing is ever reduced to one seed silently.

Everything here is pure: numbers and ``bau.runs.folder.Run`` objects in, numbers out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

from bau.core.errors import BauError
from bau.runs.folder import Run, same_value

SEED = "seed"  # the label of the seed axis (bau.engine.sweep)
CONFIDENCE = 0.95  # of the paired difference's interval
POWER = 0.80  # of the smallest detectable difference
LATE_FRACTION = 0.2  # the last part of training whose gain says a run was still improving


def seed_of(run: Run) -> int:
    """A run's training seed: its ``seed`` label, else ``train.seed`` of its config."""
    if SEED in run.labels:
        value = run.labels[SEED]
        try:
            return int(value)
        except (TypeError, ValueError):
            raise BauError(f"run {run.path}: seed label {value!r} is not an integer") from None
    return int(run.config().train.seed)


@dataclass(frozen=True)
class Spread:
    """One cell's values over seeds: ``values[i]`` is the value of seed ``seeds[i]``.

    ``std`` is the sample standard deviation (ddof = 1); None when n = 1 (no spread to show).
    """

    values: Tuple[float, ...]
    seeds: Tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.values:
            raise BauError("spread over seeds: no values (expected at least one run)")
        if self.seeds and len(self.seeds) != len(self.values):
            raise BauError(f"spread over seeds: {len(self.values)} values but {len(self.seeds)} seeds")

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / self.n

    @property
    def std(self) -> Optional[float]:
        if self.n < 2:
            return None
        m = self.mean
        return math.sqrt(math.fsum((v - m) ** 2 for v in self.values) / (self.n - 1))

    def text(self, digits: int = 1) -> str:
        """``31.6 ± 1.2 (n=3)``; ``31.6 (n=1)`` for a single seed."""
        if self.std is None:
            return f"{self.mean:.{digits}f} (n=1)"
        return f"{self.mean:.{digits}f} \u00b1 {self.std:.{digits}f} (n={self.n})"

    def columns(self, name: str) -> Dict[str, object]:
        """``{name_mean, name_std, name_n, name_values}`` for a data file (``std`` None when n = 1)."""
        return {f"{name}_mean": self.mean, f"{name}_std": self.std, f"{name}_n": self.n,
                f"{name}_values": list(self.values)}


def spread(by_seed: Mapping[int, float]) -> Spread:
    """The ``Spread`` of ``{seed: value}``, in seed order."""
    seeds = tuple(sorted(by_seed))
    return Spread(tuple(float(by_seed[s]) for s in seeds), seeds)


@dataclass(frozen=True)
class PairedDifference:
    """``treatment - reference`` per paired seed, with the mean and its 95 % t-interval.

    ``reference_only`` / ``treatment_only``: the seeds only one side has (left out of the pairing).
    ``ci_low`` / ``ci_high`` are None with fewer than two pairs (no interval from one pair), and
    every statistic is None with none.
    """

    seeds: Tuple[int, ...]
    differences: Tuple[float, ...]
    reference_only: Tuple[int, ...] = ()
    treatment_only: Tuple[int, ...] = ()

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> Optional[float]:
        return math.fsum(self.differences) / self.n if self.n else None

    @property
    def std(self) -> Optional[float]:
        return Spread(self.differences).std if self.n else None

    @property
    def half_width(self) -> Optional[float]:
        """``t(0.975, n - 1) * sd / sqrt(n)``."""
        if self.n < 2:
            return None
        from scipy.stats import t

        return float(t.ppf(0.5 + CONFIDENCE / 2, self.n - 1)) * self.std / math.sqrt(self.n)

    @property
    def ci_low(self) -> Optional[float]:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def ci_high(self) -> Optional[float]:
        return None if self.half_width is None else self.mean + self.half_width

    @property
    def detectable(self) -> Optional[float]:
        """Smallest true difference detected with ``POWER`` (80 %) at the two-sided 5 % level, given
        the observed sd of the differences: ``(t(0.975, n-1) + t(0.80, n-1)) * sd / sqrt(n)``
        (the normal approximation with t quantiles). None with fewer than two pairs."""
        if self.n < 2:
            return None
        from scipy.stats import t

        q = float(t.ppf(0.5 + CONFIDENCE / 2, self.n - 1)) + float(t.ppf(POWER, self.n - 1))
        return q * self.std / math.sqrt(self.n)

    @property
    def unpaired(self) -> Tuple[int, ...]:
        return tuple(sorted(self.reference_only + self.treatment_only))

    def text(self, digits: int = 1) -> str:
        """``+2.3 [-1.5, 6.1] (n=3)``; ``+2.3 (n=1, no interval)``; ``no seed in common``."""
        if self.n == 0:
            return "no seed in common"
        if self.half_width is None:
            return f"{self.mean:+.{digits}f} (n=1, no interval)"
        return f"{self.mean:+.{digits}f} [{self.ci_low:+.{digits}f}, {self.ci_high:+.{digits}f}] (n={self.n})"

    def columns(self, name: str) -> Dict[str, object]:
        """``{name_mean, name_std, name_n, name_ci_low, name_ci_high, name_seeds, name_values,
        name_unpaired_seeds}``."""
        return {f"{name}_mean": self.mean, f"{name}_std": self.std, f"{name}_n": self.n,
                f"{name}_ci_low": self.ci_low, f"{name}_ci_high": self.ci_high,
                f"{name}_detectable": self.detectable, f"{name}_seeds": list(self.seeds),
                f"{name}_values": list(self.differences), f"{name}_unpaired_seeds": list(self.unpaired)}


def paired_difference(reference: Mapping[int, float], treatment: Mapping[int, float]) -> PairedDifference:
    """``treatment[s] - reference[s]`` for every seed ``s`` both have, in seed order.

    Args:
        reference: ``{seed: value}`` of the method compared against (e.g. the baseline).
        treatment: ``{seed: value}`` of the method (e.g. BAU) at the same other settings.
    """
    both = sorted(set(reference) & set(treatment))
    return PairedDifference(seeds=tuple(both),
                            differences=tuple(float(treatment[s]) - float(reference[s]) for s in both),
                            reference_only=tuple(sorted(set(reference) - set(treatment))),
                            treatment_only=tuple(sorted(set(treatment) - set(reference))))


def late_gain(curve: Sequence[Tuple[float, float]], fraction: float = LATE_FRACTION) -> Optional[float]:
    """How much a learning curve rose over the last ``fraction`` of training.

    ``curve``: ``[(step, value), ...]`` in step order (``bau.runs.folder.Run.curve``). The gain is the last
    value minus the value at the last evaluation at or before step ``(1 - fraction) * last step``.
    None when no evaluation lies that early (a single evaluation says nothing about a trend)."""
    if not curve:
        return None
    last_step, last_value = curve[-1]
    cut = (1.0 - fraction) * last_step
    earlier = [v for s, v in curve if s <= cut]
    return None if not earlier else float(last_value) - float(earlier[-1])


@dataclass(frozen=True)
class Convergence:
    """Whether one cell's runs had reached their plateau: per seed the late gain (``late_gain``)
    and the final value. ``still_improving``: the mean late gain exceeds the spread (sd) of the
    final values over seeds, or ``floor`` when there is no spread (one seed)."""

    gains: Tuple[Optional[float], ...]
    finals: Tuple[float, ...]
    floor: float = 0.0

    @property
    def mean_gain(self) -> Optional[float]:
        known = [g for g in self.gains if g is not None]
        return math.fsum(known) / len(known) if known else None

    @property
    def threshold(self) -> float:
        sd = Spread(self.finals).std if self.finals else None
        return max(self.floor, sd or 0.0)

    @property
    def still_improving(self) -> Optional[bool]:
        """True / False, or None when no run has a curve long enough to judge."""
        return None if self.mean_gain is None else self.mean_gain > self.threshold

    def columns(self, name: str) -> Dict[str, object]:
        return {f"{name}_late_gain": self.mean_gain, f"{name}_late_threshold": self.threshold,
                f"{name}_still_improving": self.still_improving}


def convergence(curves: Mapping[int, Sequence[Tuple[float, float]]], fraction: float = LATE_FRACTION,
                floor: float = 0.0) -> Convergence:
    """``Convergence`` of ``{seed: curve}`` (each ``[(step, value), ...]``), in seed order."""
    seeds = sorted(curves)
    return Convergence(gains=tuple(late_gain(curves[s], fraction) for s in seeds),
                       finals=tuple(float(curves[s][-1][1]) for s in seeds if curves[s]), floor=floor)


def _other_labels(run: Run) -> Dict[str, object]:
    return {k: v for k, v in run.labels.items() if k != SEED}


def _same_labels(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    return set(a) == set(b) and all(same_value(a[k], b[k]) for k in a)


def _describe(labels: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items()) or "no labels"


def runs_by_seed(runs: Sequence[Run], what: str, seed: Callable[[Run], int] = seed_of) -> Dict[int, Run]:
    """The runs of one cell, ``{seed: run}`` in seed order.

    Args:
        runs: every run that matches the cell (at least one).
        what: the cell, for messages (``"figure 1 method=baseline p=0.5"``).
        seed: a run's training seed (default ``seed_of``).

    Raises:
        BauError: two runs differ in more than the seed (another sweep folder or another label),
            or have the same seed; the message names both runs.
    """
    if not runs:
        raise BauError(f"{what}: no run")
    first = runs[0]
    out: Dict[int, Run] = {}
    for run in runs:
        if run.sweep != first.sweep or not _same_labels(_other_labels(run), _other_labels(first)):
            theirs = (f"sweep {first.sweep} vs {run.sweep}" if run.sweep != first.sweep else
                      f"{_describe(_other_labels(first))} vs {_describe(_other_labels(run))}")
            raise BauError(f"{what}: runs {first.path} and {run.path} both match and differ in more than the seed "
                           f"({theirs}); expected runs that differ only in seed")
        s = seed(run)
        if s in out:
            raise BauError(f"{what}: runs {out[s].path} and {run.path} both match with seed {s}; "
                           f"expected one run per seed")
        out[s] = run
    return dict(sorted(out.items()))
