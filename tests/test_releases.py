"""Releases: MASS-EX layout, numbering and bytes, the round trip through import_massex, reproducible
builds and archives, the extra tables, changelogs, failed and cancelled builds leaving nothing behind."""
import csv
import hashlib
import io
import json
import tarfile
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from annotation.models import Label, Reservation
from annotation.services.campaigns import create_campaign
from core.models import ChangeRecord
from core.roles import RATER
from core.services import audit
from datasets.models import Epoch
from datasets.services.massex import ranks
from inference.models import ModelVersion, Prediction
from releases.models import Release
from releases.services import build as builds
from releases.services import export, provenance
from tests.factories import make_recording

STAGES = ["W", "W", "unscored", "N1", "N2", "N2", "unscored", "N3", "R", "N2"]
TRICKY = 'Spindles at 3.2 s, 13 Hz; K-complex "frontal",\nthen LAMF, as in "N2.2"'


def night(name="01-03-0006 PSG", cohort="Release", stages=STAGES):
    recording = make_recording(cohort, name, stages)
    epochs = list(recording.epochs.order_by("index"))
    for epoch, n in zip(epochs, ranks(epochs)):
        epoch.massex_n = n
    Epoch.objects.bulk_update(epochs, ["massex_n"])
    return recording, epochs


def built(name="mass-ex", version="1.0.0", **kwargs) -> Release:
    release = builds.create_release(name, version, queue=False, **{"cohorts": ["Release"], **kwargs})
    release = builds.build_release(release.pk)
    assert release.state == Release.SUCCEEDED, release.error
    return release


def read(release, path) -> bytes:
    with default_storage.open(release.files.get(path=path).storage_name, "rb") as handle:
        return handle.read()


def hashes(release) -> dict:
    return dict(release.files.values_list("path", "sha256"))


def test_mass_ex_files_have_the_layout_numbering_and_bytes_of_the_spec(db, media_root):
    recording, epochs = night()
    epochs[4].reference_rules, epochs[4].reference_rationale = ["N2.1", "N2.2"], TRICKY
    epochs[0].reference_rules = ["W.1", "W.2"]
    Epoch.objects.bulk_update(epochs, ["reference_rules", "reference_rationale"])
    release = built()
    coarse = read(release, "annotations/coarse/01-03-0006.csv").decode("utf-8")
    assert coarse.splitlines()[:4] == ["custom_id,Subject,N,Stage,applicable_rules",
                                       '01-03-0006#0_W,01-03-0006,0,W,"W.1, W.2"',
                                       "01-03-0006#1_W,01-03-0006,1,W,", "01-03-0006#2_N1,01-03-0006,2,N1,"]
    rows = list(csv.DictReader(io.StringIO(coarse, newline="")))
    assert [(int(r["N"]), r["Stage"]) for r in rows] == list(enumerate(s for s in STAGES if s != "unscored"))
    fine = read(release, "annotations/fine/01-03-0006.csv").decode("utf-8")
    assert fine.startswith("custom_id,Subject,N,Stage,reasoning_text,applicable_rules\n")
    # the authors' training-data script: csv.DictReader in UTF-8, N as int, rules split on commas
    (row,) = csv.DictReader(io.StringIO(fine, newline=""))
    assert int(row["N"]) == 3 and row["Stage"] == "N2" and row["custom_id"] == "01-03-0006#3_N2"
    assert row["reasoning_text"] == TRICKY and [r.strip() for r in row["applicable_rules"].split(",")] == ["N2.1", "N2.2"]
    assert release.epochs == 8 and release.files.filter(archive=True).count() == 2
    card = read(release, "README.md").decode()
    assert card.startswith("---\nlicense: cc-by-nc-4.0\n") and "config_name: fine" in card and "| N2 | 3 |" in card
    manifest = read(release, "MANIFEST.sha256").decode().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in manifest}
    assert listed == {p: h for p, h in hashes(release).items()
                      if p != "MANIFEST.sha256" and not p.endswith((".tar.gz", ".zip"))}
    assert "| N2.1 |" in read(release, "rules.md").decode()


