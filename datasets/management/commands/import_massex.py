"""python manage.py import_massex FOLDER --cohort NAME"""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from datasets.exceptions import InputError
from datasets.services.massex_folder import import_folder


class Command(BaseCommand):
    help = ("Load a MASS-EX folder (annotations/fine and annotations/coarse CSVs) onto the cohort's imported "
            "recordings as reference rule ids and rationales; all or nothing.")

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path, help="MASS-EX release folder, holding annotations/")
        parser.add_argument("--cohort", required=True, help="cohort whose recordings the subjects are matched to")

    def handle(self, *args, **opts):
        def track(items, what):
            return tqdm(items, desc=what, disable=opts["verbosity"] == 0)

        try:
            summary = import_folder(opts["folder"], opts["cohort"], track)
        except InputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"{summary.subjects} subject(s) loaded onto cohort {opts['cohort']}: {summary.epochs_with_rules} epochs "
            f"with rules, {summary.epochs_with_rationale} with rationale; {summary.epochs_changed} epochs changed"))
