"""A dashboard's statistics, inline or from the last stored result.

A campaign with at most STATISTICS_INLINE_LIMIT answers (labels, ratings) is computed on each request.
A bigger one shows the last result a job stored, with its age; when the campaign's inputs have changed
since (its watermark: the newest answer's id and the number of answers, and whatever else the app names),
a recompute job is queued (one at a time per campaign) on the `cpu` queue. The job is the cache: each
app's concrete StatisticsJob row holds the result and the watermark it was computed from.
"""
from __future__ import annotations

import json
from typing import Callable, NamedTuple

from django.conf import settings
from django.db import models

from core.models import BackgroundJob
from core.services.queue import send


class StatisticsJob(BackgroundJob):
    """One computation of a campaign's statistics; a subclass adds `campaign` and `task_name`."""

    watermark = models.JSONField(default=dict, help_text="the state of the inputs the result was computed from")
    result = models.JSONField(null=True, blank=True)

    class Meta(BackgroundJob.Meta):
        abstract = True


class Statistics(NamedTuple):
    result: dict | None  # None: not computed yet (the job is on its way)
    computed_at: object  # datetime of the stored result; None when computed for this request
    stale: bool  # the inputs changed since the stored result
    job: StatisticsJob | None  # the recompute queued or running


def jsonable(result: dict) -> dict:
    """The result as it comes back from a JSON column (numpy numbers as Python ones, tuples as lists)."""
    return json.loads(json.dumps(result, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def statistics(job_model, campaign, compute: Callable, watermark: dict) -> Statistics:
    """`compute(campaign)` now for a small campaign; for a big one the stored result (queuing a recompute
    when `watermark`, which holds the number of answers as "answers", moved on)."""
    if watermark["answers"] <= settings.STATISTICS_INLINE_LIMIT:
        return Statistics(compute(campaign), None, False, None)
    jobs = job_model.objects.filter(campaign=campaign)
    last = jobs.filter(state=BackgroundJob.SUCCEEDED).order_by("-finished_at", "-pk").first()
    stale = last is None or last.watermark != watermark
    running = jobs.filter(state__in=(BackgroundJob.PENDING, BackgroundJob.RUNNING)).order_by("-pk").first()
    if stale and running is None:
        running = job_model.objects.create(campaign=campaign, watermark=watermark)
        send(job_model.task_name, (running.pk,))
    return Statistics(last and last.result, last and last.finished_at, stale, running)


def recompute(job_model, pk: int, compute: Callable, watermark_of: Callable, *, queue: str = "",
              worker: str = "") -> StatisticsJob:
    """The job: the campaign's watermark read first (a change during the run leaves the result stale, and
    the next page view queues another run), then compute and store the result with it."""
    job = job_model.objects.select_related("campaign").get(pk=pk)
    if not job.claim(queue=queue, worker=worker):
        return job
    try:
        watermark = watermark_of(job.campaign)
        job.report_progress(total=watermark["answers"], message="computing")
        result = jsonable(compute(job.campaign))
    except Exception as exc:
        job.fail(f"{type(exc).__name__}: {exc}")
        raise
    job.succeed(result=result, watermark=watermark, done=watermark["answers"])
    return job