def test_round_trip_through_import_massex_gives_the_same_bytes(db, media_root, tmp_path):
    night()
    night("01-03-0007 PSG", stages=["N2", "unscored", "R", "R", "W"])
    folder = tmp_path / "mass-ex"
    for kind, rows in {
        "fine": {"01-03-0006": [(3, "N2", TRICKY, "N2.1, N2.2")]},
        "coarse": {"01-03-0006": [(n, s, None, "W.1" if s == "W" else "") for n, s in
                                  enumerate(s for s in STAGES if s != "unscored")],
                   "01-03-0007": [(0, "N2", None, "N2.2"), (1, "R", None, "R.1"), (2, "R", None, "R.2"), (3, "W", None, "")]},
    }.items():
        (folder / "annotations" / kind).mkdir(parents=True)
        for subject, entries in rows.items():
            with open(folder / "annotations" / kind / f"{subject}.csv", "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(export.FINE if kind == "fine" else export.COARSE)
                for n, stage, text, rules in entries:
                    head = [f"{subject}#{n}_{stage}", subject, n, stage]
                    writer.writerow(head + ([text] if kind == "fine" else []) + [rules])
    call_command("import_massex", str(folder), "--cohort", "Release", verbosity=0)
    release = built()
    for path in sorted(folder.rglob("*.csv")):
        relative = path.relative_to(folder).as_posix()
        if relative.startswith("annotations/coarse/01-03-0006"):
            continue  # the fine epoch's rules come from fine (fine wins), so coarse row N=3 differs
        assert read(release, relative) == path.read_bytes(), relative
    assert Epoch.objects.get(recording__name="01-03-0006 PSG", massex_n=3).reference_rationale == TRICKY


def _with_campaigns(make_user):
    recording, epochs = night()
    raters = [make_user(RATER, f"scorer{i}") for i in range(3)]
    campaign = create_campaign("Release scoring", recordings=[recording], raters=raters, overlap=3)
    for item in campaign.items.order_by("position"):
        for slot, rater in enumerate(raters):
            Reservation.objects.create(item=item, slot=slot, rater=rater, labelled=True, expires_at="2100-01-01T00:00Z")
            stage = item.epoch.stage if slot < 2 else "N1"
            Label.objects.create(item=item, rater=rater, stage=stage, client_id=uuid.uuid4())
    version = ModelVersion.objects.create(name="secret-model-v7", backend="baseline")
    Prediction.objects.bulk_create([Prediction(epoch=e, model_version=version, status=Prediction.OK, stage="N2",
                                               rule_ids=["N2.1"], rationale="spindle, 13 Hz", version_hash="ab" * 32)
                                    for e in epochs])
    return campaign, version, raters


def test_tables_consensus_and_pseudonymous_raters(make_user, db, media_root):
    campaign, version, raters = _with_campaigns(make_user)
    release = built(stage_source=Release.CONSENSUS, scoring_campaigns=[campaign.name], model_versions=[version.name])
    labels = list(csv.DictReader(io.StringIO(read(release, "tables/stage_labels.csv").decode(), newline="")))
    assert len(labels) == 3 * 8 and {r["rater"] for r in labels} == {"rater-01", "rater-02", "rater-03"}
    parquet = pq.read_table(io.BytesIO(read(release, "tables/stage_labels.parquet"))).to_pylist()
    assert [r["stage"] for r in parquet] == [r["stage"] for r in labels]
    consensus = list(csv.DictReader(io.StringIO(read(release, "tables/consensus.csv").decode(), newline="")))
    assert all(float(r["agreement"]) == pytest.approx(2 / 3) or r["stage"] == "N1" for r in consensus)
    predictions = pq.read_table(io.BytesIO(read(release, "tables/predictions.parquet"))).to_pylist()
    assert len(predictions) == 10 and predictions[0]["version_hash"] == "ab" * 32
    for row in release.files.filter(archive=False):
        text = read(release, row.path)
        assert not any(r.username.encode() in text for r in raters), row.path
    agreement = json.loads(read(release, "agreement.json"))
    assert agreement["scoring"][campaign.name]["fleiss_kappa"]["n_items"] == 8


def test_builds_are_byte_reproducible_archives_included(make_user, db, media_root):
    campaign, version, _ = _with_campaigns(make_user)
    release = built(stage_source=Release.ADJUDICATED, scoring_campaigns=[campaign.name], model_versions=[version.name])
    first, provenance_bytes = hashes(release), read(release, "provenance.json")
    assert json.loads(provenance_bytes)["release"]["scoring_campaigns"] == [campaign.name]
    with transaction.atomic():  # a change outside the release's inputs, and the code version read afresh
        audit.record(ChangeRecord.UPDATE, object_type="auth.user", object_id="1", after={})
    provenance.code_version.cache_clear()
    Release.objects.filter(pk=release.pk).update(state=Release.PENDING)  # the same release built again
    assert builds.build_release(release.pk).state == Release.SUCCEEDED and hashes(release) == first
    assert read(release, "provenance.json") == provenance_bytes
    tar = tarfile.open(fileobj=io.BytesIO(read(release, "mass-ex-1.0.0.tar.gz")))
    members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members) and all(m.mtime == 0 for m in members)
    assert "mass-ex-1.0.0/annotations/coarse/01-03-0006.csv" in tar.getnames()
    archive = zipfile.ZipFile(io.BytesIO(read(release, "mass-ex-1.0.0.zip")))
    assert archive.read("mass-ex-1.0.0/MANIFEST.sha256") == read(release, "MANIFEST.sha256")


