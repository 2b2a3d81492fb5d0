"""Building a release on the core job engine: contents written to a local temporary folder, packed, then
copied into storage (Django's storage API: a folder or an S3-compatible bucket) under releases/<id>/.

The written folder passes the PHI scan (releases/services/phi.py) before anything is packed or stored: a
recording's identity in it fails the build with the report. A release is marked built only after every
file is in storage. A failed or cancelled build deletes the files it stored; a build killed mid-way stays
RUNNING until its lease lapses, and the restarted build (claim takes it over) first deletes what the killed
one stored, then writes the same bytes again. Each build stores under its own lease's folder
(releases/<id>/<lease>/) and records a file only while it holds the lease, so a stalled build that wakes
after a takeover writes no row and touches none of its successor's files.
"""
from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction

from core.exceptions import InputError
from core.models import ChangeRecord, database_lost
from core.services import audit
from core.services.queue import send
from core.services.rows import without_cyclic_gc
from core.storage import StorageFull
from releases.models import Release, ReleaseFile, validate_semver, version_key
from releases.services import archives, export, phi, provenance

log = logging.getLogger(__name__)


class BuildCancelled(Exception):
    """The release is no longer running (cancelled, or taken over by another worker)."""


class Choices(NamedTuple):
    """What a release is made of, checked: rows for the names given, and the previous built version."""

    cohorts: list
    scoring_campaigns: list
    rating_campaigns: list
    model_versions: list
    previous: Release | None


def check_choices(name, version, *, cohorts, stage_source=Release.REFERENCE, scoring_campaigns=(),
                  rating_campaigns=(), model_versions=()) -> Choices:
    """The rows a release of these choices is made of; InputError names what is wrong."""
    from django.core.exceptions import ValidationError

    from annotation.models import ScoringCampaign
    from datasets.models import Cohort
    from inference.models import ModelVersion
    from ratings.models import RatingCampaign

    try:
        validate_semver(version)
    except ValidationError as exc:
        raise InputError(exc.messages[0]) from None
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise InputError(f"release name {name!r} must be letters, digits, '-' and '_' (it names files)")
    if Release.objects.filter(name=name, version=version).exists():
        raise InputError(f"release {name} {version} already exists: a new version is a new release")
    if stage_source not in dict(Release.STAGE_SOURCES):
        raise InputError(f"unknown stage source {stage_source!r}; expected one of {', '.join(dict(Release.STAGE_SOURCES))}")

    def named(model, values, field, what):
        rows = []
        for value in values or ():
            row = value if isinstance(value, model) else model.objects.filter(**{field: value}).first()
            if row is None:
                raise InputError(f"unknown {what} {value!r}")
            rows.append(row)
        return rows

    cohort_rows = named(Cohort, cohorts, "name", "cohort")
    if not cohort_rows:
        raise InputError("a release needs at least one cohort")
    scoring = named(ScoringCampaign, scoring_campaigns, "name", "scoring campaign")
    if stage_source != Release.REFERENCE and not scoring:
        raise InputError(f"stage source {stage_source!r} needs the scoring campaigns it draws on")
    rating = named(RatingCampaign, rating_campaigns, "name", "rating campaign")
    cohort_ids, cohort_names = {c.pk for c in cohort_rows}, ", ".join(c.name for c in cohort_rows)
    for campaign in scoring:
        if not campaign.recordings.filter(cohort_id__in=cohort_ids).exists():
            raise InputError(f"scoring_campaigns: campaign {campaign.name!r} scores no recording of the release's "
                             f"cohorts ({cohort_names})")
    for campaign in rating:
        if not campaign.cohorts.filter(pk__in=cohort_ids).exists():
            raise InputError(f"rating_campaigns: campaign {campaign.name!r} rates none of the release's "
                             f"cohorts ({cohort_names})")
    earlier = [r for r in Release.objects.filter(name=name, state=Release.SUCCEEDED)
               if version_key(r.version) < version_key(version)]
    return Choices(cohort_rows, scoring, rating,
                   named(ModelVersion, model_versions, "name", "model version"),
                   max(earlier, key=lambda r: version_key(r.version)) if earlier else None)


def create_release(name, version, *, cohorts, stage_source=Release.REFERENCE, scoring_campaigns=(),
                   rating_campaigns=(), model_versions=(), description="", license_id="cc-by-nc-4.0",
                   license_text="", include_images=False, user=None, queue=True) -> Release:
    """A new release (PENDING), queued for building after commit; InputError names what is wrong."""
    choices = check_choices(name, version, cohorts=cohorts, stage_source=stage_source,
                            scoring_campaigns=scoring_campaigns, rating_campaigns=rating_campaigns,
                            model_versions=model_versions)
    with transaction.atomic():
        release = Release.objects.create(
            name=name, version=version, stage_source=stage_source, description=description, license_id=license_id,
            license_text=license_text, include_images=include_images, previous=choices.previous,
            created_by=user if getattr(user, "is_authenticated", False) else None)
        release.cohorts.set(choices.cohorts)
        release.scoring_campaigns.set(choices.scoring_campaigns)
        release.rating_campaigns.set(choices.rating_campaigns)
        release.model_versions.set(choices.model_versions)
        audit.record(ChangeRecord.BUILD, release, actor=user, after=audit.snapshot(release))
        if queue:
            send(Release.task_name, (release.pk,))
    return release


def _recordings(release):
    from datasets.models import Recording

    return Recording.objects.filter(cohort__in=release.cohorts.all())


def _delete_files(release) -> None:
    for row in release.files.all():
        default_storage.delete(row.storage_name)
    release.files.all().delete()


