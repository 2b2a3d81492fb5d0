"""Release build at MASS-EX scale: time and peak memory of build_release over 100,000 epochs.

Generates, in bulk (no signals or images), one cohort of --recordings × --epochs epochs (100 × 1,000 by
default) with hypnogram-like stage bouts (W, N1, N2, N3, R in a realistic mix, ~1% unscored), reference
rule ids on every scored epoch and a reference rationale on 5% of the recordings; a scoring campaign
over every scored epoch with overlap 3 (three raters' labels, ~80% agreeing with the reference); one
model version's prediction (stage, rule ids, a rationale) for every epoch; and a rating campaign over
that version (create_rating_campaign, sample_size 10% of the epochs) with two raters' 1-5 scores on
every rubric dimension. The release uses the reference as stage source and takes both campaigns and
the model version, so every table (stage labels, consensus, predictions, ratings) is full.

The database is a throw-away one: PostgreSQL when DATABASE_URL points at a server (a database named
--db on it, dropped at the end unless --keep), else SQLite in a temporary SLEEPREVIEW_VAR (media too).
The build runs in a child process (`bench/export.py --build-only RELEASE_ID`): peak_rss_mb is the build's
own peak, the child's VmHWM (/proc/self/status), not the data generation's. (RUSAGE_CHILDREN's ru_maxrss
would not do: Linux keeps the high-water mark of the image forked from this big parent across exec.)
With --s3 the files go to moto's S3 server started on loopback (tests/s3.py) through STORAGE_URL, as a
multi-site deployment stores them. --save DIR writes the built release's files (from storage) under DIR;
--check-against DIR compares them byte for byte (SHA-256) with such a saved build and lists the files that
differ. --over-previous measures the build of a second version (1.1.0) instead, over a first one built before it
with 1% of the labels and ratings then changed: its changelog compares every table with the first version's
(the JSON adds the changelog's counts). Last line: one JSON object (with the load average at the end of the build).

    .venv/bin/python bench/export.py [--recordings 100] [--epochs 1000] [--profile FILE] [--keep] [--s3]
                                     [--save DIR] [--check-against DIR] [--over-previous]
"""
import argparse
import contextlib
import cProfile
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIX = {"W": 0.15, "N1": 0.07, "N2": 0.45, "N3": 0.15, "R": 0.18}  # share of epochs, roughly
RULES = {"W": [["W.1"], ["W.1", "W.2"], ["W.3"]], "N1": [["N1.1"], ["N1.2"]],
         "N2": [["N2.1"], ["N2.2"], ["N2.2", "N2.4"]], "N3": [["N3.1"]], "R": [["R.1"], ["R.2"]]}
PHRASES = {"W": "alpha rhythm over the occipital leads for most of the epoch with blinks on the EOG",
           "N1": "alpha replaced by low-amplitude mixed-frequency activity with slow eye movements",
           "N2": "a K-complex in the first half and spindles on C4-M1, no slow waves above 20%",
           "N3": "high-amplitude slow waves over 75 uV on F4-M1 for more than 20% of the epoch",
           "R": "rapid conjugate eye movements with low chin EMG and sawtooth waves"}