def test_a_new_version_has_a_changelog_against_the_previous(db, media_root):
    recording, epochs = night()
    built()
    Epoch.objects.filter(pk=epochs[3].pk).update(stage="N2")
    Epoch.objects.filter(pk=epochs[4].pk).update(reference_rationale="spindle")
    Epoch.objects.filter(pk=epochs[2].pk).update(stage="W")  # an unscored epoch now scored: N shifts after it
    second = built(version="1.1.0")
    assert second.previous.version == "1.0.0"
    assert second.changelog["added"] == 1 and second.changelog["changed_rationale"] >= 1
    assert "Epochs added: 1" in read(second, "CHANGELOG.md").decode()
    with pytest.raises(Exception, match="already exists"):
        builds.create_release("mass-ex", "1.1.0", cohorts=["Release"], queue=False)
    with pytest.raises(Exception, match="not a semantic version"):
        builds.create_release("mass-ex", "1.1", cohorts=["Release"], queue=False)


def _stored(release_pk):
    """Any file left under the release's storage folder (empty folders aside: each build has its own)."""
    def files(folder):
        directories, names = default_storage.listdir(folder)
        return bool(names) or any(files(f"{folder}/{d}") for d in directories)

    folder = f"releases/{release_pk}"
    return default_storage.exists(folder) and files(folder)


def test_failed_and_cancelled_builds_leave_nothing(db, media_root, monkeypatch):
    night()
    release = builds.create_release("mass-ex", "1.0.0", cohorts=["Release"], queue=False)
    stored = []
    real_store = builds._store

    def store_then_fail(release, root, path, archive):
        real_store(release, root, path, archive)
        stored.append(path)
        if len(stored) == 3:
            raise OSError("disk full")
    monkeypatch.setattr(builds, "_store", store_then_fail)
    release = builds.build_release(release.pk)
    assert release.state == Release.FAILED and "disk full" in release.error
    assert not release.files.exists() and not _stored(release.pk)
    monkeypatch.setattr(builds, "_store", real_store)

    cancelled = builds.create_release("mass-ex", "1.0.1", cohorts=["Release"], queue=False)
    real_write = export.ReleaseContent.write_recording

    def cancel_midway(self, *args):
        Release.objects.get(pk=cancelled.pk).cancel()
        return real_write(self, *args)
    monkeypatch.setattr(export.ReleaseContent, "write_recording", cancel_midway)
    cancelled = builds.build_release(cancelled.pk)
    assert cancelled.state == Release.CANCELLED and not cancelled.files.exists() and not _stored(cancelled.pk)


