"""Agreement statistics: published worked examples, and scikit-learn, statsmodels and krippendorff as references."""
import math

import krippendorff
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from core.services import agreement as ag

STAGES = ["W", "N1", "N2", "N3", "R"]
_ = None
# Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability": 4 observers x 12 units, * = missing.
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    "C": [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
}
# Wikipedia "Fleiss' kappa" worked example: 10 subjects x 14 raters, counts per category 1-5; kappa 0.210.
FLEISS_WIKIPEDIA = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])
# Shrout & Fleiss (1979) Table 2: 6 targets x 4 judges; ICC(2,1) = 0.29, ICC(2,4) = 0.62.
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def from_matrix(matrix, raters=None):
    """raters x items matrix (NaN or None = missing) to triples."""
    raters = raters or range(len(matrix))
    return [(r, u, v) for r, row in zip(raters, matrix) for u, v in enumerate(row)]


def from_counts(counts, labels):
    """items x labels counts to triples; the j-th rating of each item is rater j's."""
    return [(j, u, label) for u, row in enumerate(counts)
            for j, label in enumerate(label for label, c in zip(labels, row) for _ in range(c))]


def random_ratings(seed, raters=4, items=300, values=(1, 2, 3, 4, 5), missing=0.2):
    """raters x items float matrix with a shared item effect, NaN where missing."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(values), items)
    noise = rng.integers(-1, 2, (raters, items)) * (rng.random((raters, items)) < 0.4)
    data = np.asarray(values, float)[np.clip(truth + noise, 0, len(values) - 1)]
    data[rng.random(data.shape) < missing] = np.nan
    return data


# --- input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("second", [2, None, math.nan])
def test_a_duplicate_rater_item_pair_is_refused_naming_the_pair(second):
    triples = [("ann", ("night-1", 7), 1), ("bob", ("night-1", 7), 2), ("ann", ("night-1", 7), second)]
    for call in (ag.reliability_matrix, ag.percent_agreement, lambda t: ag.krippendorff_alpha(t, "ordinal")):
        with pytest.raises(ValueError, match=r"duplicate rating for \(rater, item\) = \('ann', \('night-1', 7\)\)"):
            call(iter(triples))


def test_reliability_matrix_is_sorted_with_nan_for_missing():
    triples = [("bob", 2, 3), ("ann", 1, None), ("ann", 2, 5.0), ("cy", 0, 4), ("bob", 0, float("nan"))]
    m = ag.reliability_matrix(iter(triples))
    assert m.raters == ["ann", "bob", "cy"] and m.items == [0, 1, 2]
    np.testing.assert_array_equal(m.data, [[np.nan, np.nan, 5], [np.nan, np.nan, 3], [4, np.nan, np.nan]])
    chosen = ag.reliability_matrix(triples, items=[2, 0], raters=["cy", "ann"])
    np.testing.assert_array_equal(chosen.data, [[np.nan, 4], [5, np.nan]])
    labels = ag.reliability_matrix([("a", "e1", "N2"), ("b", "e1", "R"), ("b", "e2", "W")])
    assert labels.data.dtype == object and labels.data[:, 0].tolist() == ["N2", "R"]
    assert labels.data[1, 1] == "W" and math.isnan(labels.data[0, 1])


# --- Krippendorff's alpha -----------------------------------------------------------------------

@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_reproduces_krippendorffs_published_example(level, published):
    triples = from_matrix(KRIPPENDORFF_2011.values(), KRIPPENDORFF_2011)
    assert round(ag.krippendorff_alpha(triples, level), 3) == published
    assert ag.bootstrap_alpha(triples, level, n_boot=10).alpha == pytest.approx(ag.krippendorff_alpha(triples, level), abs=1e-12)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("seed", [1, 2])
def test_alpha_matches_the_krippendorff_package_with_missing_values(level, seed):
    data = random_ratings(seed, values=(1, 2, 3, 5, 8))
    reference = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    triples = from_matrix(data)
    assert ag.krippendorff_alpha(triples, level) == pytest.approx(reference, abs=1e-9)
    assert ag.bootstrap_alpha(triples, level, n_boot=50).alpha == pytest.approx(reference, abs=1e-9)


def test_alpha_on_labels_nominal_and_ordinal_with_a_value_domain():
    data = random_ratings(3, values=(0, 1, 2, 3, 4))
    names = np.array(["very low", "low", "mid", "high", "very high"])
    labels = [(r, u, None if np.isnan(v) else names[int(v)]) for r, u, v in from_matrix(data)]
    for level in ("nominal", "ordinal"):
        reference = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert ag.krippendorff_alpha(labels, level, value_domain=names) == pytest.approx(reference, abs=1e-9)
        assert ag.bootstrap_alpha(labels, level, n_boot=20, value_domain=names).alpha == pytest.approx(reference, abs=1e-9)
    assert ag.krippendorff_alpha(labels, "nominal") == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"), abs=1e-9)
    with pytest.raises(ValueError, match="ordered value_domain"):
        ag.krippendorff_alpha(labels, "ordinal")
    with pytest.raises(ValueError, match="outside the domain"):
        ag.krippendorff_alpha(labels, "nominal", value_domain=names[:4])


def test_bootstrap_is_seeded_and_its_interval_holds_the_point_estimate():
    triples = from_matrix(random_ratings(4))
    first = ag.bootstrap_alpha(iter(triples), "ordinal", n_boot=500, seed=11)
    assert ag.bootstrap_alpha(triples, "ordinal", n_boot=500, seed=11) == first
    assert ag.bootstrap_alpha(triples, "ordinal", n_boot=500, seed=12) != first
    assert first.low < first.alpha < first.high
    wider = ag.bootstrap_alpha(triples, "ordinal", n_boot=500, seed=11, confidence=0.99)
    assert wider.low < first.low and wider.high > first.high
    assert first.n_items == sum(np.sum(~np.isnan(col)) >= 2 for col in random_ratings(4).T)


def test_bootstrap_interval_matches_resampling_items_through_the_package():
    data = random_ratings(5, raters=3, items=200)
    data = data[:, (~np.isnan(data)).sum(0) >= 2]  # pairable items: the units bootstrap_alpha resamples
    rng = np.random.default_rng(0)
    slow = [krippendorff.alpha(reliability_data=data[:, rng.integers(0, data.shape[1], data.shape[1])],
                               level_of_measurement="ordinal") for _ in range(2000)]
    low, high = np.quantile(slow, [0.025, 0.975])
    fast = ag.bootstrap_alpha(from_matrix(data), "ordinal", n_boot=2000, seed=0)
    assert fast.low == pytest.approx(low, abs=0.005) and fast.high == pytest.approx(high, abs=0.005)
    assert (fast.high - fast.low) == pytest.approx(high - low, rel=0.1)


# --- Cohen's kappa, confusion matrix ---------------------------------------------------------------

@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_matches_sklearn_on_the_items_both_rated(weights):
    data = random_ratings(6, raters=3)
    triples = from_matrix(data, ["x", "y", "z"])
    both = ~np.isnan(data[0]) & ~np.isnan(data[2])
    result = ag.cohen_kappa(triples, "x", "z", weights=weights)
    assert result.n == both.sum()
    assert result.value == pytest.approx(cohen_kappa_score(data[0, both], data[2, both], weights=weights), abs=1e-12)
    labels = [0, 1, 2, 3, 4, 5]  # 0 never used: it still counts as a position for the weights
    assert ag.cohen_kappa(triples, "x", "z", weights=weights, labels=labels).value == pytest.approx(
        cohen_kappa_score(data[0, both], data[2, both], weights=weights, labels=labels), abs=1e-12)


def test_quadratic_kappa_on_a_hand_computed_case():
    # mean (a-b)^2 = 1/4; expected over independent pairs: var_a + var_b + (mean gap)^2 = 1.25 + 1.1875 + 0.0625
    # = 2.5, so kappa = 1 - 0.25 / 2.5 = 0.9 (quadratic kappa is Lin's concordance with 1/n moments).
    triples = from_matrix([[1, 2, 3, 4], [1, 3, 3, 4]], ["a", "b"])
    assert ag.cohen_kappa(triples, "a", "b", weights="quadratic") == (pytest.approx(0.9, abs=1e-12), 4)
    a, b = random_ratings(7, raters=2, missing=0)
    concordance = 2 * np.cov(a, b, bias=True)[0, 1] / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
    assert ag.cohen_kappa(from_matrix([a, b]), 0, 1, weights="quadratic").value == pytest.approx(concordance, abs=1e-12)


def test_pairwise_kappa_covers_every_pair_in_rater_order():
    data = random_ratings(8, raters=4)
    triples = from_matrix(data, ["d", "c", "b", "a"])
    pairs = ag.pairwise_cohen_kappa(triples, weights="linear")
    assert list(pairs) == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]
    for (x, y), kappa in pairs.items():
        assert kappa == ag.cohen_kappa(triples, x, y, weights="linear")


def test_cohen_kappa_refuses_unknown_raters_weights_and_labels():
    triples = [("a", 1, "W"), ("b", 1, "N1"), ("a", 2, "N2"), ("b", 2, "unscored")]
    with pytest.raises(ValueError, match="unknown rater 'c'"):
        ag.cohen_kappa(triples, "a", "c")
    with pytest.raises(ValueError, match="weights"):
        ag.cohen_kappa(triples, "a", "b", weights="cubic")
    with pytest.raises(ValueError, match=r"outside labels .*\['unscored'\]"):
        ag.cohen_kappa(triples, "a", "b", labels=STAGES)


def test_confusion_matrix_matches_sklearn():
    rng = np.random.default_rng(9)
    a = rng.choice(STAGES, 400)
    b = np.where(rng.random(400) < 0.7, a, rng.choice(STAGES, 400))
    triples = [("ref", u, s) for u, s in enumerate(a)] + [("model", u, s) for u, s in enumerate(b) if u % 10]
    keep = np.arange(400) % 10 != 0
    expected = sk_confusion_matrix(a[keep], b[keep], labels=STAGES)
    np.testing.assert_array_equal(ag.confusion_matrix(triples, "ref", "model", STAGES), expected)
    np.testing.assert_array_equal(ag.confusion_matrix(triples, "model", "ref", STAGES), expected.T)
    third = [("other", u, "W") for u in range(400)]  # a third rater changes nothing of the pair
    pair = ag.pair_agreement(triples + third, "ref", "model", STAGES)
    np.testing.assert_array_equal(pair.confusion, expected)
    assert pair.n == keep.sum() and pair.kappa == pytest.approx(cohen_kappa_score(a[keep], b[keep], labels=STAGES))


# --- Fleiss' kappa ---------------------------------------------------------------------------------

def test_fleiss_kappa_reproduces_the_wikipedia_worked_example():
    labels = [1, 2, 3, 4, 5]
    triples = from_counts(FLEISS_WIKIPEDIA, labels)
    result = ag.fleiss_kappa(triples, labels)
    assert (round(result.value, 3), result.n_items, result.ratings_per_item) == (0.210, 10, 14)
    assert result.value == pytest.approx(sm_fleiss_kappa(FLEISS_WIKIPEDIA), abs=1e-12)
    extra = triples + [(0, "short", 1), (1, "short", 2)]  # an item with two ratings only is left out
    assert ag.fleiss_kappa(extra, labels) == result
    assert ag.fleiss_kappa(extra, labels, ratings_per_item=2) == (pytest.approx(-1.0), 1, 2)


def test_fleiss_kappa_matches_statsmodels_aggregate_raters():
    rng = np.random.default_rng(10)
    truth = rng.integers(0, 5, 250)
    codes = np.where(rng.random((250, 6)) < 0.6, truth[:, None], rng.integers(0, 5, (250, 6)))
    table, _ = aggregate_raters(codes, n_cat=5)
    triples = [(r, u, STAGES[c]) for (u, r), c in np.ndenumerate(codes)]
    assert ag.fleiss_kappa(triples, STAGES).value == pytest.approx(sm_fleiss_kappa(table), abs=1e-12)


@given(st.integers(2, 9), st.integers(1, 40), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_fleiss_kappa_is_statsmodels_to_the_bit(categories, items, raters, seed):
    """The in-house formula is statsmodels' (released agreement.json files are compared byte for byte)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, categories, (items, raters))
    table, _ = aggregate_raters(codes, n_cat=categories)
    with np.errstate(invalid="ignore", divide="ignore"):
        ours, theirs = ag._fleiss(table), sm_fleiss_kappa(table, method="fleiss")
        binary = np.column_stack([table[:, 0], raters - table[:, 0]])
        ours_binary, theirs_binary = ag._fleiss(binary), sm_fleiss_kappa(binary, method="fleiss")
    for a, b in ((ours, theirs), (ours_binary, theirs_binary)):
        assert (math.isnan(a) and math.isnan(b)) or a == b


