"""Inter-rater agreement on (rater, item, value) triples: kappas, Krippendorff's alpha, ICC, majorities.

Every function takes an iterable of (rater, item, value) triples: rater and item are any hashable,
value is a label or a number, and None or NaN means "not rated". A (rater, item) pair given twice
is a ValueError, never averaged. Raters, items and values are put in sorted order (by type name
and repr where the keys do not compare), so every matrix and every result is deterministic. Where
many figures come from the same ratings, parse them once with `table(triples)` and pass the Table
in place of the triples.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Sequence
from itertools import combinations
from typing import Any, NamedTuple

import krippendorff
import numpy as np

Triple = tuple[Hashable, Hashable, Any]
LEVELS = ("nominal", "ordinal", "interval", "ratio")
WEIGHTS = (None, "linear", "quadratic")
ICC_KINDS = ("ICC2", "ICC2k")


class Matrix(NamedTuple):
    data: np.ndarray  # raters x items; float for numbers, object for labels; NaN where not rated
    raters: list
    items: list


class Kappa(NamedTuple):
    value: float
    n: int  # items both raters rated


class FleissKappa(NamedTuple):
    value: float
    n_items: int
    ratings_per_item: int


class Agreement(NamedTuple):
    value: float
    n: int


class BootstrapAlpha(NamedTuple):
    alpha: float
    low: float
    high: float
    n_items: int  # pairable items (two ratings or more): the units resampled


class Majority(NamedTuple):
    label: Any  # None on a tie
    share: float  # share of the item's ratings that carry the modal label(s)
    tie: bool
    n: int  # ratings of the item
    modes: tuple  # the modal labels, sorted; more than one on a tie


class Table(NamedTuple):
    """Triples parsed once (`table`); every function here takes one in place of triples."""

    raters: list
    items: list
    values: list  # the value domain: codes index into it
    rater: np.ndarray  # per rating: index into raters
    item: np.ndarray  # per rating: index into items
    code: np.ndarray  # per rating: index into values


Ratings = Iterable[Triple] | Table  # what every function below takes


def _ordered(keys) -> list:
    keys = set(keys)
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=lambda k: (type(k).__name__, repr(k)))


def _missing(value) -> bool:
    return value is None or (isinstance(value, numbers.Real) and math.isnan(value))


def _numeric(values) -> bool:
    return all(isinstance(v, numbers.Real) for v in values)


def table(triples: Ratings, domain: Sequence | None = None) -> Table:
    """Parse triples once (a Table is taken as it is); `domain` (an ordered list of allowed values) replaces
    the sorted values seen."""
    if isinstance(triples, Table):
        return triples if domain is None or list(domain) == triples.values else _recoded(triples, list(domain))
    rows = triples if isinstance(triples, list) else list(triples)
    raters, items, values = (list(c) for c in zip(*rows)) if rows else ([], [], [])
    rated = np.fromiter((not _missing(v) for v in values), bool, len(values))
    return _parsed(raters, items, values, rated, domain)


def unique_inverse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(x, return_inverse=True) of an integer array, as intp: by a presence table instead of a
    sort where the values span little more than their number (ids, codes, indices)."""
    x = np.asarray(x)
    if not x.size or x.dtype.kind not in "iu":
        keys, index = np.unique(x, return_inverse=True)
        return keys, index.reshape(-1).astype(np.intp)
    low, high = int(x.min()), int(x.max())
    if high - low > 4 * x.size + 1024 or high >= 2**62 or low < -2**62:
        keys, index = np.unique(x, return_inverse=True)
        return keys, index.reshape(-1).astype(np.intp)
    offset = x.astype(np.intp) - low
    present = np.zeros(high - low + 1, bool)
    present[offset] = True
    rank = np.cumsum(present, dtype=np.intp) - 1
    return (np.flatnonzero(present) + low).astype(x.dtype), rank[offset]


