"""The core app: job engine transitions, role sync, layering, and the review holes it closed."""
import ast
import hashlib
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from core.locks import named_lock
from core.roles import CURATOR, RATER, RESEARCHER, resolve_permissions, sync_roles
from core.services.sweeps import requeue_stale_jobs, sweep_storage
from datasets.models import EpochImage, ImportJob, Recording
from datasets.services import imports, ingest
from datasets.services.ingest import ImportRequest, import_psg
from inference.models import InferenceJob, ModelVersion, Prediction
from inference.services import jobs
from tests.conftest import broker_at, stored_files
from tests.factories import assign_rater

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
APPS = ("core", "datasets", "inference", "annotation", "ratings", "releases", "demo", "config")


# --- job engine -------------------------------------------------------------------------------

def _import_job(path, **fields):
    return ImportJob.objects.create(source_path=str(path), source_name=Path(path).name, cohort_name="c", **fields)


def test_claim_is_a_compare_and_set(night_edf):
    job = _import_job(night_edf)
    other = ImportJob.objects.get(pk=job.pk)  # a second worker holding the same message
    assert job.claim() is True
    assert other.claim() is False
    assert other.state == ImportJob.RUNNING
    assert job.succeed("done") and not job.fail("late failure")
    assert job.state == ImportJob.SUCCEEDED and job.error == ""


@pytest.mark.parametrize("kind", ["import", "inference"])
def test_a_late_success_never_overwrites_a_cancel(kind, night_edf):
    if kind == "import":
        job = _import_job(night_edf)
    else:
        job = InferenceJob.objects.create(model_version=ModelVersion.objects.create(name="late", backend="baseline"))
    assert job.claim()
    worker = type(job).objects.get(pk=job.pk)  # the worker's copy, still RUNNING in memory
    assert type(job).objects.get(pk=job.pk).cancel()  # a user cancels meanwhile
    assert worker.state == job.RUNNING
    assert worker.succeed("finished late", done=120) is False
    assert not worker.fail("failed late") and not worker.report_progress(add=5)
    row = type(job).objects.get(pk=job.pk)
    assert (row.state, row.message, row.done, row.error) == (job.CANCELLED, "cancelled", 0, "")
    assert worker.state == job.CANCELLED  # the worker's copy now says so too


@pytest.mark.parametrize("kind", ["import", "inference"])
def test_a_stalled_worker_taken_over_can_no_longer_write(kind, night_edf, settings):
    """The successor holds the job under a new lease; the stalled worker's progress and outcome are refused."""
    if kind == "import":
        job = _import_job(night_edf)
    else:
        job = InferenceJob.objects.create(model_version=ModelVersion.objects.create(name="stall", backend="baseline"))
    stalled = type(job).objects.get(pk=job.pk)
    assert stalled.claim() and stalled.held_lease == 1 and not stalled.lease_lost()
    assert stalled.report_progress(done=3, total=10)
    type(job).objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    successor = type(job).objects.get(pk=job.pk)
    assert successor.claim() and successor.held_lease == 2
    assert stalled.lease_lost() and not successor.lease_lost()
    assert not stalled.report_progress(done=9, message="woke up") and not stalled.succeed("stale success")
    assert not stalled.fail("stale failure")
    row = type(job).objects.get(pk=job.pk)
    assert (row.state, row.done, row.message, row.lease) == (job.RUNNING, 3, "", 2)
    assert successor.report_progress(done=10) and successor.succeed("done")
    assert type(job).objects.get(pk=job.pk).state == job.SUCCEEDED
    other = type(job).objects.get(pk=job.pk)
    assert other.held_lease is None and not other.lease_lost()  # a page or API copy never claimed


def test_an_inference_job_cancelled_during_its_last_chunk_stays_cancelled(imported, baseline, monkeypatch):
    job = InferenceJob.objects.create(model_version=baseline, recording=imported)
    [ids] = jobs.enqueue_missing(job, chunk_size=500, queue=False)
    backend = jobs.backend_for(baseline)
    real = type(backend).predict

    def cancel_then_predict(self, queries):
        assert InferenceJob.objects.get(pk=job.pk).cancel()
        return real(self, queries)

    monkeypatch.setattr(type(backend), "predict", cancel_then_predict)
    jobs.run_chunk(job.pk, ids)  # the batch predicted after the cancel is refused, and so is succeed()
    job.refresh_from_db()
    stored = Prediction.objects.filter(model_version=baseline)
    assert not stored.exclude(status=Prediction.SKIPPED).exists()  # only the context-less ends, written first
    assert job.state == InferenceJob.CANCELLED and job.message == "cancelled"


