"""Inference jobs on the core job engine: chunks on the gpu/cpu queue; idempotent, resumable writes.

Every chunk writes its predictions batch by batch with the (epoch, model version) uniqueness as the
guard, so a chunk that is redelivered after a worker crash redoes only what is missing and never
duplicates. The job's counters grow by F() with the rows a batch really inserted (counted under the
job row's lock), and a job ends when every target epoch has a prediction of its model version,
whichever job wrote it: two overlapping runs of one version both finish. Every chunk runs under the
job's lease (the first chunk claims it, a chunk finding the job silent past the lease takes it over, the
others join it) and writes only while that lease holds: a stalled chunk woken after a takeover writes nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.services.queue import send

from datasets.models import Epoch, EpochImage
from inference.models import AasmRule, InferenceJob, ModelVersion, Prediction
from inference.services.backends import EpochQuery, get_backend
from inference.services.baseline import rule_conflict
from inference.services.evidence import check_predictions, epoch_starts
from inference.services.parsing import parse_output

CHUNK_SIZE = {ModelVersion.TRANSFORMERS: 64, ModelVersion.OPENAI: 64, ModelVersion.BASELINE: 120}
log = logging.getLogger(__name__)
NO_PRECEDING = "skipped: first epoch of its sequence, no preceding epoch for the three-image context"
NO_SUBSEQUENT = "skipped: last epoch of its sequence, no subsequent epoch for the three-image context"


class JobError(Exception):
    """A job cannot start or continue (bad target, bad model settings); the message says why."""


class LeaseLost(Exception):
    """The job is no longer RUNNING under the lease this chunk runs under (taken over, cancelled, finished)."""


def target_epochs(*, cohort=None, recording=None):
    if (cohort is None) == (recording is None):
        raise JobError("give exactly one of a cohort or a recording")
    epochs = Epoch.objects.filter(recording__cohort=cohort) if cohort else Epoch.objects.filter(recording=recording)
    return epochs.order_by("recording_id", "index")


def start_job(model_version: ModelVersion, *, cohort=None, recording=None, user=None,
              chunk_size: int | None = None, inline: bool = False) -> InferenceJob:
    """Create a job for every epoch of the target that has no prediction of this version yet.

    Its chunks go to the model version's queue, or run here and now with `inline` (CLI, demo).
    """
    with transaction.atomic():
        job = InferenceJob.objects.create(model_version=model_version, cohort=cohort, recording=recording, created_by=user)
        chunks = enqueue_missing(job, chunk_size=chunk_size, queue=not inline)
    for ids in chunks if inline else ():
        run_chunk(job.pk, ids)
    job.refresh_from_db()
    return job


def missing_epochs(job: InferenceJob):
    return target_epochs(cohort=job.cohort, recording=job.recording).exclude(predictions__model_version=job.model_version_id)


def enqueue_missing(job: InferenceJob, *, chunk_size: int | None = None, queue: bool = True) -> list[list[int]]:
    """Chunk the target's epochs still lacking a prediction (start or resume) and queue them unless told not to."""
    missing = list(missing_epochs(job).values_list("id", flat=True))
    size = chunk_size or CHUNK_SIZE[job.model_version.backend]
    chunks = [missing[i : i + size] for i in range(0, len(missing), size)]
    if not missing:
        job.succeed("every target epoch has a prediction")
        return []
    job.reopen(total=job.done + len(missing), chunks_total=len(chunks), chunks_done=0,
               message=f"{len(missing)} epochs in {len(chunks)} chunks")
    name = job.model_version.queue
    for ids in chunks if queue else ():
        send("inference.run_chunk", (job.pk, ids), queue=name)
    return chunks


def resume_job(job_id: int) -> str:
    """Queue again what a stalled or interrupted job still lacks (the stale-job sweep calls this)."""
    job = InferenceJob.objects.select_related("model_version").get(pk=job_id)
    if job.state != InferenceJob.SUCCEEDED:
        with transaction.atomic():
            enqueue_missing(job)
    job.refresh_from_db()
    return job.state


def cancel_job(job: InferenceJob) -> InferenceJob:
    job.cancel()
    return job


@lru_cache(maxsize=4)
def _backend(backend: str, settings_json: str):
    return get_backend(backend, json.loads(settings_json))


def backend_for(model_version: ModelVersion):
    """One backend instance per worker process and model version settings (models load once)."""
    return _backend(model_version.backend, json.dumps(model_version.settings, sort_keys=True))


# Settings that change how a backend runs, not what it outputs: left out of the content hash.
OPERATIONAL_SETTINGS = frozenset({"concurrency", "timeout_s", "max_retries", "backoff_s", "api_key_env"})


