"""Benchmark ordinal Krippendorff's alpha with bootstrap intervals on rationale-rating-sized data.

20,000 items x 3 raters x 3 dimensions of 1-5 scores: a shared item effect (so alpha is ~0.5-0.7)
plus rater noise, rounded and clipped, with 5% of ratings missing (fixed seed). For each dimension,
core.services.agreement.bootstrap_alpha (1,000 item resamples) beside the krippendorff package's
alpha on the same matrix; their point estimates must agree to 1e-9. Last line of output: one JSON
object (seconds: our three dimensions with intervals, from triples; reference_point_seconds: the
package's three point estimates alone).

    .venv/bin/python bench/agreement.py [--items 20000] [--raters 3] [--n-boot 1000] [--seed 20240611]
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import krippendorff  # noqa: E402
import numpy as np  # noqa: E402

from core.services.agreement import bootstrap_alpha  # noqa: E402

DIMENSIONS = ("factual_accuracy", "comprehensiveness", "coherence")  # the rubric's three (spec/rubric.md)


def scores(rng, items: int, raters: int) -> np.ndarray:
    """raters x items 1-5 scores, NaN where missing."""
    item_effect = rng.normal(3.0, 1.0, items)
    data = np.clip(np.rint(item_effect + rng.normal(0.0, 0.75, (raters, items))), 1, 5)
    data[rng.random(data.shape) < 0.05] = np.nan
    return data


def triples(data: np.ndarray) -> list[tuple]:
    return [(r, i, None if np.isnan(v) else int(v)) for (r, i), v in np.ndenumerate(data)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--raters", type=int, default=3)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    data = {d: scores(rng, args.items, args.raters) for d in DIMENSIONS}
    rows = {d: triples(m) for d, m in data.items()}

    t = time.perf_counter()
    ours = {d: bootstrap_alpha(rows[d], "ordinal", n_boot=args.n_boot, seed=args.seed) for d in DIMENSIONS}
    seconds = time.perf_counter() - t

    t = time.perf_counter()
    reference = {d: krippendorff.alpha(reliability_data=data[d], level_of_measurement="ordinal") for d in DIMENSIONS}
    reference_seconds = time.perf_counter() - t

    max_abs_diff = max(abs(ours[d].alpha - reference[d]) for d in DIMENSIONS)
    print(f"{args.items} items x {args.raters} raters, ordinal, {args.n_boot} bootstrap resamples per dimension")
    for d in DIMENSIONS:
        r = ours[d]
        print(f"  {d:<17} alpha {r.alpha:.4f}  95% [{r.low:.4f}, {r.high:.4f}]  package {reference[d]:.4f}"
              f"  ({r.n_items} pairable items)")
    print(f"ours {seconds:.2f} s with intervals; package {reference_seconds:.2f} s for the point estimates;"
          f" max |diff| {max_abs_diff:.2e}")
    if max_abs_diff > 1e-9:
        sys.exit(f"point estimates disagree with the krippendorff package by {max_abs_diff:.2e}")
    print(json.dumps({"seconds": round(seconds, 3), "reference_point_seconds": round(reference_seconds, 3),
                      "max_abs_diff": max_abs_diff}))


if __name__ == "__main__":
    main()