def _keys(column) -> tuple[list, np.ndarray]:
    """A column's distinct keys in `table`'s order and each entry's index into them."""
    if isinstance(column, np.ndarray) and column.dtype.kind in "iub":
        keys, index = unique_inverse(column)
        return keys.tolist(), index
    keys = _ordered(column)
    position = {key: k for k, key in enumerate(keys)}
    return keys, np.fromiter(map(position.__getitem__, column), np.intp, len(column))


def columns_table(raters: Sequence, items: Sequence, values: Sequence, domain: Sequence | None = None) -> Table:
    """`table` from columns (each rating's rater, item and value, none missing), vectorised: the same Table
    as table(zip(raters, items, values), domain) gives, without a Python loop over numeric columns."""
    return _parsed(raters, items, values, None, domain)


def _parsed(raters, items, values, rated: np.ndarray | None, domain: Sequence | None) -> Table:
    """The Table of rating columns; `rated` (a mask) leaves out missing values after the repeat check."""
    rater_keys, rater = _keys(raters)
    item_keys, item = _keys(items)
    if not len(values) == len(rater) == len(item):
        raise ValueError("raters, items and values differ in length")
    pair_code = rater.astype(np.int64) * max(len(item_keys), 1) + item
    if len(unique_inverse(pair_code)[0]) < len(rater):  # the first rating that repeats a (rater, item) pair
        _, first = np.unique(pair_code, return_index=True)
        repeats = np.ones(len(rater), bool)
        repeats[first] = False
        repeat = int(np.flatnonzero(repeats)[0])
        pair = (rater_keys[rater[repeat]], item_keys[item[repeat]])
        raise ValueError(f"duplicate rating for (rater, item) = {pair!r}")
    if rated is not None:
        rater, item, values = rater[rated], item[rated], [v for v, keep in zip(values, rated) if keep]
    value_keys, code = _keys(values)
    parsed = Table(rater_keys, item_keys, value_keys, rater, item, code)
    return parsed if domain is None else _recoded(parsed, list(domain))


def subset(t: Table, keep: np.ndarray) -> Table:
    """The ratings of a Table that `keep` selects (a boolean mask or indices), without the raters and items
    left with none."""
    rater, item = t.rater[keep], t.item[keep]
    rater_used, rater = unique_inverse(rater)
    item_used, item = unique_inverse(item)
    return Table([t.raters[k] for k in rater_used], [t.items[k] for k in item_used], t.values, rater, item,
                 t.code[keep])


def _recoded(t: Table, domain: list) -> Table:
    """A parsed table with its values coded in `domain` instead."""
    index = {v: k for k, v in enumerate(domain)}
    position = np.array([index.get(v, -1) for v in t.values], np.intp)
    used = np.unique(t.code)
    outside = [t.values[k] for k in used[position[used] < 0]]
    if outside:
        raise ValueError(f"values outside the domain {domain!r}: {outside!r}")
    return t._replace(values=domain, code=position[t.code])


def _counts(t: Table) -> np.ndarray:
    """items x values: how many raters gave each value to each item."""
    v = len(t.values)
    return np.bincount(t.item * v + t.code, minlength=len(t.items) * v).reshape(len(t.items), v)


def value_counts(triples: Ratings) -> np.ndarray:
    """items x values (in the Table's orders): how many raters gave each value to each item."""
    return _counts(table(triples))


def _codes(t: Table) -> np.ndarray:
    """raters x items value codes, -1 where not rated."""
    codes = np.full((len(t.raters), len(t.items)), -1, np.intp)
    codes[t.rater, t.item] = t.code
    return codes


