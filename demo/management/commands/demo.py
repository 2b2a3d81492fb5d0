"""python manage.py demo [--no-serve]: accounts, a synthetic night imported and rendered, then serve."""
import os
import signal
import subprocess
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from config.celery import ensure_broker_folders
from core.roles import ADMIN, CURATOR, RATER, RESEARCHER
from datasets.models import ImportJob
from datasets.services import imports
from datasets.services.ingest import find_existing
from datasets.services.synthetic import write_synthetic_edf
from inference.models import InferenceJob, ModelVersion, Prediction
from inference.services.jobs import start_job

DEMO_ACCOUNTS = {  # username: (role, password); demo only, printed at start
    "rater": (RATER, "rater-demo-pass"),
    "curator": (CURATOR, "curator-demo-pass"),
    "researcher": (RESEARCHER, "researcher-demo-pass"),
    "admin": (ADMIN, "admin-demo-pass"),
}
DEMO_COHORT = "Synthetic demo"
BASELINE_VERSION = "baseline-yasa"


class Command(BaseCommand):
    help = "Set up the demo: migrate, one account per role, a synthetic night imported and rendered; then serve."

    def add_arguments(self, parser):
        parser.add_argument("--no-serve", action="store_true", help="do everything but serving, then exit")
        parser.add_argument("--hours", type=float, default=8.0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, **opts):
        if settings.PRODUCTION:
            raise CommandError("the demo creates accounts with published passwords: it refuses to run under "
                               "production settings (use DJANGO_SETTINGS_MODULE=config.settings)")
        call_command("migrate", interactive=False, verbosity=0)
        ensure_broker_folders()
        self._accounts()
        recording = self._night(opts["hours"], opts["seed"])
        self._baseline(recording)
        if opts["no_serve"]:
            self.stdout.write(self.style.SUCCESS("Demo ready."))
            return
        self._serve(opts["addr"])

    def _accounts(self):
        users = get_user_model()
        self.stdout.write("Demo accounts (username / password):")
        for username, (role, password) in DEMO_ACCOUNTS.items():
            user, _ = users.objects.get_or_create(username=username)
            user.set_password(password)
            user.is_staff = role in (CURATOR, ADMIN)
            user.is_superuser = role == ADMIN
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            self.stdout.write(f"  {role:<11} {username} / {password}")

    def _night(self, hours: float, seed: int):
        path = settings.VAR_DIR / "demo" / f"synthetic-night-{hours:g}h-seed{seed}.edf"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            self.stdout.write(f"Generating a synthetic {hours:g}-hour night: {path}")
            write_synthetic_edf(path, hours=hours, seed=seed)
        existing = find_existing(path)
        if existing is not None:
            self.stdout.write(f"Synthetic night already imported: recording #{existing.pk}, {existing.epoch_count} epochs")
            return existing
        job = imports.create_job(source_path=str(path), source_name=path.name, cohort=DEMO_COHORT)
        with tqdm(total=100, unit="%", desc="import") as bar:
            job = imports.run_job(job.pk, echo=lambda f, done, total, msg: bar.update(int(f * 100) - bar.n))
        if job.state != ImportJob.SUCCEEDED:
            raise CommandError(job.error)
        self.stdout.write(f"Imported recording #{job.recording_id}: {job.recording.epoch_count} epochs rendered")
        return job.recording

    def _baseline(self, recording):
        """The CPU baseline over the night, so the epoch pages show predictions with rationales."""
        version, _ = ModelVersion.objects.get_or_create(
            name=BASELINE_VERSION, defaults={"backend": ModelVersion.BASELINE,
                                             "description": "YASA's pretrained classifier with a measured, rule-grounded rationale"},
        )
        self.stdout.write(f"Running model version '{version.name}' over the night (in this process)...")
        job = start_job(version, recording=recording, inline=True)
        if job.state != InferenceJob.SUCCEEDED:
            raise CommandError(f"baseline run failed: {job.error}")
        total = Prediction.objects.filter(model_version=version, epoch__recording=recording).count()
        self.stdout.write(f"Baseline predictions: {total} of {recording.epoch_count} epochs (first and last skipped)")

    def _serve(self, addr: str):
        """runserver with a Celery worker beside it; Ctrl-C or SIGTERM stops both."""
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-l", "warning", "-Q", "default,cpu",
             "--concurrency", "1", "-n", "demo@%h"],
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
            start_new_session=True,  # its own process group: stopped below, pool process included
        )
        try:
            self.stdout.write(self.style.SUCCESS(f"Serving on http://{addr}/ with a Celery worker (pid {worker.pid}); Ctrl-C stops both."))
            call_command("runserver", addr, use_reloader=False)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
