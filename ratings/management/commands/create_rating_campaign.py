"""python manage.py create_rating_campaign FILE.json|FILE.yaml — a thin wrapper of ratings.services.campaigns.

`item_list` and `rubric` name files next to the campaign file: a CSV of recording, epoch (and optionally
source), and a Markdown rubric; without them the campaign samples its items and copies the default rubric.
"""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.exceptions import InputError
from core.services.specfile import load_spec
from ratings.services.campaigns import create_rating_campaign

FIELDS = {"name", "description", "cohorts", "model_versions", "expert_sources", "sample_size", "seed", "overlap",
          "raters", "reservation_timeout_s", "fast_floor_s", "key_dwell_ms", "signal_view",
          "signal_view_switchable", "item_list", "rubric"}


def _read_beside(spec: Path, name: str, what: str) -> str:
    path = (spec.parent / name).resolve()
    if not path.is_file():
        raise InputError(f"{spec.name}: {what} file {name!r} not found")
    return path.read_text(encoding="utf-8")


class Command(BaseCommand):
    help = "Create a rating campaign from a JSON or YAML file (cohorts, model versions by name, raters by username)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        if not file.is_file():
            raise CommandError(f"no such file: {file}")
        try:
            data = load_spec(file, FIELDS)
            if data.get("item_list"):
                data["item_list"] = _read_beside(file, data["item_list"], "item list")
            if isinstance(data.get("rubric"), str):
                data["rubric"] = _read_beside(file, data["rubric"], "rubric")
            campaign = create_rating_campaign(data.pop("name", None), **data)
        except InputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"rating campaign {campaign.pk} {campaign.name!r}: {campaign.items.count()} items, "
                          f"{campaign.raters.count()} raters, overlap {campaign.overlap}")
