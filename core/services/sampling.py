"""Seeded, reproducible stratified sampling shared by scoring and rating campaigns."""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def equal_allocation(sizes: dict[Hashable, int], budget: int) -> dict[Hashable, int]:
    """How many to take from each stratum: equal shares; a stratum too small gives all it has and the
    rest goes to the others (strata in the order of `sizes`)."""
    take = {key: 0 for key in sizes}
    remaining = [key for key, size in sizes.items() if size > 0]
    while remaining and budget > 0:
        share = max(budget // len(remaining), 1)
        for key in list(remaining):
            extra = min(share, sizes[key] - take[key], budget)
            take[key] += extra
            budget -= extra
            if take[key] >= sizes[key]:
                remaining.remove(key)
            if budget <= 0:
                break
    return take


def stratified_sample(strata: dict[Hashable, Sequence], size: int, rng: np.random.Generator) -> list:
    """`size` members drawn without replacement, equally allocated over the strata (see equal_allocation)."""
    take = equal_allocation({key: len(members) for key, members in strata.items()}, size)
    chosen = []
    for key, members in strata.items():
        if len(members):
            chosen += [members[i] for i in rng.choice(len(members), take[key], replace=False)]
    return chosen
