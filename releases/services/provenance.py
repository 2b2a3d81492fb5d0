"""`provenance.json`: what a release was built from, in a form that does not depend on the build.

It holds the release's settings, the code version (package version; the git commit of a checkout), the
SHA-256 of each recording's stored prepared signal file beside the SHA-256 of its source PSG, the rubric
versions of each rating campaign with a hash of their dimensions, the id of the last change record of the
release's input types, and counts of each campaign's answers (whole campaigns, as in agreement.json).
No build time, temporary path or interpreter version: two builds of the same database give the same bytes.
The last change record and the counts are read when the build starts.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import tomllib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from annotation.models import Adjudication, Label
from core.services.audit import last_change_id
from ratings.models import Rating
from releases.services import export

FILE = "provenance.json"
PACKAGE = "sleepreview"
INPUT_TYPES = ("annotation.label", "annotation.adjudication", "annotation.scoringcampaign", "ratings.rating",
               "ratings.ratingcampaign", "ratings.rubric", "inference.modelversion", "datasets.recording")


@lru_cache(maxsize=1)
def code_version() -> dict:
    """The code this process runs (read once: a worker keeps the code it loaded): the package version and,
    when the project folder is a git checkout, its commit (None without git)."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as handle:
            version = tomllib.load(handle)["project"]["version"]
    commit, git_dir = None, Path(settings.BASE_DIR) / ".git"
    if git_dir.exists():
        try:  # safe.directory: the same commit whichever user (web, worker, CLI) runs the build
            done = subprocess.run(["git", "-c", "safe.directory=*", f"--git-dir={git_dir}", "rev-parse", "HEAD"],
                                  capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            done = None
        head = done.stdout.strip() if done is not None and done.returncode == 0 else ""
        if len(head) in (40, 64) and all(c in "0123456789abcdef" for c in head):  # SHA-1 or SHA-256 object ids
            commit = head
    return {"package": PACKAGE, "package_version": version, "git_commit": commit}


def release_settings(release) -> dict:
    """Every choice of the release that shapes its files."""
    return {
        "name": release.name, "version": release.version, "description": release.description,
        "license_id": release.license_id, "license_text": release.license_text,
        "stage_source": release.stage_source, "include_images": release.include_images,
        "previous": release.previous.version if release.previous else None,
        "cohorts": sorted(c.name for c in release.cohorts.all()),
        "scoring_campaigns": sorted(c.name for c in release.scoring_campaigns.all()),
        "rating_campaigns": sorted(c.name for c in release.rating_campaigns.all()),
        "model_versions": sorted(({"name": v.name, "backend": v.backend, "settings_hash": v.settings_hash}
                                  for v in release.model_versions.all()), key=lambda v: v["name"]),
    }


def dimensions_sha256(dimensions) -> str:
    """SHA-256 of a rubric's dimensions as canonical JSON (the same on every database)."""
    text = json.dumps(dimensions, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rubric_versions(campaign) -> list[dict]:
    """Each rubric version of a rating campaign: its dimensions' hash and the current ratings given under it."""
    return [{"version": rubric.version, "dimensions_sha256": dimensions_sha256(rubric.dimensions),
             "ratings": Rating.objects.filter(rubric=rubric, replaced_by__isnull=True).count()}
            for rubric in campaign.rubrics.order_by("version")]


def answer_counts(model, **campaign) -> dict:
    """Current answers (first pass and re-scores) and every saved version of a campaign's answers."""
    rows = model.objects.filter(**campaign)
    current = rows.filter(replaced_by__isnull=True)
    return {"current_first_pass": current.filter(rescore=False).count(),
            "current_rescore": current.filter(rescore=True).count(), "versions": rows.count()}


def collect(content: export.ReleaseContent) -> dict:
    """The provenance read at the start of a build; `inputs` is filled recording by recording (`signal_input`)."""
    return {
        "release": release_settings(content.release),
        "code": code_version(),
        "last_change_record": last_change_id(INPUT_TYPES),
        "answers": {
            "scoring": {c.name: {"labels": answer_counts(Label, item__campaign=c),
                                 "adjudications": Adjudication.objects.filter(item__campaign=c).count()}
                        for c in content.scoring},
            "rating": {c.name: {"ratings": answer_counts(Rating, item__campaign=c)} for c in content.rating},
        },
        "rubrics": {c.name: rubric_versions(c) for c in content.rating},
        "inputs": [],
    }


def stored_sha256(name: str) -> str | None:
    """SHA-256 of a file's bytes in storage; None when it is not there."""
    if not name or not default_storage.exists(name):
        return None
    digest = hashlib.sha256()
    with default_storage.open(name, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def signal_input(recording, subject: str) -> dict:
    return {"subject": subject, "preparation_profile": recording.preparation_profile,
            "signal_file_sha256": stored_sha256(recording.signal_file), "source_psg_sha256": recording.sha256}


def write(root: Path, document: dict) -> None:
    inputs = sorted(document["inputs"], key=lambda i: i["subject"])
    export.write_json(root / FILE, {**document, "inputs": inputs})


def stored(release) -> dict | None:
    """The provenance of a built release, read from storage (None before it is built, or built without one)."""
    row = release.files.filter(path=FILE, archive=False).first()
    if row is None:
        return None
    with default_storage.open(row.storage_name, "rb") as handle:
        return json.loads(handle.read().decode("utf-8"))
