"""Expert rationales by source, for apps that rate or export them without importing each other.

A source maps a queryset of epochs to (epoch id, stage, rule ids, rationale) rows. The datasets app
provides "massex" (rationales imported with MASS-EX "fine" files); the annotation app registers
"scoring" (rationales written in scoring campaigns' rationale mode).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from datasets.constants import UNSCORED


class ExpertRationale(NamedTuple):
    epoch_id: int
    stage: str
    rule_ids: list
    rationale: str


EXPERT_RATIONALE_SOURCES: dict[str, Callable[[object], Iterable[ExpertRationale]]] = {}


def massex_rationales(epochs) -> Iterable[ExpertRationale]:
    rows = epochs.exclude(reference_rationale="").exclude(stage=UNSCORED).order_by("pk")
    for pk, stage, rules, rationale in rows.values_list("pk", "stage", "reference_rules", "reference_rationale"):
        yield ExpertRationale(pk, stage, list(rules or []), rationale)


EXPERT_RATIONALE_SOURCES["massex"] = massex_rationales
