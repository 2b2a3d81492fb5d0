"""What a user has to do, gathered from the apps for the "My work" page: core knows neither scoring nor rating,
so each app registers a source (`register_work(source)`: source(user) gives a list of Assignment)."""
from __future__ import annotations

from typing import Callable, NamedTuple


class Assignment(NamedTuple):
    kind: str  # "Scoring", "Rating", "Adjudication"
    campaign: str
    done: int  # the user's answers (or resolved epochs)
    total: int  # what the user can answer in all (or epochs to resolve, resolved included)
    url: str  # the page that continues the work
    action: str  # its button: "Start", "Continue", "Adjudicate"

    @property
    def open(self) -> bool:
        return self.done < self.total

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


_SOURCES: list[Callable[[object], list[Assignment]]] = []


def register_work(source: Callable[[object], list[Assignment]]) -> None:
    if source not in _SOURCES:
        _SOURCES.append(source)


def work_of(user) -> list[Assignment]:
    """Every assignment of `user`, open ones first, in the order the apps gave them."""
    found = [assignment for source in _SOURCES for assignment in source(user)]
    return sorted(found, key=lambda a: not a.open)
