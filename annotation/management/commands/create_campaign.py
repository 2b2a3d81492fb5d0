"""python manage.py create_campaign FILE.json|FILE.yaml — a thin wrapper of annotation.services.campaigns."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.services.campaigns import create_campaign
from core.exceptions import InputError
from core.services.specfile import load_spec

FIELDS = {"name": "text", "description": "text", "recordings": "ids", "cohort": "text?", "sample": "text",
          "sample_size": "whole?", "seed": "whole", "disagreement_model": "text?", "overlap": "whole", "raters": "names",
          "adjudicators": "names", "unit": "text", "reservation_timeout_s": "whole", "show_reference": "flag",
          "show_model_outputs": "flag", "show_other_labels": "flag", "rescore_share": "number", "rationale_mode": "flag",
          "key_dwell_ms": "whole", "signal_view": "text", "signal_view_switchable": "flag", "review_model": "text?"}


class Command(BaseCommand):
    help = "Create a scoring campaign from a JSON or YAML file (recordings by id or a cohort by name, raters by username)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        if not file.is_file():
            raise CommandError(f"no such file: {file}")
        try:
            data = load_spec(file, FIELDS)
            campaign = create_campaign(data.pop("name", None), **data)
        except InputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"campaign {campaign.pk} {campaign.name!r}: {campaign.items.count()} items, "
                          f"{campaign.raters.count()} raters, overlap {campaign.overlap}")