def version_hash(model_version: ModelVersion, backend) -> str:
    """Content hash of the backend, its settings and what else determines outputs (checkpoint config, prompt)."""
    settings = {k: v for k, v in model_version.settings.items() if k not in OPERATIONAL_SETTINGS}
    payload = {"backend": model_version.backend, "settings": settings, "fingerprint": backend.fingerprint()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def run_chunk(job_id: int, epoch_ids: list[int], *, queue: str = "", worker: str = "") -> str:
    """Predict the chunk's epochs that still lack a prediction; safe to run twice or concurrently.

    `queue` and `worker` name where the chunk runs: the job row shows the worker of its latest chunk.
    """
    job = InferenceJob.objects.select_related("model_version").get(pk=job_id)
    if job.is_finished:
        return job.state
    # The first chunk to arrive starts the job (PENDING), a chunk finding it silent past the lease takes it
    # over (the stalled chunks' writes are refused from then on); any other chunk joins the current lease.
    if not job.claim(queue=queue, worker=worker):
        if job.state != InferenceJob.RUNNING:
            return job.state
        job.held_lease = job.lease
        if worker:
            job._held(InferenceJob.objects.filter(pk=job.pk, state=InferenceJob.RUNNING)).update(queue=queue,
                                                                                               worker=worker)
    try:
        return _run_chunk(job, epoch_ids)
    except LeaseLost:
        job.refresh_from_db()
        if job.state != InferenceJob.CANCELLED:
            log.warning("inference job %s: lease %s lost (the job is %s under lease %s); this chunk's writes are "
                        "refused", job.pk, job.held_lease, job.state, job.lease)
        return job.state


def _run_chunk(job: InferenceJob, epoch_ids: list[int]) -> str:
    model_version = job.model_version
    try:
        backend = backend_for(model_version)
        digest = version_hash(model_version, backend)
    except (ValueError, OSError) as exc:
        job.fail(f"model version {model_version.name}: {exc}")
        return InferenceJob.FAILED
    job._held(InferenceJob.objects.filter(pk=job.pk, version_hash="")).update(version_hash=digest)
    todo = (
        Epoch.objects.filter(id__in=epoch_ids)
        .exclude(predictions__model_version=model_version)
        .select_related("recording")
        .order_by("recording_id", "index")
    )
    epochs = list(todo)
    neighbours = context_neighbours({e.recording_id for e in epochs})
    context = [e for e in epochs if None not in neighbours[e.recording_id, e.index]]
    _write(job, [_skipped(job, e, digest, neighbours[e.recording_id, e.index]) for e in epochs if e not in context])
    batch_size = backend.batch_size if backend.needs_images else len(context) or 1  # the baseline reads whole nights
    rules = frozenset(AasmRule.objects.values_list("rule_id", flat=True))
    for start in range(0, len(context), batch_size):
        if InferenceJob.objects.filter(pk=job.pk, state=InferenceJob.CANCELLED).exists():
            return InferenceJob.CANCELLED
        batch = context[start : start + batch_size]
        outputs = backend.predict(_queries(batch, neighbours, backend.needs_images))
        predictions = [_prediction(job, e, out, digest, rules) for e, out in zip(batch, outputs)]
        check_predictions(predictions)
        _write(job, predictions)
    with transaction.atomic():
        if not job.still_held():
            raise LeaseLost
        InferenceJob.objects.filter(pk=job.pk).update(chunks_done=F("chunks_done") + 1)
    return finish_if_complete(job)


def context_neighbours(recording_ids) -> dict[tuple[int, int], tuple[int | None, int | None]]:
    """(recording, index) → the indices of the preceding and subsequent epochs of its three-image context.

    As in the authors' aligned sequence (mass-ex.md), a scored epoch's neighbours are the scored epochs
    before and after it (rows N-1 and N+1, across any unscored gap); an unscored epoch, or any epoch of
    a recording without a hypnogram, has its neighbours in time. None where the sequence ends.
    """
    timelines: dict[int, list[tuple[int, bool]]] = {}
    rows = Epoch.objects.filter(recording_id__in=recording_ids).order_by("recording_id", "index")
    for recording_id, index, n in rows.values_list("recording_id", "index", "massex_n"):
        timelines.setdefault(recording_id, []).append((index, n is not None))
    neighbours = {}
    for recording_id, timeline in timelines.items():
        last = timeline[-1][0]
        for index, _ in timeline:
            neighbours[recording_id, index] = (index - 1 if index else None, index + 1 if index < last else None)
        scored = [index for index, is_scored in timeline if is_scored]
        for k, index in enumerate(scored):
            neighbours[recording_id, index] = (scored[k - 1] if k else None, scored[k + 1] if k + 1 < len(scored) else None)
    return neighbours


def _queries(epochs: list[Epoch], neighbours, needs_images: bool) -> list[EpochQuery]:
    """One query per epoch; each model image of the batch is looked up and read once."""
    images = {}
    around = {e.pk: (neighbours[e.recording_id, e.index][0], e.index, neighbours[e.recording_id, e.index][1])
              for e in epochs}
    if needs_images:
        wanted = {(e.recording_id, i) for e in epochs for i in around[e.pk]}
        names = EpochImage.objects.filter(
            kind=EpochImage.MODEL, epoch__recording_id__in={r for r, _ in wanted},
            epoch__index__in={i for _, i in wanted},
        ).values_list("epoch__recording_id", "epoch__index", "storage_name")
        images = {(r, i): _read(name) for r, i, name in names if (r, i) in wanted}
    starts = {r: epoch_starts(r) for r in {e.recording_id for e in epochs}}  # once per recording of the chunk
    return [
        EpochQuery(
            epoch_id=e.pk, recording_id=e.recording_id, index=e.index,
            images=tuple(images[(e.recording_id, i)] for i in around[e.pk]) if needs_images else None,
            signal_file=e.recording.signal_file, derivations=tuple(e.recording.derivations),
            epoch_starts=starts[e.recording_id],
        )
        for e in epochs
    ]



def _read(name: str) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return fh.read()


def _skipped(job, epoch, digest, around: tuple[int | None, int | None]) -> Prediction:
    reason = NO_PRECEDING if around[0] is None else NO_SUBSEQUENT
    return Prediction(epoch=epoch, model_version=job.model_version, job=job, status=Prediction.SKIPPED,
                      detail=reason, version_hash=digest, preparation_profile=epoch.recording.preparation_profile)


def _prediction(job, epoch, output, digest, rules) -> Prediction:
    base = dict(epoch=epoch, model_version=job.model_version, job=job, raw_output=output.text,
                probability=output.probability, origin_note=output.origin_note, version_hash=digest,
                preparation_profile=epoch.recording.preparation_profile)
    if output.error:
        return Prediction(status=Prediction.FAILED, detail=f"request failed: {output.error}", **base)
    parsed = parse_output(output.text, rules)
    return Prediction(status=parsed.status, stage=parsed.stage, rule_ids=parsed.rule_ids,
                      unknown_rule_ids=parsed.unknown_rule_ids, rationale=parsed.rationale, detail=parsed.detail,
                      rule_conflict=rule_conflict(parsed.stage, parsed.rule_ids), **base)


def _write(job: InferenceJob, predictions: list[Prediction]) -> None:
    """Insert what no other writer has inserted yet; count exactly the rows this job added.

    The job row is locked for the count, so two chunks of one job never count the same row; rows
    another job won carry that job's id and are not counted here.
    """
    if not predictions:
        return
    ids = [p.epoch_id for p in predictions]
    with transaction.atomic():
        if not job.still_held():  # locks the job row for the count; another worker holds the job: write nothing
            raise LeaseLost
        mine = Prediction.objects.filter(job=job, epoch_id__in=ids)
        before = set(mine.values_list("epoch_id", flat=True))
        Prediction.objects.bulk_create(predictions, ignore_conflicts=True)
        added = set(mine.values_list("epoch_id", flat=True)) - before
        statuses = [p.status for p in predictions if p.epoch_id in added]
        InferenceJob.objects.filter(pk=job.pk).update(
            done=F("done") + len(added), heartbeat_at=timezone.now(),
            failed=F("failed") + statuses.count(Prediction.FAILED),
            skipped=F("skipped") + statuses.count(Prediction.SKIPPED),
        )


def finish_if_complete(job: InferenceJob) -> str:
    """Succeed once every target epoch has a prediction of the job's model version, whichever chunk or
    worker wrote the last one (completion is a fact of the predictions, not of who holds the job)."""
    job = InferenceJob.objects.get(pk=job.pk)
    if not job.is_finished and not missing_epochs(job).exists():
        job.succeed(f"{job.done} predictions written by this run")
    return job.state


def progress(job: InferenceJob) -> dict:
    """The core progress shape plus the inference counters, read from the job row (no query)."""
    return {**job.progress(), "parse_failures": job.failed, "skipped": job.skipped,
            "chunks_done": min(job.chunks_done, job.chunks_total), "chunks_total": job.chunks_total}
