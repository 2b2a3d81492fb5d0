"""Release provenance: provenance.json holds the release's settings, the code version, the input files'
hashes, the rubric versions, the last change record and the answer counts; it is in the manifest and the
archives, changes when an answer does, and the release page and API show it."""
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
import uuid
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from annotation.models import Adjudication, Label
from core.models import ChangeRecord
from core.roles import CURATOR
from core.services import audit
from datasets.services.storage import save_array
from ratings.models import Rating
from ratings.services.campaigns import create_rating_campaign
from ratings.services.rubric import edit_rubric
from releases.models import Release
from releases.services import build as builds
from releases.services import provenance
from tests.test_releases import _with_campaigns, built, hashes, night, read


@pytest.fixture(autouse=True)
def fresh_code_version():
    provenance.code_version.cache_clear()
    yield
    provenance.code_version.cache_clear()


def canonical_sha256(dimensions) -> str:
    text = json.dumps(dimensions, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def git_head():
    if not (Path(settings.BASE_DIR) / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def change(object_type: str, object_id) -> ChangeRecord:
    with transaction.atomic():
        return audit.record(ChangeRecord.UPDATE, object_type=object_type, object_id=str(object_id), after={})


def world(make_user):
    """Two recordings (one with stored signals), a scoring campaign with a revision, a re-score and
    adjudications, a rating campaign on rubric version 2 with a revision and a re-score."""
    campaign, version, raters = _with_campaigns(make_user)  # 3 raters x 8 items, first pass
    recording = campaign.recordings.get()
    recording.signal_file = save_array(np.arange(6000, dtype=np.float32).reshape(2, 3000))[0]
    recording.save()
    night("01-03-0007 PSG", stages=["N2", "R", "W"])  # its signal file is not in storage
    first = Label.objects.filter(item__campaign=campaign).order_by("pk").first()
    Label.objects.create(item=first.item, rater=first.rater, stage="W", revision=2, replaces=first,
                         client_id=uuid.uuid4())
    Label.objects.create(item=first.item, rater=first.rater, stage="N2", rescore=True, client_id=uuid.uuid4())
    items = list(campaign.items.order_by("position"))
    for item in items[:2]:
        Adjudication.objects.create(item=item, stage="N2", reason="spindles", adjudicator=raters[0])

    rating = create_rating_campaign("Release rating", cohorts=["Release"], model_versions=[version.name],
                                    raters=raters, overlap=1, sample_size=3)
    v1 = rating.rubric.dimensions
    v2 = [dict(d) for d in v1]
    v2[0] = {**v2[0], "title": "Accuracy of the stated features"}
    edit_rubric(rating, v2)
    rubric = rating.rubric
    scores = dict.fromkeys(rubric.keys, 4)
    given = [Rating.objects.create(item=item, rater=rater, rubric=rubric, scores=scores, client_id=uuid.uuid4())
             for item, rater in zip(rating.items.order_by("position"), raters)]
    Rating.objects.create(item=given[0].item, rater=given[0].rater, rubric=rubric, scores={**scores, rubric.keys[0]: 2},
                          revision=2, replaces=given[0], client_id=uuid.uuid4())
    Rating.objects.create(item=given[1].item, rater=given[1].rater, rubric=rubric, scores=scores, rescore=True,
                          client_id=uuid.uuid4())
    return campaign, rating, version, recording, (v1, v2)


def test_provenance_holds_settings_code_inputs_rubrics_last_change_and_counts(make_user, db, media_root):
    campaign, rating, version, recording, (v1, v2) = world(make_user)
    last = change("annotation.label", Label.objects.order_by("pk").last().pk)
    change("auth.user", 1)  # not an input of a release: later, yet not the last change included
    release = built(stage_source=Release.ADJUDICATED, scoring_campaigns=[campaign.name],
                    rating_campaigns=[rating.name], model_versions=[version.name], description="with provenance")
    text = read(release, "provenance.json").decode("utf-8")
    document = json.loads(text)
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert set(document) == {"release", "code", "inputs", "rubrics", "last_change_record", "answers"}  # no build time
    assert tempfile.gettempdir() not in text

    assert document["release"] == {
        "name": "mass-ex", "version": "1.0.0", "description": "with provenance", "license_id": "cc-by-nc-4.0",
        "license_text": "", "stage_source": "adjudicated", "include_images": False, "previous": None,
        "cohorts": ["Release"], "scoring_campaigns": [campaign.name], "rating_campaigns": [rating.name],
        "model_versions": [{"name": "secret-model-v7", "backend": "baseline", "settings_hash": version.settings_hash}]}
    assert document["code"] == {"package": "sleepreview", "package_version": metadata.version("sleepreview"),
                                "git_commit": git_head()}

    with default_storage.open(recording.signal_file, "rb") as handle:
        signal_sha = hashlib.sha256(handle.read()).hexdigest()
    subjects = sorted(f.path.rsplit("/", 1)[-1].removesuffix(".csv")
                      for f in release.files.filter(path__startswith="annotations/coarse/"))
    inputs = document["inputs"]
    assert [i["subject"] for i in inputs] == subjects and len(subjects) == 2
    by_source = {i["source_psg_sha256"]: i for i in inputs}
    assert by_source[recording.sha256]["signal_file_sha256"] == signal_sha
    other = Release.objects.get(pk=release.pk).cohorts.get().recordings.exclude(pk=recording.pk).get()
    assert by_source[other.sha256]["signal_file_sha256"] is None  # not in storage: named, not invented
    assert {i["preparation_profile"] for i in inputs} == {"sleepvlm-v1"}

    assert canonical_sha256(v1) != canonical_sha256(v2)
    assert document["rubrics"] == {rating.name: [
        {"version": 1, "dimensions_sha256": canonical_sha256(v1), "ratings": 0},
        {"version": 2, "dimensions_sha256": canonical_sha256(v2), "ratings": 4}]}
    assert document["last_change_record"] == last.pk
    assert document["answers"] == {
        "scoring": {campaign.name: {"labels": {"current_first_pass": 24, "current_rescore": 1, "versions": 26},
                                    "adjudications": 2}},
        "rating": {rating.name: {"ratings": {"current_first_pass": 3, "current_rescore": 1, "versions": 5}}}}

    manifest = dict(reversed(line.split("  ", 1)) for line in read(release, "MANIFEST.sha256").decode().splitlines())
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert manifest["provenance.json"] == digest == hashes(release)["provenance.json"]
    tar = tarfile.open(fileobj=io.BytesIO(read(release, "mass-ex-1.0.0.tar.gz")))
    assert tar.extractfile("mass-ex-1.0.0/provenance.json").read() == text.encode()
    archive = zipfile.ZipFile(io.BytesIO(read(release, "mass-ex-1.0.0.zip")))
    assert archive.read("mass-ex-1.0.0/provenance.json") == text.encode()


def test_a_new_answer_changes_the_provenance_of_the_next_build(make_user, db, media_root):
    campaign, _, _ = _with_campaigns(make_user)
    release = built(scoring_campaigns=[campaign.name])
    before = json.loads(read(release, "provenance.json"))
    item = campaign.items.order_by("position").first()
    with transaction.atomic():
        label = Label.objects.create(item=item, rater=campaign.raters.order_by("pk").first(), stage="R", rescore=True,
                                     client_id=uuid.uuid4())
        made = audit.record(ChangeRecord.CREATE, label, after=audit.snapshot(label))
    Release.objects.filter(pk=release.pk).update(state=Release.PENDING)
    assert builds.build_release(release.pk).state == Release.SUCCEEDED
    after = json.loads(read(release, "provenance.json"))
    assert before["last_change_record"] != made.pk and after["last_change_record"] == made.pk
    assert after["answers"]["scoring"][campaign.name]["labels"] == {
        **before["answers"]["scoring"][campaign.name]["labels"], "current_rescore": 1, "versions": 25}


def test_code_version_without_git_or_installed_package(db, monkeypatch, settings, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "sleepreview"\nversion = "9.8.7"\n')
    settings.BASE_DIR = tmp_path  # no .git: no commit

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(provenance.metadata, "version", not_installed)
    assert provenance.code_version() == {"package": "sleepreview", "package_version": "9.8.7", "git_commit": None}
    (tmp_path / ".git").mkdir()  # a broken checkout: git fails, the commit stays unknown
    provenance.code_version.cache_clear()
    assert provenance.code_version()["git_commit"] is None


def test_release_page_and_api_show_the_provenance(make_user, client, db, media_root):
    campaign, rating, version, recording, _ = world(make_user)
    last = change("ratings.rating", Rating.objects.order_by("pk").last().pk)
    release = built(scoring_campaigns=[campaign.name], rating_campaigns=[rating.name], model_versions=[version.name])
    document = json.loads(read(release, "provenance.json"))
    curator = make_user(CURATOR, "cur")
    client.force_login(curator)
    page = client.get(f"/releases/{release.pk}/").content.decode()
    assert 'id="provenance"' in page and f'<a href="/audit/">#{last.pk}</a>' in page
    assert f"sleepreview {metadata.version('sleepreview')}" in page
    assert (document["code"]["git_commit"] or "") in page
    for entry in document["inputs"]:
        assert entry["subject"] in page and entry["source_psg_sha256"] in page
        assert (entry["signal_file_sha256"] or "missing from storage") in page
    assert f"<td>{campaign.name} " in page and f"<td>{rating.name} " in page and "(4 ratings)" in page
    assert f"/releases/{release.pk}/files/provenance.json" in page

    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(curator)
    assert api.get(f"/api/releases/{release.pk}/").json()["provenance"] == document
    assert "provenance" not in api.get("/api/releases/").json()["results"][0]
    pending = builds.create_release("mass-ex", "2.0.0", cohorts=["Release"], queue=False)
    assert api.get(f"/api/releases/{pending.pk}/").json()["provenance"] is None
    assert 'id="provenance"' not in client.get(f"/releases/{pending.pk}/").content.decode()
