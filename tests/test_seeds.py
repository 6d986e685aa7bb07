"""Aggregation over seeds (bau.runs.statistics) against numbers computed by hand."""
import math

import pytest

from bau.core.errors import BauError
from bau.runs.folder import Run
from bau.runs.statistics import Spread, paired_difference, runs_by_seed, seed_of, spread

pytestmark = pytest.mark.unit

# t(0.975, 2), from a printed t-table (4.303) to more digits
T_975_2 = 4.302652729749


def test_two_seeds_give_mean_sample_std_and_n():
    s = spread({2: 32.0, 1: 30.0})
    assert s.seeds == (1, 2) and s.values == (30.0, 32.0)
    assert s.n == 2 and s.mean == 31.0
    assert s.std == pytest.approx(math.sqrt(2.0), abs=1e-12)  # ((30-31)^2 + (32-31)^2) / (2 - 1) = 2
    assert s.text() == "31.0 \u00b1 1.4 (n=2)"
    assert s.text(3) == "31.000 \u00b1 1.414 (n=2)"
    assert s.columns("mAP") == {"mAP_mean": 31.0, "mAP_std": pytest.approx(1.41421356, abs=1e-8), "mAP_n": 2,
                                "mAP_values": [30.0, 32.0]}


def test_three_seeds_by_hand():
    s = Spread((30.4, 31.6, 32.8))
    assert s.mean == pytest.approx(31.6, abs=1e-12)
    assert s.std == pytest.approx(1.2, abs=1e-12)  # deviations -1.2, 0, 1.2: sqrt(2.88 / 2)
    assert s.text() == "31.6 \u00b1 1.2 (n=3)"


def test_one_seed_has_no_spread_and_no_values_is_an_error():
    s = spread({7: 31.64})
    assert s.n == 1 and s.std is None and s.text() == "31.6 (n=1)" and "\u00b1" not in s.text()
    assert s.columns("x")["x_std"] is None
    with pytest.raises(BauError, match="no values"):
        spread({})


def test_paired_difference_by_hand():
    d = paired_difference({1: 1.0, 2: 2.0, 3: 3.0}, {1: 2.0, 2: 4.0, 3: 7.0})
    assert d.seeds == (1, 2, 3) and d.differences == (1.0, 2.0, 4.0) and d.unpaired == ()
    assert d.mean == pytest.approx(7 / 3, abs=1e-12)
    # deviations -4/3, -1/3, 5/3: sd = sqrt((16 + 1 + 25) / 9 / 2) = sqrt(7/3)
    assert d.std == pytest.approx(math.sqrt(7 / 3), abs=1e-12)
    half = T_975_2 * math.sqrt(7 / 3) / math.sqrt(3)  # 3.7946
    assert d.half_width == pytest.approx(half, abs=1e-9)
    assert (d.ci_low, d.ci_high) == (pytest.approx(7 / 3 - half, abs=1e-9), pytest.approx(7 / 3 + half, abs=1e-9))
    assert d.ci_low == pytest.approx(-1.4612, abs=1e-4) and d.ci_high == pytest.approx(6.1279, abs=1e-4)
    assert d.text() == "+2.3 [-1.5, +6.1] (n=3)"
    cols = d.columns("dmAP")
    assert cols["dmAP_n"] == 3 and cols["dmAP_values"] == [1.0, 2.0, 4.0] and cols["dmAP_unpaired_seeds"] == []


def test_paired_difference_pairs_by_seed_value_and_names_the_unpaired():
    # seeds 1 and 3 pair; 2 only in the reference, 4 only in the treatment; dict order must not matter
    d = paired_difference({3: 10.0, 1: 20.0, 2: 5.0}, {4: 0.0, 1: 21.5, 3: 9.0})
    assert d.seeds == (1, 3) and d.differences == (1.5, -1.0)
    assert d.reference_only == (2,) and d.treatment_only == (4,) and d.unpaired == (2, 4)
    assert d.mean == pytest.approx(0.25)
    # two pairs: t(0.975, 1) = 12.7062, sd = |1.5 - (-1)| / sqrt(2)
    assert d.half_width == pytest.approx(12.706204736 * (2.5 / math.sqrt(2)) / math.sqrt(2), abs=1e-6)


def test_paired_difference_with_one_or_no_pair():
    one = paired_difference({1: 3.0, 2: 1.0}, {1: 5.0})
    assert one.n == 1 and one.mean == 2.0 and one.ci_low is None and one.half_width is None
    assert one.text() == "+2.0 (n=1, no interval)" and one.reference_only == (2,)
    none = paired_difference({1: 3.0}, {2: 5.0})
    assert none.n == 0 and none.mean is None and none.std is None and none.text() == "no seed in common"


def _run(name, sweep="sw", **labels):
    return Run(path=f"/runs/{sweep}/{name}", name=name, labels=labels, status="finished", sweep=sweep)


