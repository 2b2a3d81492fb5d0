"""The rating statistics' vectorised figures give exactly what Python's statistics module gives (values and
types: the release's agreement.json is byte-reproducible), checked on random scores with hypothesis."""
import statistics

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ratings.services.statistics import _exact_sum, _statistics_mean, describe

SCORES = st.lists(st.integers(1, 5), min_size=0, max_size=300)


@settings(max_examples=300, deadline=None)
@given(SCORES)
def test_describe_equals_the_statistics_module_in_value_and_type(scores):
    got = describe(scores)
    want = {"n": len(scores), "mean": statistics.mean(scores) if scores else None,
            "sd": statistics.stdev(scores) if len(scores) > 1 else None,
            "median": statistics.median(scores) if scores else None}
    for key, value in want.items():
        assert got[key] == value and type(got[key]) is type(value), key
    assert got["distribution"] == {str(p): scores.count(p) for p in range(1, 6)}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(2, 40), st.integers(1, 200)), min_size=1, max_size=200))
def test_a_mean_of_differences_equals_statistics_mean_of_the_same_floats_and_ints(rows):
    """A rater's bias: their score minus the mean of the others' (an int where that mean is whole)."""
    score, others, total = (np.array(c) for c in zip(*rows))
    diffs = score - total / others
    # statistics.mean of `o` ints summing to `t`: an int when whole, else the nearest float
    python = [s - (t // o if t % o == 0 else t / o) for s, o, t in rows]
    integral = bool((total % others == 0).all())
    want = statistics.mean(python)
    got = _statistics_mean(_exact_sum(diffs), len(diffs), integral)
    assert got == want and type(got) is type(want)