def reliability_matrix(triples: Ratings, *, items: Sequence | None = None,
                       raters: Sequence | None = None) -> Matrix:
    """Raters x items matrix with NaN where not rated, and its rater and item order.

    Float when every value is a number, else an object array of labels. `items` and `raters`, when
    given, fix the columns and rows (in that order); ratings outside them are left out.
    """
    t = table(triples)
    raters = t.raters if raters is None else list(raters)
    items = t.items if items is None else list(items)
    r_pos = {r: k for k, r in enumerate(raters)}
    i_pos = {i: k for k, i in enumerate(items)}
    row = np.array([r_pos.get(r, -1) for r in t.raters], np.intp)[t.rater]
    col = np.array([i_pos.get(i, -1) for i in t.items], np.intp)[t.item]
    keep = (row >= 0) & (col >= 0)
    numeric = _numeric(t.values)
    values = np.array(t.values, float if numeric else object)
    data = np.full((len(raters), len(items)), np.nan, float if numeric else object)
    data[row[keep], col[keep]] = values[t.code[keep]]
    return Matrix(data, raters, items)


def _kappa_from_confusion(confusion: np.ndarray, weights: str | None) -> float:
    """sklearn's definition: 1 - sum(w * observed) / sum(w * expected), weights on label positions."""
    n = confusion.sum()
    if n == 0:
        return math.nan
    expected = np.outer(confusion.sum(1), confusion.sum(0)) / n
    gap = np.subtract.outer(np.arange(len(confusion)), np.arange(len(confusion)))
    w = {None: gap != 0, "linear": np.abs(gap), "quadratic": gap**2}[weights]
    denominator = (w * expected).sum()
    return float(1 - (w * confusion).sum() / denominator) if denominator else math.nan


def _pair(t: Table, codes: np.ndarray, rater_a, rater_b, labels: Sequence | None):
    """Label positions of the items both raters rated, and the labels they index."""
    rows = {r: k for k, r in enumerate(t.raters)}
    for r in (rater_a, rater_b):
        if r not in rows:
            raise ValueError(f"unknown rater {r!r}")
    a, b = codes[rows[rater_a]], codes[rows[rater_b]]
    both = (a >= 0) & (b >= 0)
    a, b = a[both], b[both]
    if labels is None:
        used = np.unique(np.concatenate([a, b]))
        position = np.full(len(t.values), -1, np.intp)
        position[used] = np.arange(len(used))
        return position[a], position[b], [t.values[k] for k in used]
    labels = list(labels)
    index = {v: k for k, v in enumerate(labels)}
    position = np.array([index.get(v, -1) for v in t.values], np.intp)
    used = np.unique(np.concatenate([a, b]))
    outside = [t.values[k] for k in used[position[used] < 0]]
    if outside:
        raise ValueError(f"values outside labels {labels!r}: {outside!r}")
    return position[a], position[b], labels


def _confusion(a: np.ndarray, b: np.ndarray, n_labels: int) -> np.ndarray:
    return np.bincount(a * n_labels + b, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def _check_weights(weights):
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS!r}, not {weights!r}")


def cohen_kappa(triples: Ratings, rater_a, rater_b, *, weights: str | None = None,
                labels: Sequence | None = None) -> Kappa:
    """Cohen's kappa of two raters on the items both rated (NaN when undefined).

    weights None, "linear" or "quadratic" act on positions in `labels` (default: the sorted values
    the two raters used), as sklearn.metrics.cohen_kappa_score does.
    """
    _check_weights(weights)
    t = table(triples)
    a, b, labels = _pair(t, _codes(t), rater_a, rater_b, labels)
    return Kappa(_kappa_from_confusion(_confusion(a, b, len(labels)), weights), len(a))


def pairwise_cohen_kappa(triples: Ratings, *, weights: str | None = None,
                         labels: Sequence | None = None) -> dict[tuple, Kappa]:
    """Cohen's kappa for every pair of raters, keyed (rater_a, rater_b) in rater order."""
    _check_weights(weights)
    t = table(triples)
    codes = _codes(t)
    out = {}
    for rater_a, rater_b in combinations(t.raters, 2):
        a, b, used = _pair(t, codes, rater_a, rater_b, labels)
        out[rater_a, rater_b] = Kappa(_kappa_from_confusion(_confusion(a, b, len(used)), weights), len(a))
    return out


