"""Load test of the scoring queue: N concurrent raters against gunicorn + PostgreSQL on loopback.

Creates a throw-away database (default sleepreview_load), migrates it, writes one cohort of
--recordings × --epochs epochs in bulk (100,000 by default; no signals or images), one campaign over
them (overlap 2) with --raters raters and API tokens, starts gunicorn, and lets every rater take next
items and save labels through HTTP for --seconds (some abandon their reservation instead). Afterwards it
checks the database: no item with more than k labels (over_assigned), no rater with two labels of an
item, every acknowledged label stored (lost). The database is dropped at the end (--keep to keep it).
Last line: one JSON object.

    .venv/bin/python bench/load.py [--raters 50] [--seconds 20] [--recordings 100] [--epochs 1000]
"""
import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def admin_sql(server: str, sql: str):
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def setup_data(args):
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from annotation.services.campaigns import create_campaign
    from core.roles import RATER
    from datasets.models import Cohort, Epoch, Recording

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    cohort = Cohort.objects.create(name="Load")
    recordings = Recording.objects.bulk_create([
        Recording(cohort=cohort, name=f"load-{i:03d}", sha256=f"{i:064x}", source_filename=f"load-{i}.edf",
                  file_format="EDF+", duration_s=30.0 * args.epochs, mains_hz=50, signal_file="none.npy",
                  epoch_count=args.epochs, derivations=["C4-M1"]) for i in range(args.recordings)])
    stages = ["W", "N1", "N2", "N2", "N3", "R"]
    rows = [Epoch(recording=r, index=i, onset_s=30.0 * i, stage=stages[(i * 7 + r.pk) % len(stages)])
            for r in recordings for i in range(args.epochs)]
    Epoch.objects.bulk_create(rows, batch_size=10000)
    group = Group.objects.get(name=RATER)
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"load-rater-{i}") for i in range(args.raters)])
    group.user_set.add(*users)
    tokens = [Token.objects.create(user=u).key for u in users]
    campaign = create_campaign("load", cohort="Load", raters=users, overlap=args.overlap,
                               reservation_timeout_s=args.timeout)
    print(f"setup: {len(rows)} epochs, campaign {campaign.pk} with {campaign.items.count()} items "
          f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    from django.db import connections

    connections.close_all()
    return campaign.pk, tokens


def wait_for(port, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited early")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not answer")


def warm_up(port, token, campaign, n):
    """Every gunicorn worker loads Django's URLconf and the API on its first requests: do that before timing."""
    def hit():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(3):
            conn.request("GET", f"/api/scoring/campaigns/{campaign}/hypnogram/?recording=0",
                         headers={"Authorization": f"Token {token}"})
            conn.getresponse().read()
    threads = [threading.Thread(target=hit) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def rater_loop(port, token, campaign, deadline, abandon, think_s, seed, out):
    """One rater: next, then label it (or abandon it), then look at the next epoch for about think_s.

    Raters arrive spread over one think time, not all in the same millisecond.
    """
    rnd = random.Random(seed)
    time.sleep(think_s * rnd.random())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    base = f"/api/scoring/campaigns/{campaign}"

    def call(path, body=None):
        started = time.perf_counter()
        # bytes, so http.client sends headers and body in one packet (no Nagle / delayed-ACK stall)
        conn.request("POST", base + path, body=json.dumps(body or {}).encode(), headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, data, (time.perf_counter() - started) * 1000

    while time.time() < deadline:
        try:
            status, data, ms = call("/next/")
            out["requests"] += 1
            out["next_ms"].append(ms)
            if status == 204:
                break
            if status != 200:
                out["errors"].append(f"next {status} {data[:200]!r}")
                continue
            item = json.loads(data)["item"]
            time.sleep(think_s * rnd.uniform(0.75, 1.25))  # reading the epoch
            if rnd.random() < abandon:
                status, data, ms = call("/release/", {"item": item})
                out["requests"] += 1
                if status != 200:
                    out["errors"].append(f"release {status} {data[:200]!r}")
                continue
            status, data, ms = call("/labels/", {"item": item, "stage": rnd.choice(["W", "N1", "N2", "N3", "R"]),
                                                 "client_id": str(uuid.uuid4()), "seconds_spent": 3.0})
            out["requests"] += 1
            out["submit_ms"].append(ms)
            if status not in (200, 201):
                out["errors"].append(f"label {status} {data[:200]!r}")
            else:
                out["acknowledged"].append(json.loads(data)["id"])
        except (OSError, http.client.HTTPException) as exc:
            out["errors"].append(f"connection {exc!r}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q / 100 * len(values)))], 1)


def check(campaign, acknowledged, overlap):
    from django.db.models import Count

    from annotation.models import Label

    labels = Label.objects.filter(item__campaign_id=campaign, rescore=False)
    over = labels.filter(revision=1).values("item_id").annotate(n=Count("pk")).filter(n__gt=overlap).count()
    twice = labels.filter(revision=1).values("item_id", "rater_id").annotate(n=Count("pk")).filter(n__gt=1).count()
    stored = set(Label.objects.filter(pk__in=acknowledged).values_list("pk", flat=True))
    return {"over_assigned": over + twice, "lost": len(set(acknowledged) - stored), "labels": labels.count()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--recordings", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=900, help="reservation timeout of the campaign (s)")
    parser.add_argument("--abandon", type=float, default=0.1, help="share of items a rater releases unlabelled")
    parser.add_argument("--think-s", type=float, default=2.0,
                        help="seconds a rater looks at an epoch before labelling it (2 s: a fast expert's pace; 0: stress)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--server", default=os.environ.get("PG_SERVER", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--db", default="sleepreview_load")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    admin_sql(args.server, f'DROP DATABASE IF EXISTS "{args.db}"')
    admin_sql(args.server, f'CREATE DATABASE "{args.db}"')
    env = {**os.environ, "DATABASE_URL": f"{args.server}/{args.db}", "DB_CONN_MAX_AGE": "60", "DEBUG": "0",
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    os.environ.update(env)
    proc = None
    try:
        campaign, tokens = setup_data(args)
        gunicorn = Path(sys.executable).with_name("gunicorn")
        proc = subprocess.Popen([str(gunicorn), "config.wsgi:application", "-b", f"127.0.0.1:{args.port}",
                                 "-w", str(args.workers), "--threads", str(args.threads), "-k", "gthread", "--preload", "--keep-alive", "75",
                                 "--log-level", "warning"], cwd=ROOT, env=env)
        wait_for(args.port, proc)
        warm_up(args.port, tokens[0], campaign, args.workers * args.threads * 2)
        results = [{"requests": 0, "errors": [], "next_ms": [], "submit_ms": [], "acknowledged": []} for _ in tokens]
        deadline = time.time() + args.seconds
        threads = [threading.Thread(target=rater_loop, args=(args.port, t, campaign, deadline, args.abandon, args.think_s, i, r))
                   for i, (t, r) in enumerate(zip(tokens, results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        proc = None
        merged = {k: [x for r in results for x in r[k]] for k in ("errors", "next_ms", "submit_ms", "acknowledged")}
        verdict = check(campaign, merged["acknowledged"], args.overlap)
        for error in merged["errors"][:5]:
            print("error:", error, file=sys.stderr)
        summary = {
            "raters": args.raters, "epochs": args.recordings * args.epochs, "seconds": args.seconds,
            "think_s": args.think_s,
            "requests": sum(r["requests"] for r in results), "labels": len(merged["acknowledged"]),
            "errors": len(merged["errors"]), "lost": verdict["lost"], "over_assigned": verdict["over_assigned"],
            "next_p50_ms": percentile(merged["next_ms"], 50), "next_p95_ms": percentile(merged["next_ms"], 95),
            "submit_p95_ms": percentile(merged["submit_ms"], 95),
        }
    finally:
        if proc is not None:
            proc.kill()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin_sql(args.server, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