def test_per_label_kappa_is_fleiss_category_kappa():
    labels = [1, 2, 3, 4, 5]
    n, m = FLEISS_WIKIPEDIA.shape[0], 14
    p = FLEISS_WIKIPEDIA.sum(0) / (n * m)
    # Fleiss (1971): kappa_j = 1 - sum_i n_ij (m - n_ij) / (N m (m - 1) p_j q_j)
    expected = 1 - (FLEISS_WIKIPEDIA * (m - FLEISS_WIKIPEDIA)).sum(0) / (n * m * (m - 1) * p * (1 - p))
    result = ag.per_label_kappa(from_counts(FLEISS_WIKIPEDIA, labels), labels)
    assert list(result) == labels
    np.testing.assert_allclose(list(result.values()), expected, atol=1e-12)


# --- percent agreement, majority -----------------------------------------------------------------

STAGED = [
    ("a", 1, "W"), ("b", 1, "W"), ("c", 1, "W"),
    ("a", 2, "W"), ("b", 2, "N1"), ("c", 2, "N1"),
    ("a", 3, "R"), ("b", 3, "N2"), ("c", 3, None),
    ("a", 4, "R"),
]


def test_percent_agreement_and_agreement_with_majority_by_hand():
    # agreeing pairs per item: 3/3, 1/3, 0/1 (item 4 has one rating) -> mean 4/9
    assert ag.percent_agreement(STAGED) == (pytest.approx(4 / 9), 3)
    # modal counts 3 + 2 + 1 (the N2/R tie counts one rating whichever wins) of 8 ratings
    assert ag.agreement_with_majority(STAGED) == (pytest.approx(6 / 8), 8)


