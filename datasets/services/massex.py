"""MASS-EX epoch numbering (spec/mass-ex.md): N is an epoch's rank among the scored epochs.

The authors keep only W, N1, N2, N3 and R epochs and number them from 0 in time order, so an
unscored epoch has no N and shifts every later N against the time index. A MASS-EX CSV is read
onto a recording through the recording's own scored hypnogram: row N lands on the scored epoch
of rank N, whose stage must equal the row's.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from datasets.constants import EPOCH_SECONDS, UNSCORED
from datasets.exceptions import InputError
from datasets.services.hypnograms import MassExRow, ScoredEpoch

SHOWN_MISMATCHES = 5
NEEDS_HYPNOGRAM = (
    "a MASS-EX CSV numbers only the scored epochs (N is the rank among W, N1, N2, N3 and R epochs, "
    "not time / 30 s), so reading it needs the recording's own scored hypnogram, e.g. its MASS Base "
    "annotations (in the PSG or with --hypnogram), and this file with --massex; if the CSV's epochs are "
    "contiguous from the first epoch, say so with --massex-contiguous to read it as the hypnogram itself"
)


def ranks(epochs: list[ScoredEpoch]) -> list[int | None]:
    """Each epoch's MASS-EX N: its rank among the scored epochs; None for an unscored one."""
    numbers, n = [], 0
    for epoch in epochs:
        if epoch.stage == UNSCORED:
            numbers.append(None)
        else:
            numbers.append(n)
            n += 1
    return numbers


def contiguous_numbers(epochs: list[ScoredEpoch]) -> list[int | None]:
    """N of epochs read from a MASS-EX CSV taken as contiguous (onset N * 30 s); None for filled gaps."""
    return [None if e.stage == UNSCORED else round(e.onset / EPOCH_SECONDS) for e in epochs]


def apply_rows(epochs: list[ScoredEpoch], rows: list[MassExRow], source: Path, hypnogram_source: str) -> list[ScoredEpoch]:
    """`epochs` with each row's rules and rationale on the epoch of rank N; stages must agree."""
    if not rows:
        raise InputError(f"{source}: no MASS-EX rows")
    by_rank = {n: i for i, n in enumerate(ranks(epochs)) if n is not None}
    beyond = [row for row in rows if row.n not in by_rank]
    mismatches = [
        (row, by_rank[row.n]) for row in rows if row.n in by_rank and epochs[by_rank[row.n]].stage != row.stage
    ]
    if mismatches:
        shown = "; ".join(
            f"{row.where}: N={row.n} Stage {row.stage}, hypnogram {epochs[i].stage} at epoch {i}"
            for row, i in mismatches[:SHOWN_MISMATCHES]
        )
        past = f", and {len(beyond)} row(s) have N past the last scored epoch" if beyond else ""
        raise InputError(
            f"{source}: {len(mismatches)} of {len(rows)} rows disagree with the stage of their epoch in the "
            f"hypnogram {hypnogram_source} (row N goes onto the scored epoch of rank N){past}; first: {shown}. "
            "Is this the CSV of this recording, and the hypnogram its scored (MASS Base) one?"
        )
    if beyond:
        raise InputError(
            f"{source}: {beyond[0].where}: N={beyond[0].n}, but the hypnogram {hypnogram_source} has "
            f"{len(by_rank)} scored epochs within the signal (N 0–{len(by_rank) - 1}); "
            f"{len(beyond)} row(s) have N past the last one"
        )
    scored = list(epochs)
    for row in rows:
        i = by_rank[row.n]
        scored[i] = replace(scored[i], rule_ids=row.rule_ids, rationale=row.rationale)
    return scored


def subject_notes(rows: list[MassExRow], source: Path, recording_name: str) -> list[str]:
    """A note when the CSV names a subject the recording's name does not contain; several subjects are an error."""
    subjects = sorted({row.subject for row in rows})
    if len(subjects) > 1:
        raise InputError(f"{source}: rows name several subjects ({', '.join(subjects)}); MASS-EX has one CSV per subject")
    if subjects and subjects[0] not in recording_name:
        return [f"{source}: the MASS-EX CSV names subject {subjects[0]}, which the recording's name "
                f"{recording_name} does not contain; check that it belongs to this recording"]
    return []
