"""Dashboards at MASS-EX scale: the scoring and rating dashboards' statistics and the agreement report of
a 100,000-epoch campaign with 3 raters.

Generates, in bulk (no signals or images), the database of bench/export.py (`populate`: one cohort of
--recordings × --epochs epochs, a scoring campaign over every scored epoch with three raters' labels,
one model version's prediction on every epoch), plus a rating campaign over every one of those
predictions (about 99,000 items) that the same three raters all rated on every rubric dimension.
Then, in a child process (so peak_rss_mb is the measurement's own VmHWM, not the generation's), it times
the service functions the pages use, computing from the database (no stored result):
annotation.services.dashboard.campaign_statistics (scoring_s), ratings.services.statistics
.campaign_statistics (rating_s) and the agreement report, those statistics rendered as Markdown by
render_report (report_s); and one GET of each page through Django's test client as a curator
(scoring_page_s, rating_page_s, report_page_s: what a page costs now, cached result or not).

The database is a throw-away one: PostgreSQL when DATABASE_URL points at a server (a database named
--db on it, dropped at the end unless --keep), else SQLite in a temporary SLEEPREVIEW_VAR.
--profile FILE writes the measurement's cProfile stats. Last line: one JSON object.

    .venv/bin/python bench/dashboard.py [--recordings 100] [--epochs 1000] [--profile FILE] [--keep]
"""
import argparse
import cProfile
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.export import bench_database, populate  # noqa: E402  (the shared database and bulk builder)


def rate_everything(scoring_name: str, model_name: str, seed: int) -> int:
    """A rating campaign over every prediction of the cohort's scored epochs, rated by the scoring
    campaign's three raters on every dimension (scores near a per-item level, so alpha is moderate)."""
    import numpy as np
    from django.utils import timezone

    from annotation.models import ScoringCampaign
    from ratings.models import Rating, RatingReservation
    from ratings.services.campaigns import create_rating_campaign

    scoring = ScoringCampaign.objects.get(name=scoring_name)
    raters = list(scoring.raters.order_by("pk"))
    cohorts = list(scoring.recordings.values_list("cohort__name", flat=True).distinct())
    campaign = create_rating_campaign(f"{scoring_name}-rating-all", cohorts=cohorts, raters=raters,
                                      overlap=len(raters), model_versions=[model_name], seed=seed)
    rng = np.random.default_rng(seed)
    keys = campaign.rubric.keys
    items = list(campaign.items.values_list("pk", flat=True))
    level = rng.integers(1, 6, size=(len(items), len(keys)))
    now = timezone.now()
    RatingReservation.objects.bulk_create([RatingReservation(item_id=pk, slot=s, rater=r, expires_at=now, labelled=True)
                                           for pk in items for s, r in enumerate(raters)], batch_size=5000)
    noise = rng.integers(-1, 2, size=(len(items), len(raters), len(keys)))
    scores = np.clip(level[:, None, :] + noise, 1, 5)
    Rating.objects.bulk_create([Rating(item_id=pk, rater=r, rubric=campaign.rubric, client_id=uuid.uuid4(),
                                       seconds_spent=12.0, scores=dict(zip(keys, map(int, scores[u, k]))))
                                for u, pk in enumerate(items) for k, r in enumerate(raters)], batch_size=5000)
    return campaign.pk


def measure(scoring_id: int, rating_id: int, profile: str | None) -> None:
    """Time each computation and each page in this (fresh) process, loaded as a web worker is (config.wsgi: the
    views and the numerical libraries they import where used); print one JSON object."""
    import config.wsgi  # noqa: F401
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client
    from django.test.utils import setup_test_environment

    from annotation.models import ScoringCampaign
    from annotation.services.dashboard import campaign_statistics as scoring_statistics
    from core.roles import CURATOR
    from ratings.models import RatingCampaign
    from ratings.services.statistics import campaign_statistics as rating_statistics
    from ratings.services.statistics import render_report

    setup_test_environment()  # the test client's host name
    scoring, rating = ScoringCampaign.objects.get(pk=scoring_id), RatingCampaign.objects.get(pk=rating_id)
    profiler = cProfile.Profile() if profile else None
    out = {}

    def timed(name, call):
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        value = call()
        if profiler:
            profiler.disable()
        out[name] = round(time.perf_counter() - started, 3)
        print(f"{name}: {out[name]} s", file=sys.stderr, flush=True)
        return value

    stats = timed("scoring_s", lambda: scoring_statistics(scoring))
    out["scoring_labels"] = stats["labels"]
    stats = timed("rating_s", lambda: rating_statistics(rating))
    out["ratings"] = stats["campaign"]["ratings"]
    timed("report_s", lambda: render_report(rating_statistics(rating), "md"))

    curator, _ = get_user_model().objects.get_or_create(username="bench-curator")
    curator.groups.add(Group.objects.get(name=CURATOR))
    client = Client()
    client.force_login(curator)
    for name, url in (("scoring_page_s", f"/scoring/{scoring.pk}/dashboard/"),
                      ("rating_page_s", f"/rating/{rating.pk}/dashboard/"),
                      ("report_page_s", f"/rating/{rating.pk}/report/")):
        try:
            response = timed(name, lambda: client.get(url))
        except Exception as exc:  # noqa: BLE001  (a page that fails is reported, the figures above still stand)
            out[name], out[f"{name[:-2]}error"] = None, repr(exc)[:200]
            continue
        if response.status_code != 200:
            out[name], out[f"{name[:-2]}error"] = None, f"GET {url}: {response.status_code}"

    if profiler:
        profiler.dump_stats(profile)
    status = Path("/proc/self/status").read_text()
    out["peak_rss_mb"] = round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="sleepreview_dashboard_bench", help="database name (PostgreSQL)")
    parser.add_argument("--keep", action="store_true", help="keep the database (SQLite: its temporary folder)")
    parser.add_argument("--profile", help="write the measurement's cProfile stats here")
    parser.add_argument("--measure-only", type=int, nargs=2, metavar=("SCORING_ID", "RATING_ID"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        return measure(*args.measure_only, args.profile)

    with bench_database(args) as env:
        from django.db import connection, connections

        from annotation.models import ScoringCampaign

        started = time.perf_counter()
        names = populate(args.recordings, args.epochs, args.seed)
        rating_id = rate_everything(names["scoring_campaigns"][0], names["model_versions"][0], args.seed)
        scoring_id = ScoringCampaign.objects.get(name=names["scoring_campaigns"][0]).pk
        print(f"setup: {names['epochs']} epochs in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        connections.close_all()
        command = [sys.executable, __file__, "--measure-only", str(scoring_id), str(rating_id)]
        if args.profile:
            command += ["--profile", args.profile]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(done.stdout + done.stderr)
        summary = {**json.loads(done.stdout.strip().splitlines()[-1]), "epochs": names["epochs"], "raters": 3,
                   "database": connection.vendor,
                   "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
