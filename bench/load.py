"""Load test of the scoring queue: N concurrent raters against gunicorn + PostgreSQL on loopback.

Creates a throw-away database (default sleepreview_load), migrates it, writes one cohort of
--recordings × --epochs epochs in bulk (100,000 by default; no signals or images), one campaign over
them (overlap 2) with --raters raters and API tokens, starts gunicorn, and lets every rater take next
items and save labels through HTTP for --seconds, thinking --think-s seconds (±25 %) over each item
(some abandon their reservation instead). One asyncio process drives every rater over keep-alive
connections (asyncio streams), so the load generator takes little of the server's CPU (its own CPU is
in the JSON: client_cpu_ms_per_request). Afterwards it checks the database: no item with more than k
labels (over_assigned), no rater with two labels of an item, every acknowledged label stored (lost).
The database is dropped at the end (--keep to keep it). Last line: one JSON object.

Before timing, warm-up raters (one per connection, twice the server's threads) each take and label three
items, so every worker has loaded the API and prepared its statements (core.services.prepared) as a server
that has run for a while has; their requests carry an X-Load-Warm-Up header and count in no figure.

How the server is measured (this file is also gunicorn's config file, `-c bench/load.py`, for its hooks):
- server_cpu_ms_per_next / _per_save: each gunicorn worker thread's CPU time (time.thread_time, the
  thread's own CPU, not wall time) from gunicorn's pre_request to its post_request hook, summed per kind of
  request (POST .../next/, POST .../labels/) and divided by their number; it leaves out only the parsing
  of the request line and headers before pre_request.
- server_cpu_ms_per_request_proc: the check: utime + stime (/proc/<pid>/stat) of the gunicorn master and
  workers over the rater phase, divided by every request of that phase (next, save and release).
- db_cpu_ms_per_request: the same for the PostgreSQL backends of the bench's database (pg_stat_activity).
- queries_per_next / _per_save: SQL statements a worker sent per request, counted by a
  connection.execute_wrapper installed in the workers by the bench only (savepoints count; Django's
  connection health check, sent by the driver directly, does not).
- load_avg: os.getloadavg() at the start and at the end of the rater phase; cpu_count: the machine's.
--profile FILE: the workers run one thread each and profile every request (cProfile); the merged stats
go to FILE and their top entries (cumulative time) to stderr. Timings of a profiled run are not figures.

    .venv/bin/python bench/load.py [--raters 50] [--seconds 20] [--think-s 2] [--recordings 100] [--epochs 1000]
"""
import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATS_DIR = "LOAD_BENCH_STATS_DIR"  # where the workers write their counts when they exit
PROFILE = "LOAD_BENCH_PROFILE"

# --- inside the gunicorn workers (gunicorn's server hooks) -----------------------------------------------

_local = threading.local()
_lock = threading.Lock()
_counts: dict[str, list] = {}  # kind -> [requests, cpu seconds, SQL statements]
_profile = None


def _count_statement(execute, sql, params, many, context):
    _local.queries = getattr(_local, "queries", 0) + 1
    return execute(sql, params, many, context)


WARM_UP_HEADER = "X-LOAD-WARM-UP"  # on the warm-up's requests, which the counts and the profile leave out


def _kind(req) -> str | None:
    if req.method != "POST" or any(name == WARM_UP_HEADER for name, _ in req.headers):
        return None
    return {"next": "next", "labels": "save", "release": "release"}.get(req.path.rstrip("/").rsplit("/", 1)[-1])


def post_fork(server, worker):
    global _profile
    from django.db.backends.signals import connection_created

    def count(sender, connection, **kwargs):
        if _count_statement not in connection.execute_wrappers:
            connection.execute_wrappers.append(_count_statement)
    connection_created.connect(count, weak=False)
    if os.environ.get(PROFILE):
        import cProfile

        _profile = cProfile.Profile(time.thread_time)  # CPU time of the request's thread, not wall time


def pre_request(worker, req):
    _local.queries = 0
    _local.cpu = time.thread_time()
    if _profile is not None and _kind(req):  # the timed requests only, not the warm-up
        _profile.enable()


