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
from inference.services.evidence import check_stored, is_contradicted
from inference.services.jobs import start_job
from inference.services.versions import save_version

DEMO_ACCOUNTS = {  # username: (role, password); demo only, printed at start
    "rater": (RATER, "rater-demo-pass"),
    "rater2": (RATER, "rater2-demo-pass"),
    "rater3": (RATER, "rater3-demo-pass"),
    "reviewer": (RATER, "reviewer-demo-pass"),
    "curator": (CURATOR, "curator-demo-pass"),
    "researcher": (RESEARCHER, "researcher-demo-pass"),
    "admin": (ADMIN, "admin-demo-pass"),
}
DEMO_COHORT = "Synthetic demo"
BASELINE_VERSION = "baseline-yasa"
SCORING_CAMPAIGN = "Demo scoring"
SCORING_RATERS = ("rater", "rater2", "rater3")
RATIONALE_CAMPAIGN = "Demo rationales"
RATIONALE_RATERS = ("rater2", "rater3")  # simulated experts writing rule ids and rationales
RATING_CAMPAIGN = "Demo rating"
REVIEW_CAMPAIGN = "Demo review"
# The review campaign has a rater of its own: it shows the model's stages and hides the reference, so its raters'
# rating items would wait until they had reviewed the whole night. The first epochs are reviewed by simulation.
REVIEWER = "reviewer"
REVIEWED_BY_SIMULATION = 80
RATING_RATERS = ("rater", "rater2", "rater3")
RELEASE_NAME = "demo-release"
# A clinical export names the file and header after the patient: imported under a pseudonymous subject id,
# the name and dates stay in the curator's restricted fields, out of raters' pages and the release.
IDENTIFIED_FILE = "Doe_Jane_1962-03-14.edf"
IDENTIFIED_PATIENT = "MCH-0234567 F 14-MAR-1962 Doe_Jane"
IDENTIFIED_RECORDING = "Startdate 01-JAN-2024 EMR-88123 X synthetic_psg"
# Simulated raters (rater2, rater3) agree with the reference about as often as human scorers agree
# with the majority per stage (spec/agreement.md); otherwise they pick a neighbouring stage.
SIMULATED_AGREEMENT = {"W": 0.85, "N1": 0.6, "N2": 0.85, "N3": 0.7, "R": 0.9}
NEIGHBOURS = {"W": ("N1",), "N1": ("W", "N2"), "N2": ("N1", "N3"), "N3": ("N2",), "R": ("N1", "N2")}
# What the simulated experts write for the stage they give: rule ids and a rationale in the MASS-EX style
# (waveform, derivation, time in the epoch, frequency, amplitude; then the rule), times drawn per epoch.
SIMULATED_RATIONALES = {
    "W": (["W.1", "W.2"], "Alpha rhythm of about 10 Hz over O2-M1 for most of the epoch; eye blinks on LOC/ROC at "
                          "{t:.1f} s; chin EMG at a high level. Alpha over more than half the epoch scores W."),
    "N1": (["N1.1"], "Alpha attenuated from {t:.1f} s and replaced by low-amplitude 4–7 Hz activity over C4-M1 for "
                     "more than half the epoch; slow eye movements on LOC/ROC; no spindles or K-complexes."),
    "N2": (["N2.1"], "Sleep spindle on C4-M1 at {t:.1f} s (about 13 Hz, 0.8 s) in the first half of the epoch over a "
                     "low-amplitude mixed-frequency background; slow waves well below 20% of the epoch."),
    "N3": (["N3.1"], "Slow waves of 0.5–2 Hz over F4-M1, up to {a:.0f} µV peak-to-peak, fill about {p:.0f}% of the "
                     "epoch, above the 20% that N3 needs."),
    "R": (["R.1"], "Rapid eye movements on LOC/ROC from {t:.1f} s with chin EMG at its lowest level and "
                   "low-amplitude mixed-frequency EEG without spindles or K-complexes."),
}


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
        self._identified_night(opts["seed"])
        self._baseline(recording)
        self._scoring(recording, opts["seed"])
        self._rationales(recording, opts["seed"])
        self._review(recording, opts["seed"])
        self._rating(opts["seed"])
        self._release()
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

    def _identified_night(self, seed: int):
        """Half a night whose file name and header carry a patient's name and birth date, and a technician's
        note naming her: the import gives it a subject id and reports the note."""
        path = settings.VAR_DIR / "demo" / IDENTIFIED_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_synthetic_edf(path, hours=0.5, seed=seed + 1, patient=IDENTIFIED_PATIENT,
                                recording=IDENTIFIED_RECORDING, notes=((120.0, "lights off, Mrs Doe asleep"),))
        recording = find_existing(path)
        if recording is None:
            job = imports.run_job(imports.create_job(source_path=str(path), source_name=path.name,
                                                     cohort=DEMO_COHORT).pk)
            if job.state != ImportJob.SUCCEEDED:
                raise CommandError(job.error)
            recording = job.recording
        self.stdout.write(f"{IDENTIFIED_FILE} imported as subject {recording.name}: its name, header and dates only "
                          f"on the curator's recording page (/recordings/{recording.pk}/)")

    def _baseline(self, recording):
        """The CPU baseline over the night, so the epoch pages show predictions with rationales."""
        version = ModelVersion.objects.filter(name=BASELINE_VERSION).first() or save_version(
            ModelVersion(name=BASELINE_VERSION, backend=ModelVersion.BASELINE,
                         description="YASA's pretrained classifier with a measured, rule-grounded rationale"))
        self.stdout.write(f"Running model version '{version.name}' over the night (in this process)...")
        job = start_job(version, recording=recording, inline=True)
        if job.state != InferenceJob.SUCCEEDED:
            raise CommandError(f"baseline run failed: {job.error}")
        check_stored(Prediction.objects.filter(model_version=version, evidence={}))  # made before the evidence check
        total = Prediction.objects.filter(model_version=version, epoch__recording=recording).count()
        self.stdout.write(f"Baseline predictions: {total} of {recording.epoch_count} epochs (first and last skipped)")

    def _scoring(self, recording, seed: int):
        """A scoring campaign over the night for the three rater accounts; two simulated raters have scored some."""
        import uuid

        import numpy as np

        from annotation.models import ScoringCampaign
        from annotation.services import queue
        from annotation.services.campaigns import create_campaign

        if ScoringCampaign.objects.filter(name=SCORING_CAMPAIGN).exists():
            self.stdout.write(f"Scoring campaign '{SCORING_CAMPAIGN}' already set up")
            return
        campaign = create_campaign(
            SCORING_CAMPAIGN, recordings=[recording], sample="stratified", sample_size=150, seed=seed, overlap=3,
            raters=SCORING_RATERS, adjudicators=("curator",), unit="epoch", rescore_share=0.1,
            description="Stratified sample of the synthetic night; rater2 and rater3 are simulated.",
        )
        rng = np.random.default_rng(seed)
        users = get_user_model().objects.in_bulk(SCORING_RATERS[1:], field_name="username")
        for username in SCORING_RATERS[1:]:
            for _ in range(60):
                served = queue.next_item(campaign, users[username])
                if served is None:
                    break
                truth = served[0].epoch.stage
                stage = truth if rng.random() < SIMULATED_AGREEMENT[truth] else str(rng.choice(NEIGHBOURS[truth]))
                spent = float(rng.uniform(4, 20))
                queue.submit_label(campaign, users[username], served[0], stage=stage, client_id=uuid.uuid4(),
                                   seconds_spent=spent, now=after(spent))
        self.stdout.write(f"Scoring campaign '{SCORING_CAMPAIGN}': {campaign.items.count()} epochs, overlap 3, "
                          f"raters {', '.join(SCORING_RATERS)} ({', '.join(SCORING_RATERS[1:])} simulated, 60 epochs each)")

    def _rationales(self, recording, seed: int):
        """A rationale-mode scoring campaign in which the simulated experts (rater2, rater3) give each epoch of a
        sample its stage, rule ids and rationale: the expert rationales the rating campaign mixes in."""
        import uuid

        import numpy as np

        from annotation.models import ScoringCampaign
        from annotation.services import queue
        from annotation.services.campaigns import create_campaign

        if ScoringCampaign.objects.filter(name=RATIONALE_CAMPAIGN).exists():
            self.stdout.write(f"Scoring campaign '{RATIONALE_CAMPAIGN}' already set up")
            return
        campaign = create_campaign(
            RATIONALE_CAMPAIGN, recordings=[recording], sample="stratified", sample_size=30, seed=seed + 1, overlap=1,
            raters=RATIONALE_RATERS, unit="epoch", rationale_mode=True,
            description="Simulated experts write rule ids and a rationale for each epoch (rated in the rating "
                        "campaign).",
        )
        rng = np.random.default_rng([seed, 2])
        users = get_user_model().objects.in_bulk(RATIONALE_RATERS, field_name="username")
        labelled = 0
        while (served := queue.next_item(campaign, users[RATIONALE_RATERS[labelled % 2]])) is not None:
            truth = served[0].epoch.stage
            stage = truth if rng.random() < SIMULATED_AGREEMENT[truth] else str(rng.choice(NEIGHBOURS[truth]))
            rule_ids, text = SIMULATED_RATIONALES[stage]
            rationale = text.format(t=rng.uniform(1, 14), a=rng.uniform(90, 180), p=rng.uniform(25, 60))
            spent = float(rng.uniform(30, 90))
            queue.submit_label(campaign, users[RATIONALE_RATERS[labelled % 2]], served[0], stage=stage,
                               rule_ids=rule_ids, rationale=rationale, client_id=uuid.uuid4(),
                               seconds_spent=spent, now=after(spent))
            labelled += 1
        self.stdout.write(f"Scoring campaign '{RATIONALE_CAMPAIGN}' (rationale mode): {labelled} epochs with rule ids "
                          f"and rationales by {', '.join(RATIONALE_RATERS)} (simulated)")

    def _review(self, recording, seed: int):
        """A review campaign over the baseline's predictions of the night, least confident epochs first: a simulated
        expert accepts or corrects the first epochs as `reviewer`, who goes on in the browser; the review curve is
        simulated in full."""
        import uuid

        import numpy as np

        from annotation.models import ScoringCampaign
        from annotation.services import queue
        from annotation.services.campaigns import create_campaign
        from annotation.services.review import review_curve

        if ScoringCampaign.objects.filter(name=REVIEW_CAMPAIGN).exists():
            self.stdout.write(f"Scoring campaign '{REVIEW_CAMPAIGN}' already set up")
            return
        campaign = create_campaign(
            REVIEW_CAMPAIGN, recordings=[recording], overlap=1, raters=[REVIEWER], unit="epoch",
            review_model=BASELINE_VERSION, seed=seed,
            description="Review of the baseline's stages, least confident first: Enter accepts the proposal, a stage "
                        "key corrects it. The first epochs were reviewed by a simulated expert.",
        )
        rng = np.random.default_rng([seed, 3])
        expert = get_user_model().objects.get(username=REVIEWER)
        for _ in range(REVIEWED_BY_SIMULATION):
            served = queue.next_item(campaign, expert)
            if served is None:
                break
            truth = served[0].epoch.stage
            stage = truth if rng.random() < SIMULATED_AGREEMENT[truth] else str(rng.choice(NEIGHBOURS[truth]))
            spent = float(rng.uniform(3, 15))
            queue.submit_label(campaign, expert, served[0], stage=stage, client_id=uuid.uuid4(),
                               seconds_spent=spent, now=after(spent))
        curve = review_curve(campaign)["simulated"]

        def share(value):
            return f"{value:.1%}" if value is not None else "not reached"

        self.stdout.write(f"Scoring campaign '{REVIEW_CAMPAIGN}' (review of {BASELINE_VERSION}): {curve['epochs']} epochs, "
                          f"{REVIEWER} reviewed {REVIEWED_BY_SIMULATION} (simulated); simulated review curve: "
                          + "; ".join(f"κ ≥ {level} after {share(curve['confidence']['share_for_kappa'][level])} of the "
                                      f"epochs least confident first, {share(curve['random']['share_for_kappa'][level])} "
                                      "in random order" for level in curve["confidence"]["share_for_kappa"]))

    def _rating(self, seed: int):
        """A rating campaign mixing the baseline's rationales with the simulated experts' (rationale-mode scoring),
        origins hidden; two simulated rater accounts (rater2, rater3) have rated some, so the dashboard has
        agreement to show, and `rater` can rate in the browser. Items on epochs a rater still scores blind in
        the demo's scoring campaign wait until they have scored them."""
        import uuid

        import numpy as np

        from collections import Counter

        from core.services.blinding import SCORING, blinding_overlaps
        from datasets.models import Recording
        from ratings.models import RatingCampaign
        from ratings.services.campaigns import create_rating_campaign
        from ratings.services.queue import RATING

        if RatingCampaign.objects.filter(name=RATING_CAMPAIGN).exists():
            self.stdout.write(f"Rating campaign '{RATING_CAMPAIGN}' already set up")
            return
        campaign = create_rating_campaign(
            RATING_CAMPAIGN, cohorts=[DEMO_COHORT], model_versions=[BASELINE_VERSION], expert_sources=["scoring"],
            raters=RATING_RATERS, sample_size=40, seed=seed, overlap=2, show_evidence=True,
            description="Baseline and expert rationales (origin hidden), stratified by stage and by correct versus "
                        "incorrect stage, each with the evidence check of its cited rules; rater2 and rater3 are "
                        "simulated.",
        )
        rng = np.random.default_rng(seed)
        keys = campaign.rubric.keys
        quality = {}  # per item: what the simulated raters perceive, plus their own noise
        for username in RATING_RATERS[1:]:
            rater = get_user_model().objects.get(username=username)
            for _ in range(20):
                served = RATING.next_item(campaign, rater)
                if served is None:
                    break
                item = served[0]
                contradicted = 0.8 * is_contradicted(item.evidence)  # simulated raters notice contradicted rules
                centre = quality.setdefault(item.pk, rng.normal((4.0 if item.correct else 2.6) - contradicted, 0.6))
                scores = {key: int(np.clip(np.rint(centre + rng.normal(0, 0.6)), 1, 5)) for key in keys}
                spent = float(rng.uniform(3, 40))
                RATING.submit(campaign, rater, item, scores=scores, client_id=uuid.uuid4(),
                              seconds_spent=spent, now=after(spent))
        origins = Counter(campaign.items.values_list("origin", flat=True))
        self.stdout.write(f"Rating campaign '{RATING_CAMPAIGN}': {origins['model']} model and {origins['expert']} expert "
                          f"rationales, overlap 2, raters {', '.join(RATING_RATERS)} ({', '.join(RATING_RATERS[1:])} "
                          "simulated, up to 20 rated each)")
        recordings = Recording.objects.filter(cohort__name=DEMO_COHORT)
        for overlap in blinding_overlaps(campaign.raters.all(), recordings, kind=SCORING):
            self.stdout.write(f"  {overlap}")

    def _release(self):
        """A release built from the demo's campaigns and the baseline, downloadable from its page."""
        from releases.models import Release
        from releases.services.build import build_release, create_release

        if Release.objects.filter(name=RELEASE_NAME).exists():
            self.stdout.write(f"Release '{RELEASE_NAME}' already built")
            return
        release = create_release(
            RELEASE_NAME, "1.0.0", cohorts=[DEMO_COHORT], stage_source=Release.ADJUDICATED,
            scoring_campaigns=[SCORING_CAMPAIGN], rating_campaigns=[RATING_CAMPAIGN], model_versions=[BASELINE_VERSION],
            include_images=True, description="The synthetic demo night: reference stages with the scoring campaign's "
                                             "adjudications, every rater's labels, the baseline's outputs and the ratings.",
            queue=False)
        release = build_release(release.pk)
        if release.state != Release.SUCCEEDED:
            raise CommandError(f"release build failed: {release.error}")
        self.stdout.write(f"Release '{release}': {release.epochs} epochs, {release.files.count()} files "
                          f"(page /releases/{release.pk}/, provenance /releases/{release.pk}/files/provenance.json)")

    def _serve(self, addr: str):
        """runserver with a Celery worker beside it; Ctrl-C or SIGTERM stops both."""
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-l", "warning", "-Q", "io,cpu",
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


def after(seconds: float):
    """The moment a simulated rater saves an item they were served just now and took `seconds` over: the server
    measures the time from serving to save, so the simulation saves in the future rather than sleep."""
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() + timedelta(seconds=seconds)