def test_majority_gives_label_share_and_tie_per_item():
    result = ag.majority(STAGED)
    assert result[1] == ("W", 1.0, False, 3, ("W",))
    assert result[2] == ("N1", pytest.approx(2 / 3), False, 3, ("N1",))
    assert result[3] == (None, 0.5, True, 2, ("N2", "R"))
    assert result[4] == ("R", 1.0, False, 1, ("R",))


# --- ICC -------------------------------------------------------------------------------------------

def test_icc_reproduces_shrout_and_fleiss():
    triples = [(judge, target, v) for target, row in enumerate(SHROUT_FLEISS) for judge, v in enumerate(row)]
    assert round(ag.icc(triples, "ICC2"), 2) == 0.29
    assert round(ag.icc(triples, "ICC2k"), 2) == 0.62
    assert ag.icc(triples) == ag.icc(triples, "ICC2k")


def test_icc_needs_a_fully_crossed_numeric_design():
    triples = [(judge, target, v) for target, row in enumerate(SHROUT_FLEISS) for judge, v in enumerate(row)]
    with pytest.raises(ValueError, match="fully crossed design: 1 of 24"):
        ag.icc(triples[1:])
    with pytest.raises(ValueError, match="fully crossed design: 1 of 24"):
        ag.icc([(r, u, None if (r, u) == (0, 0) else v) for r, u, v in triples])
    with pytest.raises(ValueError, match="numeric"):
        ag.icc(STAGED)
    with pytest.raises(ValueError, match="kind"):
        ag.icc(triples, "ICC3")