def test_a_stalled_build_taken_over_leaves_its_successors_files_alone(db, media_root, monkeypatch, settings):
    """A worker silent past the lease is taken over; when it wakes it stops, deleting and writing nothing."""
    night()
    reference = hashes(built(version="0.9.0"))
    release = builds.create_release("mass-ex", "1.0.0", cohorts=["Release"], queue=False)
    real_write = export.ReleaseContent.write_recording
    taken_over = []

    def stall_then_wake(self, *args):
        if not taken_over:  # this worker stalls here; another one takes the build over and finishes it
            taken_over.append(True)
            Release.objects.filter(pk=release.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
            successor = builds.build_release(release.pk)
            assert successor.state == Release.SUCCEEDED and successor.lease == 2
        return real_write(self, *args)
    monkeypatch.setattr(export.ReleaseContent, "write_recording", stall_then_wake)
    settings.JOB_LEASE_SECONDS = 60
    stale = builds.build_release(release.pk)  # the first worker goes on after the successor finished
    assert taken_over and stale.state == Release.SUCCEEDED and stale.error == ""
    stored = {path: digest for path, digest in hashes(stale).items() if path.endswith(".csv")}
    assert stored and stored == {path: digest for path, digest in reference.items() if path.endswith(".csv")}
    for row in stale.files.all():
        assert default_storage.exists(row.storage_name), row.path


def test_release_pages_download_and_api(make_user, client, db, media_root):
    from core.roles import CURATOR, RESEARCHER

    night()
    release = built(description="first")
    client.force_login(make_user(RESEARCHER, "res"))
    page = client.get(f"/releases/{release.pk}/").content.decode()
    assert "mass-ex-1.0.0.tar.gz" in page and "annotations/coarse/01-03-0006.csv" in page
    response = client.get(f"/releases/{release.pk}/files/mass-ex-1.0.0.zip")
    assert response.status_code == 200 and b"".join(response.streaming_content) == read(release, "mass-ex-1.0.0.zip")
    assert client.get(f"/releases/{release.pk}/files/nope.csv").status_code == 404
    client.force_login(make_user(RATER, "rat"))
    assert client.get(f"/releases/{release.pk}/files/mass-ex-1.0.0.zip").status_code == 403
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(make_user(CURATOR, "cur"))
    made = api.post("/api/releases/", {"name": "mass-ex", "version": "2.0.0", "cohorts": ["Release"]}, format="json")
    assert made.status_code == 201 and made.json()["previous"] == "1.0.0"
    assert api.post(f"/api/releases/{release.pk}/cancel/").status_code == 409  # built: immutable
    listed = api.get(f"/api/releases/{release.pk}/").json()["files"]
    coarse = next(f for f in listed if f["path"] == "annotations/coarse/01-03-0006.csv")
    body = b"".join(api.get(coarse["url"]).streaming_content)
    assert body == read(release, coarse["path"]) and hashlib.sha256(body).hexdigest() == coarse["sha256"]
    bad = api.post("/api/releases/", {"name": "mass-ex", "version": "2.0.0", "cohorts": ["Release"]}, format="json")
    assert bad.status_code == 400 and "already exists" in bad.json()["detail"]


# --- write_json: orjson's speed, the standard library's bytes ---------------------------------------------

def json_text(value) -> str:
    """What export.write_json writes, read back."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        export.write_json(Path(folder) / "value.json", value)
        return (Path(folder) / "value.json").read_bytes().decode()


_SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
            | st.floats(min_value=-1e-3, max_value=1e-3) | st.text(max_size=8))
_DOCUMENTS = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=4)
                          | st.dictionaries(st.integers(-3, 3), inner, max_size=2), max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(_DOCUMENTS)
def test_write_json_is_the_standard_librarys_indented_text_byte_for_byte(value):
    assert json_text(value) == json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def test_write_json_writes_other_types_as_the_standard_library_does():
    from dataclasses import dataclass
    from datetime import date, datetime
    from enum import Enum, IntEnum

    import numpy as np

    @dataclass
    class Point:
        x: int

    Colour = Enum("Colour", "RED")
    Level = IntEnum("Level", "LOW")
    for value in ({"when": datetime(2026, 1, 2, 3, 4, 5)}, [date(2026, 1, 2)], {"p": Point(1)}, [Colour.RED],
                  {"level": Level.LOW}, [np.float64(0.1), np.int64(3)], {"id": uuid.UUID(int=7)}):
        assert json_text(value) == json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False,
                                              default=str) + "\n", value


def test_a_release_build_process_does_not_load_the_heavy_libraries_before_it_needs_them():
    """django.setup() and the build's modules leave pandas, scikit-learn, statsmodels, scipy and pyarrow out (imported
    where used: ~250 MB a release build would carry through its agreement figures otherwise)."""
    import os
    import subprocess
    import sys

    heavy = ("pandas", "sklearn", "statsmodels", "scipy.stats", "scipy.signal", "pyarrow")
    code = ("import sys, django; django.setup(); import releases.services.build, annotation.services.dashboard, "
            "ratings.services.statistics; print(sorted(m for m in %r if m in sys.modules))" % (heavy,))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