def post_request(worker, req, environ, resp):
    if _profile is not None:
        _profile.disable()
    kind = _kind(req)
    if kind is None or not hasattr(_local, "cpu"):
        return
    cpu = time.thread_time() - _local.cpu
    with _lock:
        counts = _counts.setdefault(kind, [0, 0.0, 0])
        counts[0] += 1
        counts[1] += cpu
        counts[2] += _local.queries


def worker_exit(server, worker):
    folder = os.environ.get(STATS_DIR)
    if not folder:
        return
    Path(folder, f"{os.getpid()}.json").write_text(json.dumps(_counts))
    if _profile is not None:
        _profile.dump_stats(str(Path(folder, f"{os.getpid()}.prof")))


# --- the bench ---------------------------------------------------------------------------------------------

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
    warming = User.objects.bulk_create([User(username=f"load-warm-up-{i}") for i in range(warm_up_connections(args))])
    group.user_set.add(*users, *warming)
    tokens = [Token.objects.create(user=u).key for u in users]
    warm_tokens = [Token.objects.create(user=u).key for u in warming]
    campaign = create_campaign("load", cohort="Load", raters=[*users, *warming], overlap=args.overlap,
                               reservation_timeout_s=args.timeout)
    print(f"setup: {len(rows)} epochs, campaign {campaign.pk} with {campaign.items.count()} items "
          f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    from django.db import connections

    connections.close_all()
    return campaign.pk, tokens, warm_tokens


def server_threads(args) -> int:
    """Threads per gunicorn worker: one when profiling (cProfile follows one thread)."""
    return 1 if args.profile else args.threads


def warm_up_connections(args) -> int:
    """Connections (each with its own rater) that warm the workers up: twice the server's threads."""
    return args.workers * server_threads(args) * 2


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams (Content-Length or chunked bodies)."""

    def __init__(self, port: int, token: str, extra_header: str = ""):
        self.port, self.reader, self.writer = port, None, None
        self.head = f"Host: 127.0.0.1\r\nAuthorization: Token {token}\r\nContent-Type: application/json\r\n"
        if extra_header:
            self.head += f"{extra_header}\r\n"

    async def request(self, method: str, path: str, body=None, timeout: float = 30) -> tuple[int, bytes]:
        return await asyncio.wait_for(self._request(method, path, body), timeout)

    async def _request(self, method, path, body):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = json.dumps(body).encode() if body is not None else b""
        self.writer.write(f"{method} {path} HTTP/1.1\r\n{self.head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            payload = b""
            while size := int((await self.reader.readline()).strip(), 16):
                payload += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        else:
            payload = b""
        if headers.get("connection") == "close":
            self.close()
        return status, payload

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def wait_for(port, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited early")
        try:
            connection = Connection(port, "-")
            await connection.request("GET", "/accounts/login/", timeout=2)  # up (not /healthz: it waits on the broker)
            connection.close()
            return
        except (OSError, asyncio.TimeoutError, IndexError, ValueError):
            await asyncio.sleep(0.3)
    raise SystemExit("gunicorn did not answer")


async def warm_up(port, tokens, campaign):
    """Every gunicorn worker loads Django's URLconf and the API, and prepares the queue's statements, on its first
    requests: do that before timing, one warm-up rater per connection taking and labelling a few items."""
    async def hit(token):
        connection = Connection(port, token, f"{WARM_UP_HEADER}: 1")
        base = f"/api/scoring/campaigns/{campaign}"
        for _ in range(3):
            await connection.request("GET", f"{base}/hypnogram/?recording=0", timeout=60)
            status, data = await connection.request("POST", f"{base}/next/", {}, timeout=60)
            if status == 200:
                await connection.request("POST", f"{base}/labels/", {
                    "item": json.loads(data)["item"], "stage": "N2", "client_id": str(uuid.uuid4())}, timeout=60)
        connection.close()
    await asyncio.gather(*(hit(token) for token in tokens))


async def rater_loop(port, token, campaign, deadline, abandon, think_s, seed, out):
    """One rater: next, then label it (or abandon it) after thinking about think_s (±25 %).

    Raters arrive spread over one think time, not all in the same millisecond.
    """
    rnd = random.Random(seed)
    await asyncio.sleep(think_s * rnd.random())
    connection = Connection(port, token)
    base = f"/api/scoring/campaigns/{campaign}"

    async def call(path, body=None):
        started = time.perf_counter()
        status, data = await connection.request("POST", base + path, body or {})
        out["requests"] += 1
        return status, data, (time.perf_counter() - started) * 1000

    while time.time() < deadline:
        try:
            status, data, ms = await call("/next/")
            out["next_ms"].append(ms)
            if status == 204:
                break
            if status != 200:
                out["errors"].append(f"next {status} {data[:200]!r}")
                continue
            item = json.loads(data)["item"]
            await asyncio.sleep(think_s * rnd.uniform(0.75, 1.25))  # reading the epoch
            if rnd.random() < abandon:
                status, data, ms = await call("/release/", {"item": item})
                if status != 200:
                    out["errors"].append(f"release {status} {data[:200]!r}")
                continue
            status, data, ms = await call("/labels/", {"item": item, "stage": rnd.choice(["W", "N1", "N2", "N3", "R"]),
                                                       "client_id": str(uuid.uuid4()), "seconds_spent": 3.0})
            out["submit_ms"].append(ms)
            if status not in (200, 201):
                out["errors"].append(f"label {status} {data[:200]!r}")
            else:
                out["acknowledged"].append(json.loads(data)["id"])
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, IndexError, ValueError) as exc:
            out["errors"].append(f"connection {exc!r}")
            connection.close()
    connection.close()


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


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> float:
    """utime + stime of the processes (those gone meanwhile count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICK


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def db_backends(server: str, db: str) -> list[int]:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        return [pid for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (db,))]


def per(total, count, scale=1000.0, digits=2):
    return round(total * scale / count, digits) if count else None


def worker_counts(folder: Path) -> dict:
    merged: dict[str, list] = {}
    for path in folder.glob("*.json"):
        for kind, (n, cpu, queries) in json.loads(path.read_text()).items():
            into = merged.setdefault(kind, [0, 0.0, 0])
            into[0] += n
            into[1] += cpu
            into[2] += queries
    return merged


def print_profile(folder: Path, to: str) -> None:
    import pstats

    files = [str(p) for p in folder.glob("*.prof") if p.stat().st_size > 2]  # a worker that took no request: {}
    if not files:
        print("profile: no worker wrote its stats", file=sys.stderr)
        return
    stats = pstats.Stats(*files, stream=sys.stderr)
    stats.dump_stats(to)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)


