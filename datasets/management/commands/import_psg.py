"""python manage.py import_psg PATH [--hypnogram FILE] [--massex CSV] [--cohort NAME] [--subject-id ID] [--channel-map JSON]"""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from datasets.exceptions import InputError
from datasets.models import ImportJob
from datasets.services import imports
from datasets.services.channels import parse_channel_map
from datasets.services.ingest import find_existing


class Command(BaseCommand):
    help = "Import a PSG night (EDF, EDF+ or BDF) with its hypnogram, cut 30-s epochs and render them."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--hypnogram", type=Path, help="separate hypnogram file (EDF+, NSRR XML, CSV, MASS-EX CSV)")
        parser.add_argument("--hypnogram-format", default="", help="force a hypnogram format instead of detecting it")
        parser.add_argument("--cohort", default="default")
        parser.add_argument("--subject-id", default="", help="pseudonymous subject id (default: the file name's MASS id, "
                                                             "else the cohort's next <prefix>-<NNNN>)")
        parser.add_argument("--channel-map", help="JSON object or file: derivation -> channel or [positive, negative]")
        parser.add_argument("--mains-hz", type=float, default=settings.DEFAULT_MAINS_HZ, help="notch frequency")
        parser.add_argument("--trim-to-hypnogram", action="store_true", help="drop signal after the hypnogram's end")
        parser.add_argument("--massex", type=Path, help="MASS-EX CSV: its rules and rationale go onto the scored epochs "
                                                        "of the recording's hypnogram (row N on the scored epoch of rank N)")
        parser.add_argument("--massex-contiguous", action="store_true",
                            help="state that the MASS-EX CSV's epochs are contiguous from the first epoch: read it as "
                                 "the hypnogram (N × 30 s) when the recording has no scored hypnogram (recorded)")

    def handle(self, *args, **opts):
        path: Path = opts["path"]
        for file in filter(None, (path, opts["hypnogram"], opts["massex"])):
            if not file.is_file():
                raise CommandError(f"{file}: no such file")
        try:
            channel_map = parse_channel_map(opts["channel_map"]) if opts["channel_map"] else None
        except InputError as exc:
            raise CommandError(str(exc)) from None
        existing = find_existing(path)
        if existing is not None:
            self.stdout.write(f"{path.name}: already imported as recording #{existing.pk} ({existing}); nothing new created")
            return
        hypnogram, massex = opts["hypnogram"], opts["massex"]
        try:
            job = imports.create_job(
                source_path=str(path.resolve()), source_name=path.name, cohort=opts["cohort"],
                hypnogram_path=str(hypnogram.resolve()) if hypnogram else "",
                hypnogram_name=hypnogram.name if hypnogram else "",
                hypnogram_format=opts["hypnogram_format"], channel_map=channel_map, mains_hz=opts["mains_hz"],
                trim_to_hypnogram=opts["trim_to_hypnogram"], massex_path=str(massex.resolve()) if massex else "",
                massex_name=massex.name if massex else "", massex_contiguous=opts["massex_contiguous"],
                subject_id=opts["subject_id"],
            )
        except InputError as exc:
            raise CommandError(str(exc)) from None
        with tqdm(total=100, unit="%", desc=path.name, disable=opts["verbosity"] == 0) as bar:
            def echo(fraction, done, total, message):
                bar.set_postfix_str(f"{message} {done}/{total} epochs" if total else message)
                bar.update(int(fraction * 100) - bar.n)

            job = imports.run_job(job.pk, echo=echo)
        if job.state != ImportJob.SUCCEEDED:
            raise CommandError(job.error)
        recording = job.recording
        self.stdout.write(self.style.SUCCESS(
            f"imported {recording} as recording #{recording.pk}: {recording.epoch_count} epochs, "
            f"derivations {', '.join(recording.derivations)}"
        ))
        for note in recording.substitutions:
            self.stdout.write(f"  substitution: {note}")
