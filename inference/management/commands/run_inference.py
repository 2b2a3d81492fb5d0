"""python manage.py run_inference --model NAME (--cohort NAME | --recording ID) [--wait]"""
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from datasets.models import Cohort, Recording
from inference.models import InferenceJob, ModelVersion
from inference.services import jobs


class Command(BaseCommand):
    help = "Start an inference job on the gpu/cpu queue and follow its progress until it ends."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="model version name")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--cohort")
        target.add_argument("--recording", type=int)
        parser.add_argument("--chunk-size", type=int)
        parser.add_argument("--no-wait", action="store_true", help="queue the job and return")
        parser.add_argument("--inline", action="store_true", help="run the chunks in this process, without a worker")

    def handle(self, *args, **opts):
        version = ModelVersion.objects.filter(name=opts["model"]).first()
        if version is None:
            raise CommandError(f"no model version named {opts['model']!r}")
        cohort = recording = None
        if opts["cohort"]:
            cohort = Cohort.objects.filter(name=opts["cohort"]).first()
            if cohort is None:
                raise CommandError(f"no cohort named {opts['cohort']!r}")
        else:
            recording = Recording.objects.filter(pk=opts["recording"]).first()
            if recording is None:
                raise CommandError(f"no recording #{opts['recording']}")
        job = jobs.start_job(version, cohort=cohort, recording=recording, chunk_size=opts["chunk_size"],
                             inline=opts["inline"])
        self.stdout.write(f"job #{job.pk}: {job.total} epochs in {job.chunks_total} chunks on queue '{version.queue}'")
        if opts["no_wait"]:
            return
        with tqdm(total=job.total, unit="epoch", disable=opts["verbosity"] == 0) as bar:
            while True:
                job.refresh_from_db()
                state = jobs.progress(job)
                bar.update(state["done"] - bar.n)
                bar.set_postfix_str(f"{job.state}, {state['parse_failures']} parse failures")
                if job.is_finished:
                    break
                time.sleep(1)
        if job.state != InferenceJob.SUCCEEDED:
            raise CommandError(f"job #{job.pk} {job.state}: {job.error}")
        self.stdout.write(self.style.SUCCESS(f"job #{job.pk} succeeded: {state['done']} epochs"))