class PairAgreement(NamedTuple):
    kappa: float
    n: int  # items both raters rated
    confusion: np.ndarray  # rows rater_a's labels, columns rater_b's, in `labels` order


def pair_agreement(triples: Ratings, rater_a, rater_b, labels: Sequence, *,
                   weights: str | None = None) -> PairAgreement:
    """Cohen's kappa and the confusion matrix of two raters from one pass over their ratings
    (ratings of other raters are ignored; given a Table, nothing is parsed again)."""
    _check_weights(weights)
    if not isinstance(triples, Table):
        triples = ((r, i, v) for r, i, v in triples if r == rater_a or r == rater_b)
    t = table(triples)
    a, b, labels = _pair(t, _codes(t), rater_a, rater_b, labels)
    confusion = _confusion(a, b, len(labels))
    return PairAgreement(_kappa_from_confusion(confusion, weights), len(a), confusion)


def confusion_matrix(triples: Ratings, rater_a, rater_b, labels: Sequence) -> np.ndarray:
    """Counts on the items both rated: rows are rater_a's labels, columns rater_b's, in `labels` order."""
    t = table(triples)
    a, b, labels = _pair(t, _codes(t), rater_a, rater_b, labels)
    return _confusion(a, b, len(labels))


def _equal_ratings(counts: np.ndarray, ratings_per_item: int | None) -> tuple[np.ndarray, int]:
    """The items with exactly `ratings_per_item` ratings (default: the commonest count of two or more)."""
    m = counts.sum(1)
    if ratings_per_item is None:
        tally = np.bincount(m[m >= 2])
        if not tally.any():
            raise ValueError("no item has two ratings or more")
        ratings_per_item = int(len(tally) - 1 - np.argmax(tally[::-1]))  # ties: the larger count
    if ratings_per_item < 2:
        raise ValueError("ratings_per_item must be 2 or more")
    return counts[m == ratings_per_item], ratings_per_item


def _fleiss(counts: np.ndarray) -> float:
    """Fleiss' kappa of an items x categories count table with the same number of ratings on every item.

    statsmodels.stats.inter_rater.fleiss_kappa(counts, method="fleiss"), operation for operation (its
    tests check the two agree to the bit): the library itself is not imported, because it brings pandas
    and scipy.stats, 136 MB in every web, worker and release process, for these few lines.
    """
    table = 1.0 * np.asarray(counts)
    n_rat = table.sum(1).max()
    p_cat = table.sum(0) / table.sum()
    p_mean = (((table * table).sum(1) - n_rat) / (n_rat * (n_rat - 1.0))).mean()
    p_mean_exp = (p_cat * p_cat).sum()
    return (p_mean - p_mean_exp) / (1 - p_mean_exp)


def fleiss_kappa(triples: Ratings, labels: Sequence, *,
                 ratings_per_item: int | None = None) -> FleissKappa:
    """Fleiss' kappa over the items with the same number of ratings.

    Fleiss' kappa assumes every item has the same number of ratings (the raters may differ from item
    to item). The items used are those with exactly `ratings_per_item` ratings, by default the
    commonest number of ratings among items with two or more (ties: the larger); others are left out.
    """
    counts, m = _equal_ratings(_counts(table(triples, labels)), ratings_per_item)
    return FleissKappa(float(_fleiss(counts)), len(counts), m)


def per_label_kappa(triples: Ratings, labels: Sequence, *,
                    ratings_per_item: int | None = None) -> dict:
    """One-vs-rest Fleiss' kappa per label (Fleiss 1971's category kappa), on fleiss_kappa's items.

    Each label's ratings are set against all other labels and Fleiss' kappa is taken on that
    two-column table; a label nobody used gets NaN.
    """
    counts, m = _equal_ratings(_counts(table(triples, labels)), ratings_per_item)
    out = {}
    for k, label in enumerate(labels):
        binary = np.column_stack([counts[:, k], m - counts[:, k]])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[label] = float(_fleiss(binary))
    return out


