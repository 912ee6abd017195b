"""The bootstrap: equal to scikit-learn on every resample, exact where cells stand in for
rows, equal in distribution where cells are drawn, well calibrated, and bounded in memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.stats import norm

from mlcheck import stats
from mlcheck.metrics import BINARY, METRICS, MULTICLASS, REGRESSION
from mlcheck.stats import (
    CellBootstrap,
    RowBootstrap,
    auc_statistic,
    bootstrap_counts,
    confusion_metric,
    label_codes,
    percentile_interval,
    score_statistic,
)

RNG = np.random.default_rng(7)
N = 300


def binary_case(ties: bool = False):
    truth = RNG.random(N) < 0.35
    scores = np.clip(0.35 + 0.3 * (truth - 0.35) + RNG.normal(0, 0.2, N), 0.001, 0.999)
    if ties:
        scores = np.round(scores, 1)
    return truth, scores, scores >= 0.4, (False, True)


def multiclass_case():
    classes = (1, 2, 10)
    truth = RNG.choice(classes, N)
    raw = RNG.random((N, 3)) + np.stack([truth == c for c in classes], axis=1) * 1.5
    proba = raw / raw.sum(axis=1, keepdims=True)
    return truth, proba, np.array(classes)[proba.argmax(axis=1)], classes


def regression_case():
    truth = RNG.normal(10, 3, N)
    return truth, truth + RNG.normal(0, 1, N), None, None


CASES = {BINARY: binary_case(), MULTICLASS: multiclass_case(), REGRESSION: regression_case()}


@pytest.mark.parametrize(("name", "task"), [(name, task) for name in sorted(METRICS)
                                             for task in (BINARY, MULTICLASS, REGRESSION)
                                             if task in METRICS[name].tasks])
def test_each_resample_equals_the_metric_on_the_resampled_rows(name, task):
    metric = METRICS[name]
    truth, scores, labels, classes = CASES[task]
    output = labels if metric.needs == "labels" else scores
    counts = bootstrap_counts(N, 12, seed=3)
    vectorised = metric.resample(truth, output, classes, counts)
    rows = np.arange(N)
    for b in range(counts.shape[0]):
        drawn = np.repeat(rows, counts[b])
        expected = metric.compute(truth[drawn], output[drawn], classes)
        assert vectorised[b] == pytest.approx(expected, rel=1e-5, abs=1e-6), (name, b)


@pytest.mark.parametrize("name", ["roc_auc", "average_precision"])
def test_tied_scores(name):
    truth, scores, _, classes = binary_case(ties=True)
    counts = bootstrap_counts(N, 8, seed=1)
    vectorised = METRICS[name].resample(truth, scores, classes, counts)
    for b in range(8):
        drawn = np.repeat(np.arange(N), counts[b])
        assert vectorised[b] == pytest.approx(
            METRICS[name].compute(truth[drawn], scores[drawn], classes), rel=1e-6)


def test_resamples_are_deterministic_for_a_seed():
    assert np.array_equal(bootstrap_counts(50, 20, 4), bootstrap_counts(50, 20, 4))
    assert not np.array_equal(bootstrap_counts(50, 20, 4), bootstrap_counts(50, 20, 5))
    counts = bootstrap_counts(20_000, 50, 4)  # Poisson(1) draws: mean 1, variance 1
    assert counts.mean() == pytest.approx(1, abs=0.01)
    assert counts.var() == pytest.approx(1, abs=0.02)


def coverage(draw, truth_value, metric, repetitions, resamples=400, n=300):
    """Share of 95% intervals, from independent samples, that contain the true value."""
    rng = np.random.default_rng(2026)
    hits = 0
    for repetition in range(repetitions):
        truth, output = draw(rng, n)
        counts = bootstrap_counts(n, resamples, seed=repetition)
        interval = percentile_interval(metric.resample(truth, output, None, counts), 0.95)
        hits += interval.low <= truth_value <= interval.high
    return hits / repetitions


def test_accuracy_intervals_cover_the_true_value_about_95_percent_of_the_time():
    def draw(rng, n):  # a classifier that is right 80% of the time
        truth = rng.random(n) < 0.5
        right = rng.random(n) < 0.8
        return truth, np.where(right, truth, ~truth)

    assert 0.93 <= coverage(draw, 0.8, METRICS["accuracy"], repetitions=400) <= 0.97


def test_auc_intervals_cover_the_true_value_about_95_percent_of_the_time():
    def draw(rng, n):  # scores N(0,1) for negatives, N(1,1) for positives
        truth = rng.random(n) < 0.5
        return truth, rng.normal(truth.astype(float), 1.0)

    true_auc = norm.cdf(1 / np.sqrt(2))
    # percentile intervals of AUC run slightly short at n=300 (93.7% here): documented
    assert 0.93 <= coverage(draw, true_auc, METRICS["roc_auc"], repetitions=1000) <= 0.97


def test_weighted_averages_leave_out_undefined_classes_as_scikit_learn_does():
    rng = np.random.default_rng(1)
    truth = rng.random(40) < 0.5
    predicted = rng.random(40) < 0.1  # few predicted positives: precision often 0/0
    counts = bootstrap_counts(40, 30, seed=2)
    for name in ("precision_weighted", "precision_macro", "f1_weighted"):
        vectorised = METRICS[name].resample(truth, predicted, (False, True), counts)
        for b in range(30):
            drawn = np.repeat(np.arange(40), counts[b])
            expected = METRICS[name].compute(truth[drawn], predicted[drawn], (False, True))
            assert vectorised[b] == pytest.approx(expected, nan_ok=True), (name, b)


def test_r2_keeps_its_precision_for_targets_far_from_zero():
    rng = np.random.default_rng(4)
    truth = 1e8 + rng.normal(0, 1, 200)
    predicted = truth + rng.normal(0, 0.5, 200)
    counts = bootstrap_counts(200, 10, seed=1)
    vectorised = METRICS["r2"].resample(truth, predicted, None, counts)
    for b in range(10):
        drawn = np.repeat(np.arange(200), counts[b])
        assert vectorised[b] == pytest.approx(
            METRICS["r2"].compute(truth[drawn], predicted[drawn], None), abs=1e-6)


def test_delong_interval_agrees_with_the_bootstrap_and_covers():
    from mlcheck.stats import delong_interval

    rng = np.random.default_rng(5)
    truth = rng.random(3000) < 0.4
    scores = rng.normal(truth.astype(float), 1.0)
    analytic = delong_interval(truth, scores, 0.95)
    boot = percentile_interval(METRICS["roc_auc"].resample(
        truth, scores, None, bootstrap_counts(3000, 1000, 1)), 0.95)
    assert analytic.low == pytest.approx(boot.low, abs=0.006)
    assert analytic.high == pytest.approx(boot.high, abs=0.006)
    assert analytic.to_dict()["method"] == "DeLong"
    true_auc, hits = norm.cdf(1 / np.sqrt(2)), 0
    for repetition in range(400):
        draw = np.random.default_rng(1000 + repetition)
        t = draw.random(300) < 0.5
        interval = delong_interval(t, draw.normal(t.astype(float), 1.0), 0.95)
        hits += interval.low <= true_auc <= interval.high
    assert 0.93 <= hits / 400 <= 0.97


def test_paired_delong_difference_is_narrower_than_unpaired():
    from mlcheck.stats import delong_interval

    rng = np.random.default_rng(6)
    truth = rng.random(2000) < 0.5
    base = rng.normal(truth.astype(float), 1.0)
    better = base + 0.3 * truth  # the same errors, a little more separation
    paired = delong_interval(truth, better, 0.95, baseline=base)
    single = delong_interval(truth, better, 0.95)
    assert paired.low > 0  # the improvement is clear once the pairing is used
    assert paired.high - paired.low < single.high - single.low


# ------------------------------------------------- cell draws and per-row counts in blocks

LABEL_CASES = [(name, task) for name in sorted(METRICS) for task in (BINARY, MULTICLASS)
               if task in METRICS[name].tasks and METRICS[name].needs == "labels"]


def cell_confusion(truth, predicted, classes, counts):
    """Confusion counts per resample, summed from per-row counts (the cells' totals)."""
    (t, p), labels = label_codes(classes, truth, predicted)
    cell = t * labels + p
    return np.stack([np.bincount(cell, weights=w, minlength=labels * labels)
                     for w in counts]).reshape(-1, labels, labels)


@pytest.mark.parametrize(("name", "task"), LABEL_CASES)
def test_label_metrics_from_cell_totals_equal_the_weighted_metrics_exactly(name, task):
    truth, _, predicted, classes = CASES[task]
    counts = bootstrap_counts(N, 12, seed=3)
    from_cells = confusion_metric(name, cell_confusion(truth, predicted, classes, counts),
                                  len(classes))
    weighted = METRICS[name].resample(truth, predicted, classes, counts)
    assert np.allclose(from_cells, weighted, rtol=1e-12, atol=0, equal_nan=True)
    for b in range(4):  # and each equals scikit-learn on the resampled rows
        drawn = np.repeat(np.arange(N), counts[b])
        assert from_cells[b] == pytest.approx(
            METRICS[name].compute(truth[drawn], predicted[drawn], classes), rel=1e-9)


@pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn: labels not in y_true
@pytest.mark.parametrize("name", [n for n, task in LABEL_CASES if task == MULTICLASS])
def test_labels_outside_the_classes_count_as_scikit_learn_counts_them(name):
    truth, _, predicted, classes = multiclass_case()
    truth, predicted = truth.copy(), predicted.copy()
    truth[:7], predicted[5:12] = 42, 99  # a class the model never learned, a stray label
    counts = bootstrap_counts(N, 6, seed=8)
    values = confusion_metric(name, cell_confusion(truth, predicted, classes, counts),
                              len(classes))
    for b in range(6):
        drawn = np.repeat(np.arange(N), counts[b])
        assert values[b] == pytest.approx(
            METRICS[name].compute(truth[drawn], predicted[drawn], classes), rel=1e-9)


def test_cell_totals_are_poisson_deterministic_and_coherent():
    rng = np.random.default_rng(11)
    cells = rng.choice(6, 5000, p=[0.4, 0.3, 0.15, 0.1, 0.04, 0.01])
    draws = CellBootstrap(cells, 4000, np.random.SeedSequence(1))
    totals = draws.counts(cells, 6)
    sizes = np.bincount(cells)
    assert np.allclose(totals.mean(axis=0), sizes, rtol=0.01)  # Poisson(size) per cell
    assert np.allclose(totals.var(axis=0), sizes, rtol=0.08)
    again = CellBootstrap(cells, 4000, np.random.SeedSequence(1)).counts(cells, 6)
    assert np.array_equal(totals, again)
    other = CellBootstrap(cells, 4000, np.random.SeedSequence(2)).counts(cells, 6)
    assert not np.array_equal(totals, other)
    # coarser cells are sums of the same draws (paired); code 2 leaves rows out
    coarse = draws.counts(np.select([cells < 2, cells < 4], [0, 1], 2), 2)
    assert np.array_equal(coarse, np.stack([totals[:, :2].sum(1), totals[:, 2:4].sum(1)], 1))


def test_cell_draws_are_the_same_whether_kept_or_drawn_again(monkeypatch):
    cells = np.random.default_rng(1).integers(0, 50, 2000)
    kept = CellBootstrap(cells, 300, np.random.SeedSequence(4)).counts(cells, 50)
    monkeypatch.setattr(stats, "KEEP", 0)
    monkeypatch.setattr(stats, "CELL_BLOCK", 50 * 300)  # the same blocks, none kept
    again = CellBootstrap(cells, 300, np.random.SeedSequence(4))
    assert again._kept is None
    assert np.array_equal(again.counts(cells, 50), kept)


def test_a_key_that_splits_a_drawn_cell_is_refused():
    draws = CellBootstrap(np.zeros(10, dtype=np.int64), 5, np.random.SeedSequence(0))
    with pytest.raises(ValueError, match="split the drawn cells"):
        draws.counts(np.r_[np.zeros(5, int), np.ones(5, int)], 2)


def test_cell_draws_and_row_bootstrap_agree_in_distribution():
    rng = np.random.default_rng(12)
    n, resamples = 2000, 4000
    truth = rng.random(n) < 0.4
    predicted = np.where(rng.random(n) < 0.75, truth, ~truth)
    rows = METRICS["recall"].resample(truth, predicted, (False, True),
                                      bootstrap_counts(n, resamples, seed=3))
    cells = truth * 2 + predicted
    confusion = CellBootstrap(cells, resamples, np.random.SeedSequence(3)).counts(cells, 4)
    from_cells = confusion_metric("recall", confusion.reshape(-1, 2, 2), 2)
    spread = rows.std()
    assert from_cells.mean() == pytest.approx(rows.mean(), abs=4 * spread / np.sqrt(resamples))
    assert from_cells.std() == pytest.approx(spread, rel=0.06)
    recall = predicted[truth].mean()  # the bootstrap's spread: binomial, as theory says
    assert spread == pytest.approx(np.sqrt(recall * (1 - recall) / truth.sum()), rel=0.06)


def test_accuracy_intervals_from_cell_draws_cover_about_95_percent_of_the_time():
    rng = np.random.default_rng(2027)
    hits, repetitions, n = 0, 400, 300
    for repetition in range(repetitions):
        truth = rng.random(n) < 0.5
        predicted = np.where(rng.random(n) < 0.8, truth, ~truth)
        cells = truth * 2 + predicted
        confusion = CellBootstrap(cells, 400, np.random.SeedSequence(repetition)).counts(
            cells, 4)
        interval = percentile_interval(confusion_metric(
            "accuracy", confusion.reshape(-1, 2, 2), 2), 0.95, stats.CELLS_METHOD)
        hits += interval.low <= 0.8 <= interval.high
    assert interval.method == stats.CELLS_METHOD
    assert 0.93 <= hits / repetitions <= 0.97


def test_row_blocks_are_deterministic_bounded_and_poisson(monkeypatch):
    monkeypatch.setattr(stats, "ROW_BLOCK", 1000)
    draws = RowBootstrap(300, 2000, np.random.SeedSequence(5))
    blocks = list(draws.blocks())
    assert max(block.size for block in blocks) <= 1000 and len(blocks) == 667
    table = np.concatenate(blocks)
    assert table.shape == (2000, 300)
    assert table.mean() == pytest.approx(1, abs=0.01) and table.var() == pytest.approx(1, abs=0.02)
    monkeypatch.setattr(stats, "KEEP", 0)
    again = RowBootstrap(300, 2000, np.random.SeedSequence(5))
    assert np.array_equal(np.concatenate(list(again.blocks())), table)
    rows = np.arange(0, 300, 7)
    assert np.array_equal(again.apply(lambda c: c.sum(axis=1), rows),
                          table[:, rows].sum(axis=1))


@pytest.mark.parametrize(("name", "task", "ties"), [
    ("roc_auc", BINARY, False), ("roc_auc", BINARY, True), ("average_precision", BINARY, True),
    ("average_precision", BINARY, False), ("roc_auc_ovr", MULTICLASS, False),
    ("roc_auc_ovr_weighted", MULTICLASS, False)])
def test_sorted_once_score_statistics_equal_scikit_learn_on_every_resample(
        monkeypatch, name, task, ties):
    monkeypatch.setattr(stats, "ROW_BLOCK", 5 * N)  # several blocks
    truth, scores, _, classes = binary_case(ties) if ties else CASES[task]
    draws = RowBootstrap(N, 12, np.random.SeedSequence(9))
    values = draws.apply(score_statistic(name, truth, scores, classes))
    table = np.concatenate(list(draws.blocks()))
    for b in range(12):
        drawn = np.repeat(np.arange(N), table[b])
        assert values[b] == pytest.approx(
            METRICS[name].compute(truth[drawn], scores[drawn], classes), rel=1e-9), b


def test_memory_does_not_grow_with_the_resamples(monkeypatch):
    """Peak memory of resampling grows with the cells (or a bounded block of rows), not
    with rows x resamples: ten times the resamples, about the same peak."""
    monkeypatch.setattr(stats, "ROW_BLOCK", 500_000)
    monkeypatch.setattr(stats, "KEEP", 0)
    rng = np.random.default_rng(3)
    n = 50_000
    truth, group = rng.random(n) < 0.3, rng.integers(0, 4, n)
    scores = rng.normal(truth * 1.0, 1.0)
    predicted = scores > 0.5
    cells = (group * 2 + truth) * 2 + predicted

    def peak(resamples: int) -> int:
        tracemalloc.start()
        seed = np.random.SeedSequence(0)
        confusion = CellBootstrap(cells, resamples, seed).counts(cells, 16)
        confusion_metric("accuracy", confusion.reshape(-1, 4, 2, 2), 2)
        RowBootstrap(n, resamples, seed).apply(auc_statistic(truth, scores))
        used = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return used

    few, many = peak(100), peak(1000)
    assert many < 1.5 * few
    assert many < n * 1000 / 4  # a rows x resamples table of bytes would be 50 MB
