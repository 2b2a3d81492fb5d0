"""python manage.py reprepare RECORDING_ID PSG_FILE [--profile NAME]"""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from datasets.exceptions import InputError
from datasets.models import Recording
from datasets.services.reprepare import reprepare
from datasets.services.signals import CURRENT_PROFILE, PROFILES


class Command(BaseCommand):
    help = "Prepare and render an imported recording again under a preparation profile (default: the current one)."

    def add_arguments(self, parser):
        parser.add_argument("recording", type=int, help="recording id")
        parser.add_argument("path", type=Path, help="the PSG file the recording was imported from")
        parser.add_argument("--profile", default=CURRENT_PROFILE, choices=sorted(PROFILES))

    def handle(self, *args, **opts):
        recording = Recording.objects.filter(pk=opts["recording"]).first()
        if recording is None:
            raise CommandError(f"no recording #{opts['recording']}")
        if not opts["path"].is_file():
            raise CommandError(f"{opts['path']}: no such file")
        with tqdm(total=100, unit="%", desc=recording.name, disable=opts["verbosity"] == 0) as bar:
            def echo(fraction, done, total, message):
                bar.set_postfix_str(message)
                bar.update(int(fraction * 100) - bar.n)

            try:
                changed = reprepare(recording, opts["path"], profile=opts["profile"], progress=echo)
            except InputError as exc:
                raise CommandError(str(exc)) from None
        if changed:
            self.stdout.write(self.style.SUCCESS(f"recording #{recording.pk} prepared under {opts['profile']}: "
                                                 f"{recording.epoch_count} model images rendered"))
        else:
            self.stdout.write(f"recording #{recording.pk} is already prepared under {opts['profile']}: nothing to do")