def _level(level: str, values: list) -> np.ndarray | None:
    """The value domain the metric needs: numbers for interval and ratio, None for nominal and ordinal."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS!r}, not {level!r}")
    if level in ("interval", "ratio"):
        if not _numeric(values):
            raise ValueError(f"{level} alpha needs numeric values")
        return np.asarray(values, float)
    return None


def _table_for_alpha(triples, level: str, value_domain: Sequence | None) -> Table:
    t = table(triples, value_domain)
    if level == "ordinal" and value_domain is None and not _numeric(t.values):
        raise ValueError("ordinal alpha on labels needs an ordered value_domain")
    return t


def krippendorff_alpha(triples: Ratings, level: str = "nominal",
                       value_domain: Sequence | None = None) -> float:
    """Krippendorff's alpha (the `krippendorff` package) with missing ratings allowed.

    `value_domain` orders the values for ordinal alpha (default: sorted values, numbers only).
    """
    t = _table_for_alpha(triples, level, value_domain)
    points = _level(level, t.values)
    domain = np.arange(len(t.values)) if points is None else points
    return float(krippendorff.alpha(value_counts=_counts(t), value_domain=domain, level_of_measurement=level))


def _item_coincidences(counts: np.ndarray) -> np.ndarray:
    """Each item's coincidence matrix o_u = (n_uc n_uk - [c=k] n_uc) / (m_u - 1), flattened: items x V*V."""
    v = counts.shape[1]
    pairs = counts[:, :, None] * counts[:, None, :] - counts[:, None, :] * np.eye(v, dtype=counts.dtype)
    return (pairs / (counts.sum(1) - 1)[:, None, None]).reshape(len(counts), v * v)


