"""The rubric of a rating campaign: parsed from Markdown (the default is ratings/default_rubric.md, a copy
of the platform's spec), versioned, editable until the campaign's first rating and frozen after."""
from __future__ import annotations

import re
from pathlib import Path

from django.db import transaction
from django.utils.text import slugify

from core.exceptions import InputError
from core.models import ChangeRecord
from core.services import audit
from ratings.models import Rating, Rubric

DEFAULT_RUBRIC = Path(__file__).resolve().parents[1] / "default_rubric.md"
SCALE = (1, 2, 3, 4, 5)
_HEADING = re.compile(r"^##\s+(?P<title>[^:]+?)\s*:\s*(?P<question>.+?)\s*$")
_ANCHOR = re.compile(r"^(?P<point>[1-5])\.\s+(?P<text>.+?)\s*$")


def parse_rubric(text: str, source: str = "rubric") -> list[dict]:
    """Dimensions of a Markdown rubric: '## Title: question' then the anchors '1. ...' to '5. ...'."""
    dimensions: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if heading := _HEADING.match(line):
            title = heading["title"].strip()
            dimensions.append({"key": slugify(title).replace("-", "_"), "title": title,
                               "question": heading["question"], "anchors": []})
        elif anchor := _ANCHOR.match(line.strip()):
            if not dimensions:
                raise InputError(f"{source}, line {number}: an anchor before any '## Dimension: question' heading")
            anchors = dimensions[-1]["anchors"]
            if int(anchor["point"]) != len(anchors) + 1:
                raise InputError(f"{source}, line {number}: anchor {anchor['point']} out of order "
                                 f"(expected {len(anchors) + 1})")
            anchors.append(anchor["text"])
    return check_dimensions(dimensions, source)


def check_dimensions(dimensions, source: str = "rubric") -> list[dict]:
    """The dimensions as stored: each with a unique key, a title, a question and exactly five anchors."""
    if not isinstance(dimensions, list) or not dimensions:
        raise InputError(f"{source}: no dimensions (expected '## Title: question' headings with anchors 1 to 5)")
    keys = set()
    for d in dimensions:
        if not isinstance(d, dict) or not all(isinstance(d.get(f), str) and d.get(f) for f in ("key", "title", "question")):
            raise InputError(f"{source}: every dimension needs a key, a title and a question")
        anchors = d.get("anchors")
        if not isinstance(anchors, list) or len(anchors) != len(SCALE) or not all(isinstance(a, str) and a for a in anchors):
            raise InputError(f"{source}: dimension {d['title']!r} needs exactly five anchor texts (1 to 5)")
        if d["key"] in keys:
            raise InputError(f"{source}: two dimensions share the key {d['key']!r}")
        keys.add(d["key"])
    return [{"key": d["key"], "title": d["title"], "question": d["question"], "anchors": list(d["anchors"])}
            for d in dimensions]


def default_dimensions() -> list[dict]:
    return parse_rubric(DEFAULT_RUBRIC.read_text(encoding="utf-8"), DEFAULT_RUBRIC.name)


def is_frozen(campaign) -> bool:
    return Rating.objects.filter(item__campaign=campaign).exists()


@transaction.atomic
def edit_rubric(campaign, dimensions, *, user=None) -> Rubric:
    """A new rubric version for the campaign; refused once it has a rating (the rubric is frozen then)."""
    from ratings.models import RatingCampaign

    RatingCampaign.objects.select_for_update().filter(pk=campaign.pk).first()  # one edit (or first rating) at a time
    if is_frozen(campaign):
        raise InputError(f"the rubric of {campaign.name!r} is frozen: the campaign already has ratings")
    dimensions = check_dimensions(dimensions)
    current = campaign.rubric
    if current is not None and current.dimensions == dimensions:
        return current
    rubric = Rubric.objects.create(campaign=campaign, version=(current.version + 1) if current else 1,
                                   dimensions=dimensions)
    audit.record(ChangeRecord.CREATE, rubric, actor=user, before=audit.snapshot(current) if current else None,
                 after=audit.snapshot(rubric), object_repr=f"{campaign.name}: rubric version {rubric.version}")
    return rubric