def test_a_redelivered_import_message_never_runs_twice(night_edf, monkeypatch, settings):
    calls = []
    monkeypatch.setattr(imports, "import_psg", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(AssertionError))
    job = _import_job(night_edf)
    assert job.claim()  # a worker holds it and is alive
    imports.run_job(job.pk)
    assert calls == [] and ImportJob.objects.get(pk=job.pk).state == ImportJob.RUNNING
    # that worker died: past the lease the job may be claimed again
    settings.JOB_LEASE_SECONDS = 0
    time.sleep(0.01)
    assert ImportJob.objects.get(pk=job.pk).claim()


def test_progress_has_one_shape_and_costs_no_query(night_edf, django_assert_num_queries):
    job = _import_job(night_edf)
    job.claim()
    job.report_progress(done=30, total=120, message="rendering")
    job.refresh_from_db()
    with django_assert_num_queries(0):
        shape = job.progress()
    assert set(shape) == {"state", "fraction", "done", "total", "rate", "eta_s", "message"}
    assert (shape["fraction"], shape["done"], shape["total"], shape["message"]) == (0.25, 30, 120, "rendering")


def test_cancelled_import_stops_and_writes_nothing(night_edf, monkeypatch):
    job = _import_job(night_edf)
    real = ingest.render_epochs

    def cancel_then_render(*args):
        ImportJob.objects.get(pk=job.pk).cancel()
        return real(*args)

    monkeypatch.setattr(ingest, "render_epochs", cancel_then_render)
    job = imports.run_job(job.pk)
    assert job.state == ImportJob.CANCELLED and Recording.objects.count() == 0


# --- roles, layering ------------------------------------------------------------------------

def test_role_sync_fails_loudly_on_a_misspelt_permission(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="datasets.view_recordng"):
        resolve_permissions(["datasets.view_recording", "datasets.view_recordng"])
    from datasets import roles

    monkeypatch.setitem(roles.ROLE_PERMISSIONS, RATER, [*roles.ROLE_PERMISSIONS[RATER], "inference.view_predicton"])
    with pytest.raises(ImproperlyConfigured, match="inference.view_predicton"):
        sync_roles()


def test_roles_merge_every_apps_declaration():
    rater = set(Group.objects.get(name=RATER).permissions.values_list("codename", flat=True))
    curator = set(Group.objects.get(name=CURATOR).permissions.values_list("codename", flat=True))
    assert "view_epoch" in rater and "view_reference_stage" not in rater and "view_prediction" not in rater
    assert {"add_importjob", "add_inferencejob", "change_aasmrule", "view_recording_provenance"} <= curator


def _module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a module file under ROOT, and whether it is a package's __init__."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return (".".join(parts[:-1]), True) if parts[-1] == "__init__" else (".".join(parts), False)


def _literal(node) -> str | None:
    """A constant string, or an f-string with its placeholders as '*' (f"{app}.tasks" -> "*.tasks")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)
    return None


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module name `source` (the text of module `module`) imports: `import x`, `from x import y`
    (as x and x.y), relative imports resolved against the module's package, and string arguments of
    importlib.import_module / __import__ (import_module("x", package) resolved when relative)."""
    package = module if is_package else module.rpartition(".")[0]
    names = set()

    def resolve(name: str, level: int, base: str = package) -> str:
        if not level:
            return name
        parts = base.split(".") if base else []
        parts = parts[: len(parts) - (level - 1)] if level > 1 else parts
        return ".".join([*parts, name] if name else parts)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module or "", node.level)
            if base:
                names.add(base)
            names.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called not in ("import_module", "__import__") or (name := _literal(node.args[0])) is None:
                continue
            if called == "import_module" and name.startswith("."):
                anchor = _literal(node.args[1]) if len(node.args) > 1 else package
                stripped = name.lstrip(".")
                name = resolve(stripped, len(name) - len(stripped), anchor or package)
            names.add(name)
    return names


def _imports(path: Path) -> set[str]:
    module, is_package = _module_name(path)
    return imported_names(path.read_text(), module, is_package=is_package)


def _is_tasks_module(name: str) -> bool:
    return "tasks" in name.split(".")


def _layering_offenders(app: str, forbidden: tuple[str, ...], files=None) -> list[str]:
    files = files if files is not None else [
        (f"{path.relative_to(ROOT)}", _imports(path)) for path in (ROOT / app).rglob("*.py")
        if path.name != "testing.py" and "migrations" not in path.parts
    ]
    return [f"{where} imports {name}" for where, names in files for name in sorted(names)
            if name.split(".")[0] in forbidden]