async def drive(args, campaign, tokens, port):
    results = [{"requests": 0, "errors": [], "next_ms": [], "submit_ms": [], "acknowledged": []} for _ in tokens]
    deadline = time.time() + args.seconds
    await asyncio.gather(*(rater_loop(port, t, campaign, deadline, args.abandon, args.think_s, i, r)
                           for i, (t, r) in enumerate(zip(tokens, results))))
    return results


def main():
    from bench.export import admin_sql  # the shared throw-away database helper

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--recordings", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=900, help="reservation timeout of the campaign (s)")
    parser.add_argument("--abandon", type=float, default=0.1, help="share of items a rater releases unlabelled")
    parser.add_argument("--think-s", type=float, default=2.0,
                        help="seconds a rater looks at an epoch before labelling it (2 s: a fast expert's pace; "
                             "10 s: a lab's pace; 0: stress)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--server", default=os.environ.get("PG_SERVER", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--db", default="sleepreview_load")
    parser.add_argument("--profile", help="profile the workers' requests (one thread each); stats to this file")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    admin_sql(args.server, f'DROP DATABASE IF EXISTS "{args.db}"')
    admin_sql(args.server, f'CREATE DATABASE "{args.db}"')
    stats_dir = Path(tempfile.mkdtemp(prefix="load-bench-"))
    env = {**os.environ, "DATABASE_URL": f"{args.server}/{args.db}", "DB_CONN_MAX_AGE": "60", "DEBUG": "0",
           "DJANGO_SETTINGS_MODULE": "config.settings", STATS_DIR: str(stats_dir)}
    if args.profile:
        env[PROFILE] = "1"
    os.environ.update(env)
    proc = None
    try:
        campaign, tokens, warm_tokens = setup_data(args)
        gunicorn = Path(sys.executable).with_name("gunicorn")
        threads = server_threads(args)
        proc = subprocess.Popen([str(gunicorn), "config.wsgi:application", "-c", __file__,
                                 "-b", f"127.0.0.1:{args.port}", "-w", str(args.workers), "--threads", str(threads),
                                 "-k", "gthread", "--preload", "--keep-alive", "75", "--graceful-timeout", "60",
                                 "--log-level", "warning"],
                                cwd=ROOT, env=env)
        asyncio.run(wait_for(args.port, proc))
        asyncio.run(warm_up(args.port, warm_tokens, campaign))
        gunicorn_pids = [proc.pid, *children(proc.pid)]
        backends = {pid: cpu_seconds([pid]) for pid in db_backends(args.server, args.db)}
        load_start = [round(x, 2) for x in os.getloadavg()]
        server_cpu, client_cpu = cpu_seconds(gunicorn_pids), time.process_time()
        results = asyncio.run(drive(args, campaign, tokens, args.port))
        client_cpu = time.process_time() - client_cpu
        server_cpu = cpu_seconds(gunicorn_pids) - server_cpu
        # backends started meanwhile count whole, those gone meanwhile not at all
        db_cpu = sum(cpu_seconds([pid]) - backends.get(pid, 0.0) for pid in db_backends(args.server, args.db))
        load_end = [round(x, 2) for x in os.getloadavg()]
        proc.send_signal(signal.SIGTERM)  # the workers write their counts as they exit
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            print("gunicorn did not stop in 90 s: killed, its workers' counts may be missing", file=sys.stderr)
            proc.kill()
            proc.wait()
        proc = None
        counts = worker_counts(stats_dir)
        if args.profile:
            print_profile(stats_dir, args.profile)
        merged = {k: [x for r in results for x in r[k]] for k in ("errors", "next_ms", "submit_ms", "acknowledged")}
        verdict = check(campaign, merged["acknowledged"], args.overlap)
        for error in merged["errors"][:5]:
            print("error:", error, file=sys.stderr)
        requests = sum(r["requests"] for r in results)
        nexts, saves = counts.get("next", [0, 0.0, 0]), counts.get("save", [0, 0.0, 0])
        summary = {
            "raters": args.raters, "epochs": args.recordings * args.epochs, "seconds": args.seconds,
            "think_s": args.think_s, "workers": args.workers, "threads": threads,
            "requests": requests, "labels": len(merged["acknowledged"]),
            "errors": len(merged["errors"]), "lost": verdict["lost"], "over_assigned": verdict["over_assigned"],
            "next_p50_ms": percentile(merged["next_ms"], 50), "next_p95_ms": percentile(merged["next_ms"], 95),
            "submit_p50_ms": percentile(merged["submit_ms"], 50), "submit_p95_ms": percentile(merged["submit_ms"], 95),
            "server_cpu_ms_per_next": per(nexts[1], nexts[0]), "server_cpu_ms_per_save": per(saves[1], saves[0]),
            "server_cpu_ms_per_request_proc": per(server_cpu, requests),
            "db_cpu_ms_per_request": per(db_cpu, requests),
            "client_cpu_ms_per_request": per(client_cpu, requests),
            "queries_per_next": per(nexts[2], nexts[0], 1.0), "queries_per_save": per(saves[2], saves[0], 1.0),
            "load_avg_start": load_start, "load_avg_end": load_end, "cpu_count": os.cpu_count(),
            "profiled": bool(args.profile),
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
