"""python manage.py export_release NAME VERSION --cohort C [...]: create a release and build it here, with a
progress bar (a thin wrapper of releases.services.build); --output copies the built folder out of storage."""
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.exceptions import InputError
from releases.models import Release
from releases.services.build import build_release, create_release


class Command(BaseCommand):
    help = "Build a MASS-EX-compatible release of cohorts (stage labels, predictions, ratings, agreement)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("version", help="semantic version, e.g. 1.0.0")
        parser.add_argument("--cohort", action="append", required=True, dest="cohorts")
        parser.add_argument("--stage-source", choices=[s for s, _ in Release.STAGE_SOURCES], default=Release.REFERENCE)
        parser.add_argument("--scoring-campaign", action="append", default=[], dest="scoring_campaigns")
        parser.add_argument("--rating-campaign", action="append", default=[], dest="rating_campaigns")
        parser.add_argument("--model-version", action="append", default=[], dest="model_versions")
        parser.add_argument("--description", default="")
        parser.add_argument("--license-id", default="cc-by-nc-4.0")
        parser.add_argument("--license-text", default="")
        parser.add_argument("--images", action="store_true", help="include the model images")
        parser.add_argument("--output", type=Path, help="also write the built folder here")

    def handle(self, *args, name, version, output=None, images=False, **opts):
        fields = {k: opts[k] for k in ("cohorts", "stage_source", "scoring_campaigns", "rating_campaigns",
                                       "model_versions", "description", "license_id", "license_text")}
        try:
            release = create_release(name, version, include_images=images, queue=False, **fields)
        except InputError as exc:
            raise CommandError(str(exc)) from None
        with tqdm(total=1, unit="part", disable=opts["verbosity"] == 0, desc=f"{name} {version}") as bar:
            def echo(done, total):
                bar.total = total
                bar.n = done
                bar.refresh()
            release = build_release(release.pk, echo=echo)
        if release.state != Release.SUCCEEDED:
            raise CommandError(f"release {release} {release.state}: {release.error}")
        if output:
            for row in release.files.filter(archive=False):
                target = output / release.folder / row.path
                target.parent.mkdir(parents=True, exist_ok=True)
                with default_storage.open(row.storage_name, "rb") as source:
                    target.write_bytes(source.read())
        self.stdout.write(f"release {release.pk} {release}: {release.epochs} epochs, {release.files.count()} files"
                          + (f", written to {output / release.folder}" if output else ""))