def _alpha_from_coincidences(o: np.ndarray, level: str, points: np.ndarray | None) -> np.ndarray:
    """alpha = 1 - D_o / D_e for each row of o (samples x V x V), with the level's squared distance.

    Ordinal distance is that of each sample's own marginals n_c: (sum_{g=c..k} n_g - (n_c + n_k)/2)^2,
    the squared gap between the values' mid-ranks.
    """
    n = o.sum(1)
    if level == "nominal":
        d = 1 - np.eye(o.shape[1])[None]
    elif level == "ordinal":
        mid = np.cumsum(n, 1) - n / 2
        d = (mid[:, :, None] - mid[:, None, :]) ** 2
    elif level == "interval":
        d = np.subtract.outer(points, points)[None] ** 2
    else:
        total = np.add.outer(points, points)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(total != 0, np.subtract.outer(points, points) / total, 0.0)[None] ** 2
    observed = (o * d).sum((1, 2))
    expected = np.einsum("bc,bck,bk->b", n, np.broadcast_to(d, o.shape), n) / (n.sum(1) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - observed / expected


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(rows, axis=0, return_inverse=True, return_counts=True) of a matrix of non-negative integers
    (or booleans), through one integer per row where the rows fit in 62 bits (read as digits: the same
    sorted order, many times faster)."""
    base = int(rows.max(initial=0)) + 1
    if base ** rows.shape[1] >= 2**62:
        unique, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        return unique, inverse.reshape(-1), counts
    digits = base ** np.arange(rows.shape[1] - 1, -1, -1, dtype=np.int64)
    _, first, inverse, counts = np.unique(rows.astype(np.int64) @ digits, return_index=True, return_inverse=True,
                                          return_counts=True)
    return rows[first], inverse.reshape(-1), counts


def bootstrap_alpha(triples: Ratings, level: str, *, n_boot: int = 1000, seed: int = 0,
                    confidence: float = 0.95, value_domain: Sequence | None = None) -> BootstrapAlpha:
    """Krippendorff's alpha with a percentile bootstrap interval from resampling items.

    Method: the pairable items (two ratings or more) are resampled with replacement, n_boot times,
    from numpy's default_rng(seed). alpha is computed from Krippendorff's coincidence matrix: item u
    contributes o_u = (n_uc n_uk - [c=k] n_uc) / (m_u - 1), a resample's matrix is the sum of its
    items' o_u weighted by how often each was drawn, and alpha = 1 - D_o / D_e with the level's
    squared distance (ordinal distances from the resample's own marginals). Items with the same
    value counts share one o_u, so the draw is a multinomial over those patterns (the same
    distribution as drawing items). The interval is the (1 - confidence)/2 and (1 + confidence)/2
    quantiles of the resampled alphas; resamples where alpha is undefined (one value only) are
    left out. The point estimate equals krippendorff_alpha.
    """
    t = _table_for_alpha(triples, level, value_domain)
    points = _level(level, t.values)
    if len(t.values) < 2:
        raise ValueError("alpha needs two values or more in the domain")
    counts = _counts(t)
    counts = counts[counts.sum(1) >= 2]
    if not len(counts):
        raise ValueError("no item has two ratings or more")
    patterns, _, weight = unique_rows(counts)
    o = _item_coincidences(patterns)
    v = len(t.values)
    point = _alpha_from_coincidences((weight @ o).reshape(1, v, v), level, points)[0]
    draws = np.random.default_rng(seed).multinomial(len(counts), weight / len(counts), size=n_boot)
    boot = _alpha_from_coincidences((draws @ o).reshape(n_boot, v, v), level, points)
    if np.isnan(boot).all():  # no resample has variation: the interval is as undefined as the point
        return BootstrapAlpha(float(point), float("nan"), float("nan"), len(counts))
    low, high = np.nanquantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return BootstrapAlpha(float(point), float(low), float(high), len(counts))


def percent_agreement(triples: Ratings) -> Agreement:
    """Mean over items with two ratings or more of the share of rater pairs that agree; n = those items."""
    counts = _counts(table(triples))
    m = counts.sum(1)
    counts, m = counts[m >= 2], m[m >= 2]
    if not len(m):
        return Agreement(math.nan, 0)
    return Agreement(float(((counts * (counts - 1)).sum(1) / (m * (m - 1))).mean()), len(m))


def agreement_with_majority(triples: Ratings) -> Agreement:
    """Share of ratings equal to their item's modal label, over items with two ratings or more.

    Each rating counts in its own item's majority. Ties do not change the value: a rating counts 1/t
    when its label is one of t tied modal labels, which is what any tie-break gives, since tied labels
    have the same count. n = the ratings counted.
    """
    counts = _counts(table(triples))
    m = counts.sum(1)
    counts, m = counts[m >= 2], m[m >= 2]
    if not m.sum():
        return Agreement(math.nan, 0)
    return Agreement(float(counts.max(1).sum() / m.sum()), int(m.sum()))


def agreement_with_majority_per_label(triples: Ratings, labels: Sequence) -> dict:
    """Per label: the share of ratings equal to their item's majority, over the items rated twice or more
    whose plurality label, without a tie, is that label (n = those items' ratings)."""
    counts = _counts(table(triples, labels))
    m = counts.sum(1)
    top = counts.max(1)
    chosen = (m >= 2) & ((counts == top[:, None]).sum(1) == 1)
    modal = counts.argmax(1)
    out = {}
    for k, label in enumerate(labels):
        mine = chosen & (modal == k)
        if mine.any():
            out[label] = Agreement(float(top[mine].sum() / m[mine].sum()), int(m[mine].sum()))
    return out


def label_shares(triples: Ratings, labels: Sequence) -> dict:
    """Per rated item, the share of its ratings giving each of `labels` (several raters' hypnodensity
    when the labels are stages). Items with the same shares share one dict (a handful of distinct rows for a
    100,000-epoch campaign: not a dict and five floats per item); treat them as read-only."""
    t = table(triples, labels)
    counts = _counts(t)
    m = counts.sum(1)
    rated = np.flatnonzero(m)
    distinct, which = np.unique(counts[rated] / m[rated, None], axis=0, return_inverse=True)
    rows = [dict(zip(t.values, row)) for row in distinct.tolist()]
    return {t.items[u]: rows[k] for u, k in zip(rated.tolist(), which.reshape(-1).tolist())}


def unanimity(triples: Ratings, labels: Sequence) -> dict:
    """Share of items rated twice or more on which every rating agrees, overall and per label (over the
    items whose plurality label, without a tie, is that label), each with its number of items n."""
    t = table(triples, labels)
    counts = _counts(t)
    counts = counts[counts.sum(1) >= 2]
    unanimous = counts.max(1) == counts.sum(1)
    top = counts.max(1, keepdims=True)
    untied = (counts == top).sum(1) == 1
    modal = counts.argmax(1)
    per_label = {}
    for k, label in enumerate(t.values):
        chosen = untied & (modal == k)
        if chosen.any():
            per_label[label] = Agreement(float(unanimous[chosen].mean()), int(chosen.sum()))
    overall = Agreement(float(unanimous.mean()), len(unanimous)) if len(unanimous) else Agreement(math.nan, 0)
    return {"overall": overall, "per_label": per_label}


def majority(triples: Ratings) -> dict:
    """Per rated item, its plurality label (None on a tie), the share holding it, a tie flag, the
    number of ratings and the modal labels (several on a tie: the adjudication candidates)."""
    t = table(triples)
    counts = _counts(t)
    m = counts.sum(1)
    top = counts.max(1)
    out = {}
    for u in np.flatnonzero(m):
        modes = tuple(t.values[k] for k in np.flatnonzero(counts[u] == top[u]))
        out[t.items[u]] = Majority(modes[0] if len(modes) == 1 else None, float(top[u] / m[u]),
                                   len(modes) > 1, int(m[u]), modes)
    return out


def icc(triples: Ratings, kind: str = "ICC2k") -> float:
    """Intraclass correlation, two-way random effects, absolute agreement (Shrout & Fleiss 1979).

    kind "ICC2" is ICC(2,1), one rater's reliability; "ICC2k" is ICC(2,k), the mean of the k raters'.
    Needs a fully crossed design: every rater rated every item, with numbers.
    """
    if kind not in ICC_KINDS:
        raise ValueError(f"kind must be one of {ICC_KINDS!r}, not {kind!r}")
    matrix = reliability_matrix(triples)
    if matrix.data.dtype != float:
        raise ValueError("ICC needs numeric values")
    y = matrix.data.T  # items x raters
    if np.isnan(y).any():
        raise ValueError(f"ICC needs a fully crossed design: {int(np.isnan(y).sum())} of {y.size} "
                         "(rater, item) ratings are missing")
    n, k = y.shape
    if n < 2 or k < 2:
        raise ValueError("ICC needs two items and two raters or more")
    grand = y.mean()
    ms_rows = k * ((y.mean(1) - grand) ** 2).sum() / (n - 1)
    ms_cols = n * ((y.mean(0) - grand) ** 2).sum() / (k - 1)
    ms_error = (((y - grand) ** 2).sum() - (n - 1) * ms_rows - (k - 1) * ms_cols) / ((n - 1) * (k - 1))
    if kind == "ICC2":
        denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    else:
        denominator = ms_rows + (ms_cols - ms_error) / n
    if np.isclose(denominator, 0.0):  # no variance at all (every rating the same): undefined
        return float("nan")
    return float((ms_rows - ms_error) / denominator)
