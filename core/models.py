"""The one background-job engine: an abstract job row with its states and one transition API.

Every transition is a conditional UPDATE (compare-and-set on the state), so two workers holding the
same job (a redelivered message, a second delivery of an upload) can never both run it, and a
cancel cannot be overwritten by a late success. Progress has one shape for every kind of job.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone


class StorageNameField(models.CharField):
    """The name of a file in Django's default storage; the storage sweep spares every name held here."""


class BackgroundJob(models.Model):
    PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"
    STATE_CHOICES = [(s, s.capitalize()) for s in (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)]
    FINISHED = (SUCCEEDED, FAILED, CANCELLED)

    # The Celery task (by name) that runs or resumes a job of this kind, called with the job's pk.
    task_name: str = ""

    state = models.CharField(max_length=10, choices=STATE_CHOICES, default=PENDING, db_index=True)
    done = models.PositiveIntegerField(default=0, help_text="units of work done (epochs)")
    total = models.PositiveIntegerField(default=0, help_text="units of work in all")
    fraction = models.FloatField(null=True, blank=True, help_text="share done, where not done/total (phases)")
    message = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of the worker running it")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    # --- transitions ---------------------------------------------------------------------------

    def _transition(self, from_states, **fields) -> bool:
        """Set `fields` if the row's state is still one of `from_states`; refresh this instance."""
        updated = type(self).objects.filter(pk=self.pk, state__in=from_states).update(**fields)
        self.refresh_from_db()
        return bool(updated)

    def claim(self) -> bool:
        """PENDING -> RUNNING, or take over a RUNNING job whose worker has been silent past the lease.

        False when another worker holds the job or it has finished: the caller must not run it.
        """
        now = timezone.now()
        stale = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
        updated = (
            type(self).objects.filter(pk=self.pk)
            .filter(models.Q(state=self.PENDING) | models.Q(state=self.RUNNING, heartbeat_at__lt=stale)
                    | models.Q(state=self.RUNNING, heartbeat_at__isnull=True))
            .update(state=self.RUNNING, started_at=Coalesce("started_at", models.Value(now)),
                    heartbeat_at=now, error="")
        )
        self.refresh_from_db()
        return bool(updated)

    def report_progress(self, *, done: int | None = None, total: int | None = None, add: int = 0,
                        fraction: float | None = None, message: str | None = None, **counters: int) -> bool:
        """Record progress while RUNNING: absolute `done`/`total`, or `add` (and named counters) by F().

        False when the job is no longer running (cancelled, failed elsewhere): the worker should stop.
        """
        fields: dict = {"heartbeat_at": timezone.now()}
        if done is not None:
            fields["done"] = done
        if add:
            fields["done"] = models.F("done") + add
        if total is not None:
            fields["total"] = total
        if fraction is not None:
            fields["fraction"] = max(0.0, min(fraction, 1.0))
        if message is not None:
            fields["message"] = message[:255]
        fields.update({name: models.F(name) + value for name, value in counters.items() if value})
        return bool(type(self).objects.filter(pk=self.pk, state=self.RUNNING).update(**fields))

    def succeed(self, message: str = "done", **fields) -> bool:
        return self._transition((self.PENDING, self.RUNNING), state=self.SUCCEEDED, message=message[:255],
                                finished_at=timezone.now(), error="", **fields)

    def fail(self, error: str, message: str = "failed") -> bool:
        return self._transition((self.PENDING, self.RUNNING), state=self.FAILED, error=error,
                                message=message[:255], finished_at=timezone.now())

    def cancel(self) -> bool:
        return self._transition((self.PENDING, self.RUNNING), state=self.CANCELLED, message="cancelled",
                                finished_at=timezone.now())

    def reopen(self, **fields) -> bool:
        """A finished (failed, cancelled) or stalled job back to PENDING, to be queued again."""
        return self._transition((self.PENDING, self.RUNNING, self.FAILED, self.CANCELLED), state=self.PENDING,
                                error="", finished_at=None, heartbeat_at=None, **fields)

    # --- one progress shape --------------------------------------------------------------------

    def progress(self) -> dict:
        """fraction, done, total, rate (units/s), eta_s, message: read from the row, no query."""
        end = self.finished_at or timezone.now()
        elapsed = (end - self.started_at).total_seconds() if self.started_at else 0.0
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        if self.state == self.SUCCEEDED:
            fraction = 1.0
        elif self.fraction is not None:
            fraction = self.fraction
        else:
            fraction = min(self.done / self.total, 1.0) if self.total else 0.0
        remaining = max(self.total - self.done, 0)
        return {
            "state": self.state,
            "fraction": round(fraction, 4),
            "done": self.done,
            "total": self.total,
            "rate": round(rate, 2),
            "eta_s": round(remaining / rate, 1) if rate and not self.is_finished else None,
            "message": self.message,
        }


class QueueReservation(models.Model):
    """A rater's hold on one of an item's `overlap` slots: live until it expires, kept for good once answered.

    A concrete reservation adds `item` (a ForeignKey to an item with `campaign` and `position`) and the
    unique constraints (item, slot) and (item, rater) that core.services.work_queue relies on.
    """

    slot = models.PositiveSmallIntegerField()
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    labelled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class RevisedAnswer(models.Model):
    """One version of a rater's answer to a queue item (append-only; `replaces` is the version it supersedes).

    A concrete answer adds `item` and its own fields, and the unique constraint
    (item, rater, rescore, revision).
    """

    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    rescore = models.BooleanField(default=False, help_text="given when the item was served again, unannounced")
    seconds_spent = models.FloatField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=1)
    replaces = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by")
    client_id = models.UUIDField(unique=True, help_text="idempotency key of the save (a retried save is not duplicated)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