@pytest.mark.parametrize("source, module, expected", [
    ("import datasets.tasks", "datasets.services.x", {"datasets.tasks"}),
    ("from datasets import tasks", "datasets.services.x", {"datasets", "datasets.tasks"}),
    ("from . import tasks", "datasets.services.x", {"datasets.services", "datasets.services.tasks"}),
    ("from .. import tasks", "datasets.services.x", {"datasets", "datasets.tasks"}),
    ("from ..tasks import run", "datasets.services.x", {"datasets.tasks", "datasets.tasks.run"}),
    ("from .tasks import run", "inference.services.jobs", {"inference.services.tasks", "inference.services.tasks.run"}),
    ("import importlib\nimportlib.import_module('inference.tasks')", "datasets.services.x",
     {"importlib", "inference.tasks"}),
    ("from importlib import import_module\nimport_module('..tasks', 'datasets.services')", "ratings.services.x",
     {"importlib", "importlib.import_module", "datasets.tasks"}),
    ("from importlib import import_module\nimport_module(f'{app}.tasks')", "core.services.x",
     {"importlib", "importlib.import_module", "*.tasks"}),
    ("__import__('releases.tasks')", "core.services.x", {"releases.tasks"}),
])
def test_the_import_checker_sees_relative_and_dynamic_imports(source, module, expected):
    assert imported_names(source, module) == expected


def test_the_import_checker_resolves_relative_imports_of_a_package_init():
    assert imported_names("from . import tasks", "datasets.services", is_package=True) == {
        "datasets.services", "datasets.services.tasks"}
    assert imported_names("from .tasks import x", "datasets", is_package=True) == {"datasets.tasks", "datasets.tasks.x"}


def test_the_layering_checks_fail_on_a_violation():
    dynamic = "import importlib\nimportlib.import_module('datasets.tasks')"
    for source in ("from .. import tasks", "from ..tasks import x", dynamic):
        assert any(_is_tasks_module(n) for n in imported_names(source, "datasets.services.ingest")), source
    clean = imported_names("from core.services import queue", "datasets.services.x")
    assert clean == {"core.services", "core.services.queue"} and not any(map(_is_tasks_module, clean))
    upward = [
        ("datasets/services/x.py", imported_names("from annotation.models import Label", "datasets.services.x")),
        ("datasets/y.py", imported_names("import importlib\nimportlib.import_module('releases.api')", "datasets.y")),
    ]
    assert _layering_offenders("datasets", LAYERS["datasets"], upward) == [
        "datasets/services/x.py imports annotation.models", "datasets/services/x.py imports annotation.models.Label",
        "datasets/y.py imports releases.api"]


def test_no_service_module_imports_a_tasks_module():
    scanned = [path for app in APPS for path in (ROOT / app).glob("services/**/*.py")]
    assert {path.relative_to(ROOT).parts[0] for path in scanned} == set(LAYERS)  # every app has services
    offenders = [f"{path.relative_to(ROOT)} imports {name}"
                 for path in scanned for name in sorted(_imports(path)) if _is_tasks_module(name)]
    assert offenders == []


# What each app may not import: core <- datasets <- inference <- annotation, ratings (neither imports the
# other) <- releases; demo may import every app, and no app imports demo.
LAYERS = {
    "core": ("datasets", "inference", "annotation", "ratings", "releases", "demo"),
    "datasets": ("inference", "annotation", "ratings", "releases", "demo"),
    "inference": ("annotation", "ratings", "releases", "demo"),
    "annotation": ("ratings", "releases", "demo"),
    "ratings": ("annotation", "releases", "demo"),
    "releases": ("demo",),
}


def test_every_app_has_a_layer():
    from django.apps import apps

    local = {config.name for config in apps.get_app_configs() if Path(config.path).parent == ROOT}
    assert local == set(LAYERS) | {"demo"} and set(APPS) == local | {"config"}


@pytest.mark.parametrize("app", list(LAYERS))
def test_apps_depend_one_way(app):
    assert _layering_offenders(app, LAYERS[app]) == []


# --- hole 2: content-addressed files are never deleted under a live recording -------------------

def _same_signals_other_file(night_edf, folder) -> Path:
    data = bytearray(night_edf.read_bytes())
    data[8] = ord("Y") if data[8] != ord("Y") else ord("Z")  # patient field: another SHA-256, the same signals
    copy = folder / "same-signals.edf"
    copy.write_bytes(bytes(data))
    return copy


def test_a_failing_import_never_deletes_files_a_committed_recording_uses(night_edf, tmp_path, media_root, monkeypatch):
    twin = _same_signals_other_file(night_edf, tmp_path)
    real_save = ingest._save

    def commit_the_twin_then_fail(*args, **kwargs):
        monkeypatch.setattr(ingest, "_save", real_save)
        import_psg(ImportRequest(path=twin, cohort="c"))  # reuses the files this import just created
        raise RuntimeError("lost the race")

    monkeypatch.setattr(ingest, "_save", commit_the_twin_then_fail)
    with pytest.raises(RuntimeError):
        import_psg(ImportRequest(path=night_edf, cohort="c"))
    survivor = Recording.objects.get()
    names = [survivor.signal_file, *EpochImage.objects.values_list("storage_name", flat=True)]
    assert all((media_root / name).is_file() for name in names)
    assert sweep_storage(grace_s=0) == []