def test_a_table_parsed_once_gives_what_the_triples_give():
    """Every figure from a Table equals the one from its triples, domains recoded, other raters ignored."""
    rng = np.random.default_rng(11)
    stages = ["W", "N1", "N2", "N3", "R"]
    triples = [(r, i, stages[rng.integers(1, 5)] if rng.uniform() < 0.8 else "N2")
               for r in ("a", "b", "c") for i in range(200) if rng.uniform() < 0.9]
    truth = [("reference", i, stages[rng.integers(0, 5)]) for i in range(200)]
    ratings, pairs = ag.table(triples), ag.table(triples + truth)
    assert ag.fleiss_kappa(ratings, stages) == ag.fleiss_kappa(triples, stages)
    assert ag.per_label_kappa(ratings, stages) == pytest.approx(ag.per_label_kappa(triples, stages), nan_ok=True)
    assert ag.bootstrap_alpha(ratings, "nominal", n_boot=200, seed=1) == ag.bootstrap_alpha(triples, "nominal", n_boot=200, seed=1)
    assert ag.percent_agreement(ratings) == ag.percent_agreement(triples)
    assert ag.agreement_with_majority(ratings) == ag.agreement_with_majority(triples)
    assert ag.majority(ratings) == ag.majority(triples)
    for a, b in (("a", "b"), ("c", "reference")):
        from_table = ag.pair_agreement(pairs, a, b, stages)
        from_triples = ag.pair_agreement(triples + truth, a, b, stages)
        assert (from_table.kappa, from_table.n) == (from_triples.kappa, from_triples.n)
        assert (from_table.confusion == from_triples.confusion).all()
    assert from_table.n == sum(1 for r, _, _ in triples if r == "c")
    assert from_table.kappa == pytest.approx(cohen_kappa_score(
        [v for r, i, v in sorted(triples) if r == "c"],
        [dict((i, v) for _, i, v in truth)[i] for r, i, _ in sorted(triples) if r == "c"], labels=stages))
    with pytest.raises(ValueError, match="outside the domain"):
        ag.fleiss_kappa(ratings, ["W", "N1"])


# --- the columnar entry points give what the triple-based ones give ----------------------------------