def _store(release, root: Path, path: Path, archive: bool) -> None:
    """Store one file under the build's own folder (releases/<id>/<lease>/: a stalled build taken over never
    touches its successor's files) and record it only while the build still holds its lease (what a refused
    build stored is left to the storage sweep)."""
    relative = path.name if archive else path.relative_to(root).as_posix()
    name = f"releases/{release.pk}/{release.held_lease or 0}/{relative}"
    if release.lease_lost():
        raise BuildCancelled
    default_storage.delete(name)
    with open(path, "rb") as handle:
        stored = default_storage.save(name, File(handle, name=path.name))
    try:
        with transaction.atomic():
            if not release.still_held():
                raise BuildCancelled
            ReleaseFile.objects.create(release=release, path=relative, storage_name=stored,
                                       size=path.stat().st_size, sha256=export.sha256_of(path), archive=archive)
    except DatabaseError:  # the row is not written (a lost connection): the file, this build's own, goes too
        default_storage.delete(stored)
        raise


@without_cyclic_gc()
def write_contents(release, root: Path, tick) -> dict:
    """Every file of the release's folder under `root`; `tick(done, total)` after each recording."""
    content = export.ReleaseContent(release)
    made_from = provenance.collect(content)
    # The agreement figures first, written and let go: the largest document (a 100,000-epoch campaign's
    # hypnodensity), computed before pyarrow is loaded and the per-recording tables leave memory in use.
    agreement = content.agreement()
    export.write_json(root / "agreement.json", agreement)
    (root / "agreement.md").write_text(export.agreement_markdown(agreement), encoding="utf-8")
    del agreement
    tables = export.Tables(root)
    changes = export.Changelog(release)
    stage_counts, epochs, fine, subjects = Counter(), 0, 0, 0
    total = len(content.recordings) + 1
    try:
        for done, recording in enumerate(content.recordings, start=1):
            subject, exported = content.write_recording(recording, root, tables)
            made_from["inputs"].append(provenance.signal_input(recording, subject))
            changes.compare(subject, exported)
            stage_counts.update(stage for stage, _, _ in exported.values())
            epochs += len(exported)
            fine += sum(1 for _, _, rationale in exported.values() if rationale)
            subjects += bool(exported)
            tick(done, total)
    finally:
        tables.close()
    counts = changes.finish(root)
    (root / "rules.md").write_text(export.rules_markdown(), encoding="utf-8")
    (root / "CHANGELOG.md").write_text(changes.markdown(), encoding="utf-8")
    (root / "README.md").write_text(export.dataset_card(release, {"epochs": epochs}, stage_counts, fine, subjects),
                                    encoding="utf-8")
    provenance.write(root, made_from)
    export.write_manifest(root)
    tick(total, total)
    return {"epochs": epochs, "changelog": counts}


def build_release(release_id: int, echo=None, *, queue: str = "", worker: str = "") -> Release:
    """Build one release to its end (claimed by compare-and-set: a redelivered message does nothing);
    `queue` and `worker` name where it runs."""
    release = Release.objects.get(pk=release_id)
    if not release.claim(queue=queue, worker=worker):
        return release

    def tick(done, total):
        if not release.report_progress(done=done, total=total, message=f"{done} of {total} parts written"):
            raise BuildCancelled
        if echo:
            echo(done, total)

    try:
        _delete_files(release)  # what a killed build stored
        with tempfile.TemporaryDirectory(prefix="release-") as tmp:
            root = Path(tmp) / release.folder
            root.mkdir()
            summary = write_contents(release, root, tick)
            phi.check_release_folder(root, release.folder, _recordings(release))  # before anything is stored
            packed = Path(tmp) / "packed"
            packed.mkdir()
            archives.write_archives(root, release.folder, packed)
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                _store(release, root, path, archive=False)
            for path in sorted(packed.iterdir()):
                _store(release, root, path, archive=True)
            if not release.report_progress(message="files stored"):
                raise BuildCancelled
    except Exception as exc:
        lost = database_lost(exc)  # reconnected: the build's rows are read to delete its files
        with transaction.atomic():  # the row locked while held: no takeover between the check and the deletes
            if not release.still_held() and release.lease_lost():
                # another worker took the build over: its files are not ours to delete
                log.warning("release %s: taken over by another worker (lease %s lost), this build stops and "
                            "writes nothing", release.pk, release.held_lease)
                return Release.objects.get(pk=release.pk)
            _delete_files(release)
            if isinstance(exc, (InputError, StorageFull)):
                release.fail(str(exc))
            elif lost:  # its files deleted above; queued again (or failed after JOB_DATABASE_RETRIES)
                log.warning("release %s lost its database connection: %s", release.pk, exc)
                release.retry_after_database_loss("The database connection was lost while building the release; "
                                                  "nothing of it was kept. Build it again.")
            elif not isinstance(exc, BuildCancelled):  # unexpected: nothing half-written stays; log for operators
                log.exception("release %s failed", release.pk)
                release.fail(f"internal error: {exc}")
    else:
        if not release.succeed(f"{summary['epochs']} epochs", epochs=summary["epochs"], changelog=summary["changelog"]) \
                and release.lease_lost():
            log.warning("release %s: taken over by another worker (lease %s lost), this build's end is refused",
                        release.pk, release.held_lease)
    release.refresh_from_db()
    if release.state == Release.CANCELLED:
        _delete_files(release)
    return release


def cancel_release(release, *, user=None) -> bool:
    """Cancel a pending or running build; its worker stops at the next recording and deletes its files."""
    with transaction.atomic():
        before = audit.snapshot(release)
        cancelled = release.cancel()
        if cancelled:
            audit.record(ChangeRecord.CANCEL, release, actor=user, before=before, after=audit.snapshot(release))
    if cancelled and release.state == Release.CANCELLED and not release.started_at:
        _delete_files(release)
    return cancelled
