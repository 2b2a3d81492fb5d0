"""python manage.py create_rating_campaign FILE.json|FILE.yaml — a thin wrapper of ratings.services.campaigns.

`item_list` and `rubric` name files next to the campaign file: a CSV of recording, epoch (and optionally
source), and a Markdown rubric; without them the campaign samples its items and copies the default rubric.
"""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.exceptions import InputError
from core.services.specfile import load_spec
from ratings.services.campaigns import create_rating_campaign

FIELDS = {"name": "text", "description": "text", "cohorts": "names", "model_versions": "names",
          "expert_sources": "names", "sample_size": "whole?", "seed": "whole", "overlap": "whole", "raters": "names",
          "reservation_timeout_s": "whole", "fast_floor_s": "number", "key_dwell_ms": "whole", "signal_view": "text",
          "signal_view_switchable": "flag", "show_evidence": "flag", "item_list": "text", "rubric": "text|dimensions"}


def _read_beside(spec: Path, name: str, what: str) -> str:
    try:
        path = (spec.parent / name).resolve()
        found = path.is_file()
    except (OSError, ValueError):  # a name the file system cannot hold (NUL, too long)
        found = False
    if not found:
        raise InputError(f"{spec.name}: {what} file {name[:80]!r} not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name}: {what} is not UTF-8 text (byte {exc.start})") from None


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
            campaign = create_rating_campaign(data.pop("name", None), cohorts=data.pop("cohorts", []),
                                              raters=data.pop("raters", []), **data)
        except InputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"rating campaign {campaign.pk} {campaign.name!r}: {campaign.items.count()} items, "
                          f"{campaign.raters.count()} raters, overlap {campaign.overlap}")