def test_imports_of_one_file_are_serialised(tmp_path):
    order = []

    def hold(tag):
        with named_lock("import:abc"):
            order.append(f"{tag} in")
            time.sleep(0.2)
            order.append(f"{tag} out")

    threads = [threading.Thread(target=hold, args=(tag,)) for tag in ("a", "b")]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert order == ["a in", "a out", "b in", "b out"]


def test_the_storage_sweep_spares_young_and_referenced_files(media_root, imported):
    orphan = media_root / "epochs" / "ff" / ("f" * 64 + ".png")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"png")
    assert sweep_storage(grace_s=3600) == []
    assert sweep_storage(grace_s=0) == [f"epochs/ff/{'f' * 64}.png"]
    assert not orphan.exists() and Recording.objects.get().epoch_count == 120


def test_import_psg_holds_the_lock_named_after_the_files_sha256(night_edf, monkeypatch):
    from contextlib import contextmanager

    real_lock, real_locked = ingest.named_lock, ingest._import_locked
    held, events = [], []

    @contextmanager
    def recording_lock(name):
        with real_lock(name):
            held.append(name)
            events.append(f"lock {name}")
            try:
                yield
            finally:
                held.remove(name)
                events.append(f"unlock {name}")

    def import_while_checking(request, sha, *args):
        events.append(f"import under {list(held)}")  # the existence check, the import and the save
        return real_locked(request, sha, *args)

    monkeypatch.setattr(ingest, "named_lock", recording_lock)
    monkeypatch.setattr(ingest, "_import_locked", import_while_checking)
    name = "import:" + hashlib.sha256(night_edf.read_bytes()).hexdigest()
    assert import_psg(ImportRequest(path=night_edf, cohort="c"))[1] is True
    assert import_psg(ImportRequest(path=night_edf, cohort="c"))[1] is False  # the second one finds the first
    assert events == [f"lock {name}", f"import under {[name]}", f"unlock {name}"] * 2


def _stored(media_root, name: str, *, age_s: float) -> Path:
    path = media_root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"orphan")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


@pytest.fixture
def sweep_world(media_root, imported, settings):
    """An imported recording whose files are all old, beside an old and a young unreferenced file."""
    settings.STORAGE_SWEEP_GRACE_SECONDS = 3600
    referenced = [media_root / imported.signal_file,
                  *(media_root / n for n in EpochImage.objects.values_list("storage_name", flat=True))]
    for path in referenced:
        os.utime(path, (time.time() - 7200, time.time() - 7200))  # old: spared only because a row holds it
    old = _stored(media_root, f"epochs/ee/{'e' * 64}.png", age_s=7200)
    young = _stored(media_root, f"epochs/dd/{'d' * 64}.png", age_s=60)
    return referenced, old, young


def test_the_sweep_command_removes_old_orphans_only(sweep_world, media_root):
    from io import StringIO

    from django.core.management import call_command

    referenced, old, young = sweep_world
    out = StringIO()
    call_command("sweep", "--dry-run", stdout=out)
    assert f"would remove: epochs/ee/{'e' * 64}.png" in out.getvalue() and old.exists()
    out = StringIO()
    call_command("sweep", stdout=out)
    assert f"removed: epochs/ee/{'e' * 64}.png" in out.getvalue() and "1 unreferenced file(s)" in out.getvalue()
    assert not old.exists() and young.exists() and all(path.is_file() for path in referenced)


def test_the_periodic_sweep_task_removes_old_orphans_only(sweep_world, settings):
    from config.celery import app

    referenced, old, young = sweep_world
    assert settings.CELERY_BEAT_SCHEDULE["sweep"]["task"] == "core.sweep"
    app.loader.import_default_modules()  # what a worker does on start: autodiscovers every app's tasks
    result = app.tasks["core.sweep"].apply().get()  # by the name beat sends, run here
    assert result == {"requeued": 0, "files_removed": 1}
    assert not old.exists() and young.exists() and all(path.is_file() for path in referenced)


# --- hole 3: overlapping jobs finish, counters never lose counts, progress costs no query ------------

@pytest.fixture
def baseline(db):
    return ModelVersion.objects.create(name="baseline-test", backend=ModelVersion.BASELINE)