def random_triples(seed, raters=("b", "a", 3, "ref"), items=40, labels=STAGES, missing=0.3):
    rng = np.random.default_rng(seed)
    return [(r, u, labels[rng.integers(len(labels))]) for r in raters for u in range(items)
            if rng.random() > missing]


@pytest.mark.parametrize("seed", range(5))
def test_columns_table_is_table_of_the_same_triples(seed):
    triples = random_triples(seed)
    raters, items, values = (list(c) for c in zip(*triples))
    for domain in (None, STAGES):
        assert ag.columns_table(raters, items, values, domain)._asdict().keys() == ag.table(triples)._asdict().keys()
        got, want = ag.columns_table(raters, np.array(items), values, domain), ag.table(triples, domain)
        assert (got.raters, got.items, got.values) == (want.raters, want.items, want.values)
        for field in ("rater", "item", "code"):
            assert np.array_equal(getattr(got, field), getattr(want, field))
        assert ag.bootstrap_alpha(got, "nominal", seed=seed) == ag.bootstrap_alpha(want, "nominal", seed=seed)


def test_columns_table_refuses_a_repeated_pair_and_values_outside_the_domain():
    with pytest.raises(ValueError, match=r"duplicate rating for \(rater, item\) = \('a', 2\)"):
        ag.columns_table(["a", "b", "a"], [2, 2, 2], ["W", "W", "R"])
    with pytest.raises(ValueError, match="outside the domain"):
        ag.columns_table(["a"], [1], ["X"], STAGES)


@pytest.mark.parametrize("seed", range(3))
def test_subset_is_the_table_of_the_kept_triples(seed):
    triples = random_triples(seed)
    t = ag.table(triples, STAGES)
    keep = np.array([r != "a" and i % 3 != 0 for r, i, _ in triples])  # a Table keeps its triples' order
    got, want = ag.subset(t, keep), ag.table([tr for tr, k in zip(triples, keep) if k], STAGES)
    assert (got.raters, got.items) == (want.raters, want.items)
    assert ag.krippendorff_alpha(got) == pytest.approx(ag.krippendorff_alpha(want))
    assert ag.pairwise_cohen_kappa(got, labels=STAGES).keys() == ag.pairwise_cohen_kappa(want, labels=STAGES).keys()


@pytest.mark.parametrize("seed", range(5))
def test_agreement_with_majority_per_label_counts_each_rating_against_its_untied_majority(seed):
    triples = random_triples(seed, raters=range(5), items=60, missing=0.4)
    majorities = ag.majority(triples)
    hits, totals = {}, {}
    for _, item, label in triples:  # the definition, rating by rating
        summary = majorities[item]
        if summary.tie or summary.n < 2:
            continue
        totals[summary.label] = totals.get(summary.label, 0) + 1
        hits[summary.label] = hits.get(summary.label, 0) + (label == summary.label)
    got = ag.agreement_with_majority_per_label(triples, STAGES)
    assert set(got) == set(totals)
    for label, value in got.items():
        assert value == ag.Agreement(hits[label] / totals[label], totals[label])


@pytest.mark.parametrize("shape, high", [((500, 5), 4), ((300, 3), 12), ((50, 30), 9), ((400, 6), 2), ((0, 3), 2)])
def test_unique_rows_is_numpys_unique_over_rows(shape, high):
    """The bootstrap's patterns and the crossed blocks' rater sets: the fast path (rows as integers) and the
    wide fallback give numpy's answer, booleans too."""
    rows = np.random.default_rng(1).integers(0, high, size=shape)
    for matrix in (rows, rows.astype(bool)) if high == 2 else (rows,):
        got = ag.unique_rows(matrix)
        want = np.unique(matrix, axis=0, return_inverse=True, return_counts=True)
        assert all(np.array_equal(g, w.reshape(g.shape)) for g, w in zip(got, want))
        assert got[0].dtype == want[0].dtype


@given(st.lists(st.integers(-3, 40), max_size=60), st.sampled_from([np.int64, np.int32, np.uint16]))
def test_unique_inverse_is_numpys_unique(values, dtype):
    """The presence-table path (and the sort it falls back to) give numpy's keys, dtype and inverse."""
    if dtype is np.uint16:
        values = [abs(v) for v in values]
    x = np.array(values, dtype)
    for spread in (x, x * 1000):  # a small span, and (over 1,264 apart) one wide enough to take the sort
        keys, inverse = ag.unique_inverse(spread)
        want_keys, want_inverse = np.unique(spread, return_inverse=True)
        assert keys.dtype == want_keys.dtype and np.array_equal(keys, want_keys)
        assert inverse.dtype == np.intp and np.array_equal(inverse, want_inverse.reshape(-1))