def hypnogram(rng, n: int) -> list[str]:
    """Stage bouts of random length with the MIX shares; a few unscored epochs at the start and in between."""
    import numpy as np

    stages, p = list(MIX), np.array(list(MIX.values()))
    out = ["W"] * int(rng.integers(10, 30))
    while len(out) < n:
        stage = stages[rng.choice(len(stages), p=p)]
        out += [stage] * int(rng.geometric(1 / (12 if stage != "N1" else 4)))
    out = out[:n]
    for i in rng.choice(n, max(1, n // 100), replace=False):
        out[i] = "unscored"
    return out


def populate(recordings: int = 100, epochs: int = 1000, seed: int = 0, cohort: str = "Bench") -> dict:
    """The generated database (see the module docstring); returns the names a release takes."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotation.models import Label, Reservation
    from annotation.services.campaigns import create_campaign
    from datasets.models import Cohort, Epoch, Recording
    from inference.models import ModelVersion, Prediction
    from ratings.models import Rating, RatingReservation
    from ratings.services.campaigns import create_rating_campaign

    rng = np.random.default_rng(seed)
    stages = list(MIX)
    group = Cohort.objects.create(name=cohort)
    recs = Recording.objects.bulk_create([
        Recording(cohort=group, name=f"{cohort}-01-03-{i + 1:04d}",
                  sha256=hashlib.sha256(f"{cohort}-{i}".encode()).hexdigest(),
                  source_filename=f"{i}.edf", file_format="EDF+", duration_s=30.0 * epochs, mains_hz=50,
                  signal_file="none.npy", epoch_count=epochs, derivations=["C4-M1"]) for i in range(recordings)])
    rows = []
    for number, recording in enumerate(recs):
        fine = number % 20 == 0  # 5% of the subjects have expert rationales, as in MASS-EX
        for i, stage in enumerate(hypnogram(rng, epochs)):
            scored = stage != "unscored"
            rules = RULES[stage][i % len(RULES[stage])] if scored else []
            rows.append(Epoch(recording=recording, index=i, onset_s=30.0 * i, stage=stage, reference_rules=rules,
                              reference_rationale=f"Epoch {i}: {PHRASES[stage]}." if fine and scored else ""))
    Epoch.objects.bulk_create(rows, batch_size=5000)
    User = get_user_model()
    raters = User.objects.bulk_create([User(username=f"{cohort.lower()}-rater-{i}") for i in range(3)])
    now = timezone.now()

    def other(stage):  # a rater's stage: the reference 80% of the time
        return stage if rng.random() < 0.8 else stages[rng.integers(len(stages))]

    scoring = create_campaign(f"{cohort.lower()}-scoring", cohort=cohort, overlap=3, raters=raters)
    items = list(scoring.items.values_list("pk", "epoch__stage"))
    Reservation.objects.bulk_create([Reservation(item_id=pk, slot=s, rater=r, expires_at=now, labelled=True)
                                     for pk, _ in items for s, r in enumerate(raters)], batch_size=5000)
    Label.objects.bulk_create([Label(item_id=pk, rater=r, stage=other(stage), uncertain=rng.random() < 0.05,
                                     client_id=uuid.uuid4(), seconds_spent=4.0)
                               for pk, stage in items for r in raters], batch_size=5000)

    version = ModelVersion.objects.create(name=f"{cohort.lower()}-model", backend=ModelVersion.BASELINE)
    digest = version.settings_hash
    predictions = []
    for pk, stage in Epoch.objects.filter(recording__cohort=group).values_list("pk", "stage"):
        guess = other(stage) if stage != "unscored" else stages[rng.integers(len(stages))]
        rules = RULES[guess][pk % len(RULES[guess])]
        rationale = f"{PHRASES[guess].capitalize()}; {', '.join(rules)} applies, so {guess}."
        predictions.append(Prediction(epoch_id=pk, model_version=version, status=Prediction.OK, stage=guess,
                                      rule_ids=rules, version_hash=digest, raw_output="", rationale=rationale))
    Prediction.objects.bulk_create(predictions, batch_size=5000)

    rating = create_rating_campaign(f"{cohort.lower()}-rating", cohorts=[cohort], raters=raters[:2], overlap=2,
                                    model_versions=[version], sample_size=max(1, len(rows) // 10), seed=seed)
    rubric = rating.rubric
    rating_items = list(rating.items.values_list("pk", flat=True))
    RatingReservation.objects.bulk_create([RatingReservation(item_id=pk, slot=s, rater=r, expires_at=now, labelled=True)
                                           for pk in rating_items for s, r in enumerate(raters[:2])], batch_size=5000)
    Rating.objects.bulk_create([Rating(item_id=pk, rater=r, rubric=rubric, client_id=uuid.uuid4(), seconds_spent=12.0,
                                       scores={k: int(rng.integers(1, 6)) for k in rubric.keys})
                                for pk in rating_items for r in raters[:2]], batch_size=5000)
    return {"cohorts": [cohort], "scoring_campaigns": [scoring.name], "rating_campaigns": [rating.name],
            "model_versions": [version.name], "epochs": len(rows)}


def build_only(release_id: int, profile: str | None) -> None:
    import django

    django.setup()
    from releases.services.build import build_release

    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    release = build_release(release_id)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds = round(time.perf_counter() - started, 2)
    status = Path("/proc/self/status").read_text()
    peak_kb = int(status.split("VmHWM:")[1].split()[0])
    print(json.dumps({"seconds": seconds, "peak_rss_mb": round(peak_kb / 1024, 1), "state": release.state,
                      "error": release.error, "epochs": release.epochs,
                      "load_avg": [round(x, 2) for x in os.getloadavg()]}))


def admin_sql(server: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="sleepreview_export_bench", help="database name (PostgreSQL)")
    parser.add_argument("--keep", action="store_true", help="keep the database (SQLite: its temporary folder)")
    parser.add_argument("--profile", help="write the build's cProfile stats here")
    parser.add_argument("--s3", action="store_true", help="store on moto's S3 server on loopback (STORAGE_URL)")
    parser.add_argument("--save", metavar="DIR", help="write the built release's files under DIR")
    parser.add_argument("--check-against", metavar="DIR", help="compare the built files with those saved in DIR")
    parser.add_argument("--over-previous", action="store_true",
                        help="measure the build of a second version (1.1.0), its changelog against 1.0.0 included")
    parser.add_argument("--build-only", type=int, metavar="RELEASE_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        return build_only(args.build_only, args.profile)

    with contextlib.ExitStack() as stack:
        storage_url = ""
        if args.s3:
            from tests.s3 import s3_server_on_loopback

            endpoint = stack.enter_context(s3_server_on_loopback("sleepreview-bench"))
            storage_url = f"s3://sleepreview-bench/export?endpoint={endpoint}&region=us-east-1"
        run(args, storage_url)


def compare_files(release, folder: Path) -> list[str]:
    """The release's stored files whose bytes differ from (or are missing in) `folder`."""
    from releases.services.export import sha256_of

    return sorted(f.path for f in release.files.all()
                  if not (folder / f.path).is_file() or sha256_of(folder / f.path) != f.sha256)


def save_files(release, folder: Path) -> None:
    from django.core.files.storage import default_storage

    for row in release.files.all():
        target = folder / row.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with default_storage.open(row.storage_name, "rb") as source:
            target.write_bytes(source.read())


@contextlib.contextmanager
def bench_database(args, storage_url: str = ""):
    """A throw-away, migrated database and SLEEPREVIEW_VAR for one bench run, set up in this process;
    yields the environment a child measuring process needs, drops both afterwards unless --keep."""
    var = tempfile.mkdtemp(prefix=f"{Path(sys.argv[0]).stem}-bench-")
    url = os.environ.get("DATABASE_URL", "")
    server = url.rsplit("/", 1)[0] if url.startswith("postgres") else None
    env = {k: v for k, v in os.environ.items() if k not in ("MEDIA_ROOT", "DATABASE_URL", "STORAGE_URL")}
    if storage_url:
        env["STORAGE_URL"] = storage_url
    env.update(SLEEPREVIEW_VAR=var, DJANGO_SETTINGS_MODULE="config.settings", DEBUG="0",
               CELERY_TASK_ALWAYS_EAGER="0")
    if server:
        admin_sql(server, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        admin_sql(server, f'CREATE DATABASE "{args.db}"')
        env["DATABASE_URL"] = f"{server}/{args.db}"
    os.environ.clear()
    os.environ.update(env)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield env
    finally:
        if server and not args.keep:
            from django.db import connections

            connections.close_all()
            admin_sql(server, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        if args.keep:
            print(f"kept: SLEEPREVIEW_VAR={var} DATABASE_URL={env.get('DATABASE_URL', '')}", file=sys.stderr)
        else:
            shutil.rmtree(var, ignore_errors=True)


def build_previous(choices: dict) -> None:
    """Version 1.0.0, built here (not measured); then 1% of the labels change stage and 1% of the ratings score."""
    from annotation.models import Label
    from ratings.models import Rating
    from releases.services.build import build_release, create_release

    build_release(create_release("bench", "1.0.0", queue=False, **choices).pk)
    Label.objects.filter(pk__in=Label.objects.filter(stage="N2").order_by("pk").values_list("pk", flat=True)[::100]) \
        .update(stage="N1")
    for rating in Rating.objects.order_by("pk")[::100]:
        rating.scores = {k: 6 - v for k, v in rating.scores.items()}
        rating.save(update_fields=["scores"])


def run(args, storage_url: str) -> None:
    with bench_database(args, storage_url) as env:
        from django.db import connection, connections

        from releases.services.build import create_release

        started = time.perf_counter()
        names = populate(args.recordings, args.epochs, args.seed)
        choices = {k: v for k, v in names.items() if k != "epochs"}
        version = "1.0.0"
        if args.over_previous:
            version = "1.1.0"
            build_previous(choices)
        release = create_release("bench", version, queue=False, **choices)
        print(f"setup: {names['epochs']} epochs in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        connections.close_all()
        command = [sys.executable, __file__, "--build-only", str(release.pk)]
        if args.profile:
            command += ["--profile", args.profile]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(done.stdout + done.stderr)
        built = json.loads(done.stdout.strip().splitlines()[-1])
        if built["state"] != "succeeded":
            raise SystemExit(f"the build {built['state']}: {built['error']}")
        summary = {"seconds": built["seconds"], "peak_rss_mb": built["peak_rss_mb"], "epochs": names["epochs"],
                   "exported": built["epochs"], "database": connection.vendor,
                   "storage": "s3" if storage_url else "local", "load_avg": built["load_avg"]}
        release.refresh_from_db()
        if args.over_previous:
            summary["changelog"] = release.changelog
        if args.save:
            save_files(release, Path(args.save))
        if args.check_against:
            differ = compare_files(release, Path(args.check_against))
            summary.update(identical=not differ, differ=differ)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