def test_overlapping_jobs_of_one_version_both_finish(imported, baseline):
    first = InferenceJob.objects.create(model_version=baseline, recording=imported)
    second = InferenceJob.objects.create(model_version=baseline, recording=imported)
    first_chunks = jobs.enqueue_missing(first, chunk_size=60, queue=False)
    second_chunks = jobs.enqueue_missing(second, chunk_size=60, queue=False)
    for ids in first_chunks:
        jobs.run_chunk(first.pk, ids)
    for ids in second_chunks:
        jobs.run_chunk(second.pk, ids)
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.state, second.state) == (InferenceJob.SUCCEEDED, InferenceJob.SUCCEEDED)
    assert first.done == 120 and second.done == 0  # each counts the rows it wrote
    assert Prediction.objects.filter(model_version=baseline).count() == 120


def test_chunk_counters_never_lose_a_concurrent_increment(imported, baseline, monkeypatch):
    job = InferenceJob.objects.create(model_version=baseline, recording=imported)
    first_ids, second_ids = jobs.enqueue_missing(job, chunk_size=60, queue=False)
    backend = jobs.backend_for(baseline)
    real = type(backend).predict
    nested = []

    def predict_and_let_another_chunk_finish(self, queries):
        if not nested:
            nested.append(True)
            jobs.run_chunk(job.pk, second_ids)  # another worker finishes its chunk meanwhile
        return real(self, queries)

    monkeypatch.setattr(type(backend), "predict", predict_and_let_another_chunk_finish)
    jobs.run_chunk(job.pk, first_ids)
    job.refresh_from_db()
    assert (job.chunks_done, job.done, job.skipped) == (2, 120, 2)
    assert job.state == InferenceJob.SUCCEEDED


def test_job_progress_and_list_cost_no_query_per_job(imported, baseline, role_client):
    jobs.start_job(baseline, recording=imported, inline=True)
    job = InferenceJob.objects.get()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as none:
        jobs.progress(job)
    assert len(none) == 0
    client = role_client(RESEARCHER)

    def queries(url):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    one_job = [queries(reverse("inference:job-list")), queries("/api/inference-jobs/")]
    for _ in range(5):
        InferenceJob.objects.create(model_version=baseline, recording=imported, state=InferenceJob.SUCCEEDED)
    assert [queries(reverse("inference:job-list")), queries("/api/inference-jobs/")] == one_job


# --- hole 5: uploads saved in order, PENDING jobs re-queued, uploads kept after transient errors, lengths ------

def test_upload_is_stored_after_its_job_row_under_the_jobs_folder(night_edf, media_root, make_user):
    job = imports.submit_upload(upload=SimpleUploadedFile("night.edf", night_edf.read_bytes()), cohort="Uploads",
                                user=make_user(CURATOR))
    assert job.source_path == f"uploads/{job.pk}/night.edf"
    assert (media_root / job.source_path).is_file()


def test_a_job_queued_while_the_broker_is_down_is_requeued_by_the_sweep(night_edf, django_capture_on_commit_callbacks):
    from config.celery import app

    with broker_at("redis://127.0.0.1:1/0", broker_connection_retry=False, broker_connection_max_retries=0):
        with django_capture_on_commit_callbacks(execute=True):
            job = imports.submit_upload(upload=SimpleUploadedFile("night.edf", night_edf.read_bytes()), cohort="c")
    assert ImportJob.objects.get(pk=job.pk).state == ImportJob.PENDING  # the request did not fail
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert requeue_stale_jobs(pending_after_s=0) == [("datasets.ImportJob", job.pk)]
    finally:
        app.conf.task_always_eager = False
    assert ImportJob.objects.get(pk=job.pk).state == ImportJob.SUCCEEDED


def test_a_transient_error_keeps_the_upload_for_a_retry(night_edf, media_root, monkeypatch):
    job = imports.submit_upload(upload=SimpleUploadedFile("night.edf", night_edf.read_bytes()), cohort="c")
    monkeypatch.setattr(imports, "import_psg", lambda *a, **k: (_ for _ in ()).throw(OSError("database went away")))
    job = imports.run_job(job.pk)
    assert job.state == ImportJob.FAILED and "database went away" in job.error
    assert (media_root / job.source_path).is_file()
    monkeypatch.undo()
    imports.retry(job)
    job = imports.run_job(job.pk)
    assert job.state == ImportJob.SUCCEEDED and job.recording.epoch_count == 120
    assert not (media_root / job.source_path).exists()