def test_runs_by_seed_groups_runs_that_differ_only_in_seed():
    runs = [_run("bau__seed-2", method="bau", aug_prob=0.5, seed=2), _run("bau__seed-1", method="bau", aug_prob="0.5",
                                                                          seed=1)]
    cell = runs_by_seed(runs, "cell")
    assert list(cell) == [1, 2] and cell[1].name == "bau__seed-1"
    assert seed_of(runs[0]) == 2


@pytest.mark.parametrize("other, fragment", [
    (_run("bau-lam2__seed-2", method="bau", aug_prob=0.5, lam=2, seed=2),
     "aug_prob=0.5 vs method=bau, aug_prob=0.5, lam=2"),
    (_run("bau__seed-2", sweep="other", method="bau", aug_prob=0.5, seed=2), "sweep sw vs other"),
    (_run("bau-copy__seed-1", method="bau", aug_prob=0.5, seed=1), "both match with seed 1"),
])
def test_ambiguous_cell_is_one_line_naming_both_runs(other, fragment):
    first = _run("bau__seed-1", method="bau", aug_prob=0.5, seed=1)
    with pytest.raises(BauError) as info:
        runs_by_seed([first, other], "table9 row p=0.5")
    message = str(info.value)
    assert "\n" not in message and message.startswith("table9 row p=0.5: runs ")
    assert first.path in message and other.path in message and fragment in message


def test_runs_without_seed_label_use_the_given_seed_function():
    a, b = _run("a"), _run("b")
    seeds = {"a": 3, "b": 1}
    assert list(runs_by_seed([a, b], "cell", seed=lambda r: seeds[r.name]).values()) == [b, a]
    with pytest.raises(BauError, match="both match with seed 1"):
        runs_by_seed([a, b], "cell", seed=lambda r: 1)


# -- convergence of a learning curve ----------------------------------------------------------------
from bau.runs.statistics import Convergence, convergence, late_gain  # noqa: E402


def test_late_gain_is_the_rise_over_the_last_fifth_of_training():
    curve = [(100, 0.10), (200, 0.30), (400, 0.40), (800, 0.41), (1000, 0.45)]
    # 80 % of 1000 = 800: last value minus the value at step 800
    assert late_gain(curve) == pytest.approx(0.04)
    assert late_gain(curve, fraction=0.5) == pytest.approx(0.45 - 0.40)
    assert late_gain([(1000, 0.4)]) is None and late_gain([]) is None


def test_a_cell_still_climbing_is_flagged_and_a_plateau_is_not():
    climbing = {s: [(0, 0.0), (500, 0.2 + 0.01 * s), (800, 0.30 + 0.01 * s), (1000, 0.40 + 0.01 * s)]
                for s in (1, 2, 3)}
    flat = {s: [(0, 0.0), (500, 0.38 + 0.01 * s), (800, 0.40 + 0.01 * s), (1000, 0.401 + 0.01 * s)]
            for s in (1, 2, 3)}
    c = convergence(climbing)
    assert c.mean_gain == pytest.approx(0.10) and c.threshold == pytest.approx(0.01)
    assert c.still_improving is True
    assert convergence(flat).still_improving is False
    # a drop at the end is not "improving"; one seed uses the floor; no curve to judge: None
    assert Convergence(gains=(-0.05,), finals=(0.3,), floor=0.005).still_improving is False
    assert Convergence(gains=(0.004,), finals=(0.3,), floor=0.005).still_improving is False
    assert Convergence(gains=(0.006,), finals=(0.3,), floor=0.005).still_improving is True
    assert convergence({1: [(1000, 0.4)]}).still_improving is None


# -- the smallest detectable difference -------------------------------------------------------------
def test_detectable_difference_by_formula_and_by_simulated_power():
    import numpy as np
    from scipy.stats import t

    d = paired_difference({s: 0.0 for s in range(1, 6)}, {1: 1.0, 2: 2.0, 3: 0.0, 4: 3.0, 5: -1.0})
    sd = Spread((1.0, 2.0, 0.0, 3.0, -1.0)).std
    q = t.ppf(0.975, 4) + t.ppf(0.80, 4)
    assert d.detectable == pytest.approx(q * sd / math.sqrt(5))
    assert d.columns("x")["x_detectable"] == d.detectable
    assert paired_difference({1: 0.0}, {1: 1.0}).detectable is None
    # Brute force: experiments of 5 paired differences with sd 1 and a true mean equal to the detectable
    # size find the effect (95% interval excludes 0) in about 80% of cases.
    rng = np.random.default_rng(0)
    n, true_sd = 5, 1.0
    delta = q * true_sd / math.sqrt(n)
    x = rng.normal(delta, true_sd, size=(20000, n))
    half = t.ppf(0.975, n - 1) * x.std(axis=1, ddof=1) / math.sqrt(n)
    power = float(np.mean(x.mean(axis=1) - half > 0))
    assert 0.72 < power < 0.86
