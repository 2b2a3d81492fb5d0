"""Blinding across campaigns: the epochs a rater still has to score blind, and campaigns that share raters
and recordings.

A rater who rates a rationale is shown its stage, the model's or an expert's. If the same rater still has
to score that epoch (or the epoch before or after it) in a scoring campaign that hides model outputs or
the reference, rating first would unblind the scoring: the rating queue holds such items back until that
scoring is done. Core knows neither scoring nor rating, so the apps register what they know:
- `register_blind_epochs(source)`: source(user) gives a queryset of datasets.Epoch that the user still has
  to score in a campaign hiding the model or the reference (annotation), or None;
- `register_assignments(kind, source)`: source(rater_ids, recording_ids) gives the (campaign name, rater
  username, recording id) rows of the app's campaigns of `kind` ("scoring": where the rater still scores the
  recording blind; "rating": where the rater rates items on it).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable, NamedTuple

SCORING, RATING = "scoring", "rating"

_BLIND_EPOCH_SOURCES: list[Callable] = []
_ASSIGNMENT_SOURCES: dict[str, Callable[[list[int], list[int]], Iterable[tuple[str, str, int]]]] = {}


def register_blind_epochs(source: Callable) -> None:
    """Add a source of the epochs a user still has to score blind (a queryset of datasets.Epoch, or None)."""
    if source not in _BLIND_EPOCH_SOURCES:
        _BLIND_EPOCH_SOURCES.append(source)


def register_assignments(kind: str, source: Callable[[list[int], list[int]], Iterable[tuple[str, str, int]]]) -> None:
    """Register where raters are assigned to recordings in campaigns of `kind` (SCORING: blind ones; RATING)."""
    _ASSIGNMENT_SOURCES[kind] = source


def epochs_to_score_blind(user):
    """The epochs (a datasets.Epoch queryset) `user` still has to score in a campaign that hides the model or
    the reference; None when no source names any."""
    found = [epochs for epochs in (source(user) for source in _BLIND_EPOCH_SOURCES) if epochs is not None]
    if not found:
        return None
    union = found[0]
    for epochs in found[1:]:
        union |= epochs
    return union


class Overlap(NamedTuple):
    """A rater of a campaign of `kind` who is also assigned some of the recordings of a campaign being set up."""

    kind: str
    campaign: str
    rater: str
    recordings: int

    def __str__(self) -> str:
        these = f"{self.recordings} of these recordings"
        if self.kind == SCORING:
            return (f"{self.rater} still scores {these} in scoring campaign {self.campaign!r}, which hides the model "
                    "or the reference: their rating items on epochs they have yet to score there wait until they have")
        return (f"{self.rater} rates rationales on {these} in rating campaign {self.campaign!r}: an epoch they have "
                "rated there showed them a model or expert stage, so scoring it would not be blind (items not rated "
                "yet wait until they have scored their epochs)")


def blinding_overlaps(raters, recordings, *, kind: str) -> list[Overlap]:
    """Where a campaign being set up with `raters` (users or ids) over `recordings` (recordings or ids) shares
    raters and recordings with existing campaigns of `kind`: for a new rating campaign pass SCORING (the blind
    scoring campaigns), for a new scoring campaign RATING. One Overlap per (campaign, rater), in name order."""
    source = _ASSIGNMENT_SOURCES.get(kind)
    rater_ids = [getattr(r, "pk", r) for r in raters]
    recording_ids = [getattr(r, "pk", r) for r in recordings]
    if source is None or not rater_ids or not recording_ids:
        return []
    shared: dict[tuple[str, str], set[int]] = defaultdict(set)
    for campaign, rater, recording_id in source(rater_ids, recording_ids):
        shared[campaign, rater].add(recording_id)
    return [Overlap(kind, campaign, rater, len(ids)) for (campaign, rater), ids in sorted(shared.items())]