def test_an_import_taken_over_from_a_stalled_worker_keeps_the_upload_for_its_successor(night_edf, media_root,
                                                                                       monkeypatch):
    job = imports.submit_upload(upload=SimpleUploadedFile("night.edf", night_edf.read_bytes()), cohort="c")

    def stall_then_report(request, user=None, progress=None, guard=None):
        ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        assert ImportJob.objects.get(pk=job.pk).claim()  # a second worker takes the silent job over
        progress(0.5, 60, 120, "rendering")  # the first wakes up: its report is refused, it stops
        raise AssertionError("a worker whose report was refused went on")
    monkeypatch.setattr(imports, "import_psg", stall_then_report)
    stale = imports.run_job(job.pk)
    assert (stale.state, stale.lease, stale.error) == (ImportJob.RUNNING, 2, "")
    assert (media_root / job.source_path).is_file()  # the successor still reads it
    monkeypatch.undo()
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    done = imports.run_job(job.pk)
    assert done.state == ImportJob.SUCCEEDED and done.recording.epoch_count == 120
    assert not (media_root / job.source_path).exists()


def test_an_input_error_deletes_the_upload(tmp_path, media_root):
    job = imports.submit_upload(upload=SimpleUploadedFile("notes.edf", b"not a recording\n" * 40), cohort="c")
    job = imports.run_job(job.pk)
    assert job.state == ImportJob.FAILED and "not an EDF or BDF file" in job.error
    assert stored_files(media_root) == []


def test_names_longer_than_their_columns_get_a_clear_message(night_edf):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="cohort name is 150 characters long; at most 100 are allowed"):
        call_command("import_psg", str(night_edf), "--cohort", "c" * 150, verbosity=0)
    with pytest.raises(imports.InputError, match="source path is 600 characters long; at most 500"):
        imports.create_job(source_path="/" + "p" * 599, source_name="x.edf", cohort="c")
    assert ImportJob.objects.count() == 0 and Recording.objects.count() == 0


def test_upload_names_longer_than_the_columns_still_import(make_user, night_edf):
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    response = api.post("/api/imports/", {"file": SimpleUploadedFile("n" * 300 + ".edf", night_edf.read_bytes()),
                                          "cohort": "c"}, format="multipart")
    assert response.status_code == 201, response.content
    job = ImportJob.objects.get()
    assert len(job.source_name) <= 255 and job.source_name.endswith(".edf") and len(job.source_path) <= 500


# --- hole 6: what a rater reads around the signal --------------------------------------------------

IDENTIFYING = ("SC4001E0", "ab" * 32, "/data/sleep-edf", "unscored before lights off")


def test_raters_see_a_pseudonym_and_no_provenance(access_world, role_client):
    from core.access import pseudonym

    recording = access_world.recording
    rater = role_client(RATER)
    assign_rater(recording, f"{RATER}-user")
    pages = [reverse("datasets:recording", args=[recording.pk]), reverse("datasets:epoch", args=[recording.pk, 1]),
             reverse("datasets:recording-list"), reverse("datasets:cohort", args=[recording.cohort_id])]
    for url in pages:
        html = rater.get(url).content.decode()
        assert pseudonym(recording.pk) in html, url
        assert not [s for s in IDENTIFYING if s in html], url
    for url in (f"/api/recordings/{recording.pk}/", "/api/recordings/", f"/api/epochs/?recording={recording.pk}"):
        text = rater.get(url).content.decode()
        assert not [s for s in IDENTIFYING if s in text], url
    data = rater.get(f"/api/recordings/{recording.pk}/").json()
    assert data["name"] == pseudonym(recording.pk)
    assert not {"sha256", "source_filename", "hypnogram_source", "hypnogram_notes", "start_time"} & set(data)
    rater.logout()
    researcher = role_client(RESEARCHER)
    html = researcher.get(pages[0]).content.decode()
    assert all(s in html for s in IDENTIFYING)
    assert researcher.get(f"/api/recordings/{recording.pk}/").json()["sha256"] == "ab" * 32


def test_pseudonyms_are_stable_and_distinct():
    from core.access import pseudonym

    assert pseudonym(1) == pseudonym(1) and pseudonym(1) != pseudonym(2)
    assert "1" != pseudonym(1)[-1:] or len({pseudonym(i) for i in range(200)}) == 200


# --- hole 9: evaluation needs reference and outputs ---------------------------------------------

def test_evaluation_needs_both_reference_and_model_outputs(access_world, make_user, client):
    user = make_user(RATER, "outputs-only")
    user.groups.clear()
    group = Group.objects.create(name="outputs-only")
    group.permissions.set(Permission.objects.filter(codename__in=["view_prediction", "view_recording", "view_epoch",
                                                                   "view_cohort", "view_modelversion"]))
    user.groups.add(group)
    client.force_login(user)
    assert client.get(reverse("inference:evaluation")).status_code == 403
    query = f"?cohort={access_world.cohort.name}&model={access_world.version.name}"
    assert client.get(f"/api/evaluation/{query}").status_code == 403
    assert client.get("/api/predictions/").status_code == 200  # outputs alone stay readable


@pytest.mark.parametrize("codenames, sees_link", [
    (["view_inferencejob", "view_prediction"], False),  # model outputs without the reference
    (["view_inferencejob", "view_reference_stage"], False),  # the reference without model outputs
    (["view_inferencejob", "view_prediction", "view_reference_stage"], True),
])
def test_the_job_list_links_evaluation_only_where_the_page_opens(access_world, make_user, client, codenames, sees_link):
    user = make_user(RATER, "custom")
    user.groups.clear()
    group = Group.objects.create(name="custom")
    group.permissions.set(Permission.objects.filter(codename__in=codenames))
    user.groups.add(group)
    client.force_login(user)
    page = client.get(reverse("inference:job-list"))
    assert page.status_code == 200
    assert (f'href="{reverse("inference:evaluation")}"' in page.content.decode()) is sees_link
    assert client.get(reverse("inference:evaluation")).status_code == (200 if sees_link else 403)


# --- hole 10: deleting a cohort in use ---------------------------------------------------------

def test_deleting_a_cohort_with_recordings_says_why(access_world, make_user):
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    response = api.delete(f"/api/cohorts/{access_world.cohort.pk}/")
    assert response.status_code == 409
    assert "still has 1 recording(s)" in response.json()["detail"]


def test_api_filters_are_in_the_schema_and_malformed_values_name_the_parameter(access_world, role_client):
    client = role_client(RESEARCHER)
    schema = client.get("/api/schema/?format=json").json()
    parameters = {p["name"] for p in schema["paths"]["/api/epochs/"]["get"]["parameters"]}
    assert {"recording", "index_min", "index_max"} <= parameters
    assert {"model_version", "status", "recording"} <= {p["name"] for p in schema["paths"]["/api/predictions/"]["get"]["parameters"]}
    response = client.get("/api/epochs/?recording=abc")
    assert response.status_code == 400 and "recording" in response.json()


# The campaign actions that read their query parameters by hand: (path, method) -> the parameters
HAND_FILTERED = {
    ("/api/scoring/campaigns/{id}/labels/", "get"): {"recording", "rater", "item", "limit", "offset"},
    ("/api/scoring/campaigns/{id}/history/", "get"): {"recording", "rater", "item"},
    ("/api/scoring/campaigns/{id}/hypnogram/", "get"): {"recording"},
    ("/api/scoring/campaigns/{id}/ahead/", "post"): {"count"},
    ("/api/ratings/campaigns/{id}/ratings/", "get"): {"rater", "item", "limit", "offset"},
    ("/api/ratings/campaigns/{id}/history/", "get"): {"rater", "item"},
    ("/api/ratings/campaigns/{id}/ahead/", "post"): {"count"},
}


def test_campaign_action_parameters_are_in_the_schema_and_malformed_values_name_them(access_world, role_client):
    client = role_client(RESEARCHER)
    paths = client.get("/api/schema/?format=json").json()["paths"]
    for (path, method), expected in HAND_FILTERED.items():
        parameters = {p["name"]: p for p in paths[path][method]["parameters"] if p["in"] == "query"}
        assert set(parameters) == expected, path
        assert all(p["schema"]["type"] == "integer" for p in parameters.values()), path
    hypnogram = paths["/api/scoring/campaigns/{id}/hypnogram/"]["get"]["parameters"]
    assert [p.get("required") for p in hypnogram if p["name"] == "recording"] == [True]
    assert not [p for p in paths["/api/scoring/campaigns/{id}/labels/"]["post"]["parameters"] if p["in"] == "query"]

    scoring = f"/api/scoring/campaigns/{access_world.campaign.pk}"
    rating = f"/api/ratings/campaigns/{access_world.rating_campaign.pk}"
    for url, parameter in ((f"{scoring}/labels/?item=abc", "item"), (f"{scoring}/labels/?recording=x1", "recording"),
                           (f"{scoring}/history/?rater=abc", "rater"), (f"{scoring}/hypnogram/", "recording"),
                           (f"{scoring}/hypnogram/?recording=abc", "recording"),
                           (f"{rating}/ratings/?rater=abc", "rater"), (f"{rating}/history/?item=abc", "item")):
        response = client.get(url)
        assert response.status_code == 400 and parameter in response.json(), url
    item = access_world.items[1].pk
    assert len(client.get(f"{scoring}/labels/?item={item}").json()["results"]) == 2  # a well-formed value filters
    assert client.get(f"{scoring}/history/?item={item}&rater=0").json() == []
    rater = APIClient()
    rater.force_authenticate(access_world.rater)
    for url in (f"{scoring}/ahead/?count=abc", f"{rating}/ahead/?count=-1"):
        response = rater.post(url)
        assert response.status_code == 400 and "count" in response.json(), url
    assert rater.get(f"{scoring}/labels/?rater=abc").json().keys() == {"rater"}


def test_job_and_evaluation_pages_show_the_settings_hash(access_world, role_client):
    client = role_client(RESEARCHER)
    version = access_world.version
    assert version.settings_hash in client.get(reverse("inference:job", args=[access_world.job.pk])).content.decode()
    query = f"?cohort={access_world.cohort.pk}&model={version.name}&reference=hypnogram"
    assert version.settings_hash[:12] in client.get(reverse("inference:evaluation") + query).content.decode()


def test_one_registered_scope_narrows_pages_api_and_images(access_world, role_client, monkeypatch):
    from core import access
    from datasets.models import Cohort

    other = Recording.objects.create(cohort=Cohort.objects.create(name="Other"), name="other-night", sha256="cd" * 32,
                                     duration_s=90, mains_hz=50, signal_file=access_world.recording.signal_file)
    monkeypatch.setattr(access, "_RECORDING_SCOPES", [])
    access.register_recording_scope(lambda user: None if user.has_perm(access.SEE_REFERENCE) else Q(pk=other.pk))
    rater = role_client(RATER)
    hidden = access_world.recording
    assert rater.get(reverse("datasets:recording", args=[hidden.pk])).status_code == 404
    assert rater.get(reverse("datasets:epoch", args=[hidden.pk, 1])).status_code == 404
    assert rater.get(reverse("datasets:image", args=[access_world.image.sha256])).status_code == 404
    assert rater.get(f"/api/recordings/{hidden.pk}/").status_code == 404
    assert [r["id"] for r in rater.get("/api/recordings/").json()["results"]] == [other.pk]
    assert rater.get(f"/api/epochs/?recording={hidden.pk}").json()["count"] == 0
    rater.logout()
    assert role_client(RESEARCHER).get(reverse("datasets:recording", args=[hidden.pk])).status_code == 200


def test_mains_frequency_outside_the_range_is_refused(make_user, night_edf):
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    response = api.post("/api/imports/", {"file": SimpleUploadedFile("night.edf", night_edf.read_bytes()),
                                          "cohort": "c", "mains_hz": 500}, format="multipart")
    assert response.status_code == 400 and "500 Hz is outside 40–70 Hz" in response.json()["detail"]
    assert ImportJob.objects.count() == 0


@pytest.mark.parametrize("mains_hz", [500, 30])
def test_the_import_page_refuses_a_mains_frequency_outside_the_range(make_user, night_edf, client, media_root,
                                                                     mains_hz):
    client.force_login(make_user(CURATOR))
    response = client.post(reverse("datasets:import-new"), {
        "file": SimpleUploadedFile("night.edf", night_edf.read_bytes()), "cohort": "c", "mains_hz": mains_hz,
        "hypnogram_format": ""})
    assert response.status_code == 200  # the form again, with the message
    assert f"mains frequency {mains_hz} Hz is outside 40–70 Hz" in response.content.decode()
    assert ImportJob.objects.count() == 0 and stored_files(media_root) == []


def test_the_import_command_refuses_a_mains_frequency_outside_the_range(night_edf):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="mains frequency 500 Hz is outside 40–70 Hz"):
        call_command("import_psg", str(night_edf), "--cohort", "c", "--mains-hz", "500", verbosity=0)
    assert ImportJob.objects.count() == 0 and Recording.objects.count() == 0
    call_command("import_psg", str(night_edf), "--cohort", "c", "--mains-hz", "60", verbosity=0)  # in range: imports
    assert Recording.objects.get().mains_hz == 60


@pytest.mark.parametrize("seconds", [-50, float("nan"), 1e9])
def test_the_work_queue_refuses_absurd_time_spent(seconds, make_user, db):
    """The service refuses what the API's serializer may let through (CLI, other callers)."""
    import uuid

    from annotation.services import queue
    from annotation.services.campaigns import create_campaign
    from core.exceptions import InputError
    from core.roles import RATER
    from tests.factories import make_recording

    rater = make_user(RATER, "timed")
    campaign = create_campaign("timed", recordings=[make_recording("T", "t", ["N2", "N2"])], raters=[rater], overlap=1)
    item, _ = queue.next_item(campaign, rater)
    with pytest.raises(InputError, match="seconds_spent must be between 0 and 86400"):
        queue.submit_label(campaign, rater, item, stage="N2", client_id=uuid.uuid4(), seconds_spent=seconds)


def test_fetch_of_a_queryset_that_can_match_nothing_is_empty(db):
    """Raw rows of `pk__in=[]` (Django raises EmptyResultSet instead of writing its SQL): none, not an error."""
    from core.services.rows import fetch
    from datasets.models import Epoch

    assert fetch(Epoch.objects.filter(pk__in=[]).values_list("pk", "stage")) == []
