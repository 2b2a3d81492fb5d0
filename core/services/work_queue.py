"""The fair work queue shared by scoring and rating: reservations of item slots, answers, release, re-scoring.

A queue is made of three models: items (a `campaign` foreign key, a `position` and a `complete` flag,
set once all `overlap` slots are answered, so a long campaign's done items cost the queue nothing), reservations
(core.models.QueueReservation with `item`) and answers (core.models.RevisedAnswer with `item`). The
campaign gives `overlap`, `reservation_timeout_s`, `sample_seed` and, optionally, `rescore_share`.

Guarantees (kept by the unique constraints of the reservation model, whatever the interleaving):
- an item has at most `overlap` slots (0..overlap-1, unique per item), a first answer needs a slot and
  keeps it for good, so no item gets more than `overlap` first-pass answers;
- a rater holds at most one slot of an item (unique (item, rater)), so no rater answers an item twice
  (re-scoring aside: a re-score is a second *pass*, not a second slot);
- expired, unanswered reservations are deleted before candidates are chosen;
- a rater asking again gets back their own live reservation first.

Concurrency: one statement picks and reserves, INSERT INTO reservations SELECT (the first open item in the
rater's order, its lowest free slot) ... RETURNING; on PostgreSQL the SELECT locks the picked item with
FOR UPDATE SKIP LOCKED, so concurrent raters take different items instead of waiting (SQLite runs the
statement under its database write lock). An IntegrityError from the unique constraints means a
concurrent statement took that slot first (compare-and-set): the statement runs again. `next_item` is
at most 3 queries: the rater's own live reservation, the pick, and the picked item with its relations
(plus, at most once every RELEASE_EVERY_S per process and campaign, the deletion of expired holds).

Time per item is measured by the server: a reservation's `served_at` starts the rater's clock (when it is
reserved, served again for re-scoring, or, for items held ahead, at the rater's last save), and an answer
stores `server_seconds` from there to the save (a revision: from the version it replaces) beside the
`seconds_spent` the browser reports; flags and statistics use the server's figure.

Answers are an append-only history with idempotent saves (`client_id`) and optimistic concurrency
(`base_revision`; a stale one raises StaleAnswer, HTTP 412 in the APIs).

Re-scoring: with `rescore_share` > 0, once a rater has `RESCORE_AFTER` first-pass answers, each answered
item is picked for re-scoring with probability `rescore_share`, deterministically from (campaign seed,
rater, item); a pick is served again once the rater has answered `RESCORE_GAP` more items since. The
re-score is stored with `rescore=True`; the APIs never tell the rater.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from datetime import timedelta

from contextlib import nullcontext

from django.db import IntegrityError, connections, transaction
from django.db.models import Case, Count, DateTimeField, Exists, F, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from core.exceptions import InputError
from core.models import ChangeRecord
from core.services import audit, prepared

RESCORE_AFTER = 10  # first-pass answers a rater needs before any re-scoring
RESCORE_GAP = 5  # first-pass answers given since an item's answer before it is served again
CANDIDATES = 4  # recordings looked at per round (whole-recording unit)
ROUNDS = 8
MAX_AHEAD = 5  # items a page may hold ahead of the one on screen
RELEASE_EVERY_S = 15.0  # seconds between a process's deletions of a campaign's expired holds (timeouts are minutes)
MAX_SECONDS_SPENT = 24 * 3600  # time on one item: more is a clock error, not work


class NotReserved(Exception):
    """A first answer without the rater's reservation of the item (and no free slot to take)."""


class AnswerConflict(Exception):
    """The answer was given under terms that changed since the item was served (e.g. its rubric): HTTP 409."""


class StaleAnswer(Exception):
    """The answer changed since the client read it (another tab or device)."""

    def __init__(self, current_revision: int | None):
        self.current_revision = current_revision
        if current_revision is None:
            message = "changed in another tab or device: there is no answer yet (send no base_revision)"
        else:
            message = f"changed in another tab or device: revision {current_revision} is current"
        super().__init__(message)


MAX_KEY_DWELL_MS = 5000


def key_dwell_ms(value) -> int:
    """A campaign's key dwell, checked: how long (ms) an item is shown before answer keys count."""
    try:
        dwell = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"key_dwell_ms must be a whole number of milliseconds, got {value!r}") from None
    if not 0 <= dwell <= MAX_KEY_DWELL_MS:
        raise InputError(f"key_dwell_ms must be between 0 and {MAX_KEY_DWELL_MS}")
    return dwell


def _clock_start():
    """When a rater's clock on a reserved item started: its serving (`served_at`), else the reservation's creation."""
    return Coalesce("served_at", "created_at")


def _now(now):
    return now or timezone.now()


class WorkQueue:
    """One queue over (items, reservations, answers); subclasses choose the order and validate answers."""

    held_order = ("item__position",)  # the order of a rater's own live reservations (the page's next items)
    order_per_rater = False  # True where `order` depends on who the rater is, not only on their id as a parameter
    item_related = ("epoch", "recording")  # loaded with every item the queue serves (the page shows them)

    def __init__(self, *, items, reservations, answers):
        self.items, self.reservations, self.answers = items, reservations, answers
        self._last_release: dict[int, float] = {}  # campaign id -> monotonic time of this process's last release

    # --- hooks ---------------------------------------------------------------------------------

    def order(self, items, campaign, rater):
        """The order in which the rater is served open items (queue position by default)."""
        return items.order_by("position")

    def open_in_order(self, campaign, rater):
        """The items open for the rater in the order they are served (what `reserve_one` picks from)."""
        return self.order(self.open_items(campaign, rater), campaign, rater)

    def reserve_one(self, campaign, rater, now):
        """A new reservation for the rater, or None when nothing is open for them."""
        return self.reserve_from(campaign, rater, lambda who: self.open_in_order(campaign, who), now,
                                 key=self.statement_key(campaign, rater))

    def statement_key(self, campaign, rater):
        """All that the pick statement of `reserve_one` depends on besides the times and, unless `order_per_rater`,
        the rater's id (it is compiled once per key, see _reserve_statement), or None where it depends on data too
        (it is compiled every time)."""
        key = (campaign.pk, campaign.overlap, getattr(campaign, "sample_seed", None))
        return (*key, rater.pk) if self.order_per_rater else key

    def clean(self, campaign, fields: dict) -> dict:
        """The answer's fields, checked (raise core.exceptions.InputError naming the problem)."""
        return fields

    def check_in_transaction(self, campaign, fields: dict) -> None:
        """Called first inside the save's transaction: lock and check again what the answer was given under
        (raise AnswerConflict to refuse it)."""

    def after_save(self, campaign, rater, item, now) -> None:
        """Called inside the save's transaction (e.g. to extend a hold)."""

    def release_held(self, campaign, now) -> None:
        """Release the campaign's other expired holds (e.g. whole-recording ones)."""

    # --- reservations --------------------------------------------------------------------------

    def expiry(self, campaign, now):
        return now + timedelta(seconds=campaign.reservation_timeout_s)

    def release_expired(self, campaign, now=None) -> int:
        """Delete the campaign's expired unanswered reservations (and other expired holds).

        At most once every RELEASE_EVERY_S per process and campaign (an expired hold keeps its slot that much longer
        at most), so the queue does not pay two DELETE statements on most requests (each of a server's processes
        would sweep on its first request of every second at a lab's pace); an explicit `now` always runs.
        """
        if now is None:
            last = self._last_release.get(campaign.pk, -RELEASE_EVERY_S)
            if time.monotonic() - last < RELEASE_EVERY_S:
                return 0
            self._last_release[campaign.pk] = time.monotonic()
        now = _now(now)
        count, _ = self.reservations.objects.filter(item__campaign=campaign, labelled=False,
                                                    expires_at__lte=now).delete()
        self.release_held(campaign, now)
        return count

    def _slots_taken(self):
        taken = self.reservations.objects.filter(item=OuterRef("pk")).order_by().values("item")
        return Coalesce(Subquery(taken.annotate(n=Count("pk")).values("n")[:1]), Value(0))

    def open_items(self, campaign, rater):
        """Items with a free slot that the rater holds no slot of (unordered)."""
        mine = self.reservations.objects.filter(item=OuterRef("pk"), rater=rater)
        return (self.items.objects.filter(campaign=campaign, complete=False)
                .alias(taken=self._slots_taken(), mine=Exists(mine))
                .filter(taken__lt=campaign.overlap, mine=False))

    def _free_slot(self, overlap: int):
        """SQL, per item: the lowest of its `overlap` slots that no reservation holds."""
        def held(slot):
            return Exists(self.reservations.objects.filter(item=OuterRef("pk"), slot=slot))
        return Case(*(When(~held(slot), then=Value(slot)) for slot in range(overlap)), output_field=IntegerField())

    def _reserve_statement(self, campaign, rater, items, now, key=None) -> tuple[str, list]:
        """INSERT INTO reservations SELECT the first of `items` (a queryset, or a function of the rater that builds
        it) with its lowest free slot ... RETURNING the new reservation's id; on PostgreSQL the picked item row is
        locked FOR UPDATE SKIP LOCKED. Building and compiling the ORM query is most of a `next`'s CPU: with a `key`
        (all the statement depends on besides the times and, unless `order_per_rater`, the rater) it is a
        prepared statement (core.services.prepared), compiled once per key."""
        build = items if callable(items) else (lambda _: items)
        times = {"expires_at": self.expiry(campaign, now), "created_at": timezone.now(), "served_at": now}
        if key is None:
            return self._compile_reserve(campaign, rater, build(rater), times)

        def compile(rater_id=None, **times):
            who = rater if rater_id is None else rater._meta.model(pk=rater_id)
            return (*self._compile_reserve(campaign, who, build(who), times), None)
        values = times if self.order_per_rater else {**times, "rater_id": rater.pk}
        sql, params, _ = prepared.statement(self.prepared_key("pick", key), compile, values, self.items.objects.db)
        return sql, params

    def prepared_key(self, *key) -> tuple:
        """A key of this queue's prepared statements (core.services.prepared): the answer model names the queue."""
        return (self.answers._meta.label, *key)

    def _compile_reserve(self, campaign, rater, items, times) -> tuple[str, list]:
        connection = connections[items.db]
        quote = connection.ops.quote_name
        meta = self.reservations._meta
        values = {"item": F("pk"), "slot": self._free_slot(campaign.overlap), "rater": Value(rater.pk),
                  "expires_at": Value(times["expires_at"], DateTimeField()), "labelled": Value(False),
                  "created_at": Value(times["created_at"], DateTimeField()),
                  "served_at": Value(times["served_at"], DateTimeField())}
        picked = items.annotate(**{f"reserve_{name}": value for name, value in values.items()})
        picked = picked.values_list(*(f"reserve_{name}" for name in values))[:1]
        select, params = picked.query.get_compiler(using=items.db).as_sql()
        if connection.features.has_select_for_update_skip_locked:
            select += " " + connection.ops.for_update_sql(skip_locked=True, of=(quote(self.items._meta.db_table),))
        columns = ", ".join(quote(meta.get_field(name).column) for name in values)
        return (f"INSERT INTO {quote(meta.db_table)} ({columns}) {select} RETURNING {quote(meta.pk.column)}",
                list(params))

    def reserve_from(self, campaign, rater, items, now, key=None):
        """A reservation of the first free item of `items` (ordered; or a function of the rater that builds them;
        `key`: see `_reserve_statement`), the item with `item_related`; None only when none is open for the rater.

        Rows other raters are reserving right now are skipped (PostgreSQL); when every open row is
        locked that way, it tries again shortly rather than answer "nothing left" while items remain.
        """
        sql, params = self._reserve_statement(campaign, rater, items, now, key)
        connection = connections[self.items.objects.db]
        for attempt in range(ROUNDS):
            try:
                # a savepoint only inside a caller's transaction; alone, the statement is its own transaction
                with transaction.atomic(using=connection.alias) if connection.in_atomic_block else nullcontext():
                    with connection.cursor() as cursor:
                        cursor.execute(sql, params)
                        row = cursor.fetchone()
            except IntegrityError:
                continue  # a concurrent statement took that slot (or the rater's other tab the item): pick again
            if row is not None:
                return prepared.first(self.prepared_key("reservation"), self._reservation, self.reservations.objects.db,
                                      pk=row[0])
            if not (items(rater) if callable(items) else items).exists():
                return None
            time.sleep(0.005 * (attempt + 1))  # every open item is being reserved by someone right now
        return None

    def _with_item(self, reservations):
        """Reservations with their item and the item's `item_related`, as the queue serves them."""
        return reservations.select_related(*(f"item__{name}" for name in self.item_related))

    def _reservation(self, pk):
        return self._with_item(self.reservations.objects.filter(pk=pk))

    def held_key(self, campaign) -> tuple | None:
        """All the statement of a rater's held items depends on besides the campaign, the rater and the time (it is
        prepared once per key), or None where it depends on data too (it is compiled every time)."""
        return ()

    def _unanswered(self, campaign, rater):
        """The rater's reservations in the campaign not answered yet (live or expired)."""
        return self.reservations.objects.filter(item__campaign=campaign, rater=rater, labelled=False)

    def _held(self, campaign, rater, now):
        return self._unanswered(campaign, rater).filter(expires_at__gt=now)

    def held_ordering(self, campaign) -> tuple:
        """The order in which a rater's own live reservations are served (`held_order` by default)."""
        return self.held_order

    def _held_items(self, campaign, held):
        return self._with_item(held).order_by(*self.held_ordering(campaign))

    def next_item(self, campaign, rater, now=None):
        """(item, rescore) for the rater, reserving a slot; None when nothing is left for them.

        The item comes with `item_related` loaded (a first-pass item with its reservation as `item.hold`); a
        first-pass item is served from the rater's unanswered reservation, so the rater has no answer to it yet.
        At most 3 queries without re-scoring (own reservation; pick and reserve; the item)."""
        self.release_expired(campaign, now)
        now = _now(now)
        key = self.held_key(campaign)
        if key is None:
            own = self._held_items(campaign, self._held(campaign, rater, now)).first()
        else:
            own = prepared.first(self.prepared_key("held", campaign.pk, *key),
                                 lambda rater_id, now: self._held_items(campaign, self._held(campaign, rater_id, now)),
                                 self.reservations.objects.db, rater_id=rater.pk, now=now)
        if own is not None:
            return self._serve(own), False
        rescore = self.pending_rescore(campaign, rater)
        if rescore is not None:
            self._rater_reservation(rescore, rater).update(served_at=now)  # its clock starts
            return rescore, True
        reservation = self.reserve_one(campaign, rater, now)
        return (self._serve(reservation), False) if reservation is not None else None

    @staticmethod
    def _serve(reservation):
        """The reservation's item, with the reservation as `item.hold` (its expiry, without another query)."""
        item = reservation.item
        item.hold = reservation
        return item

    def reserve_ahead(self, campaign, rater, count: int, now=None) -> list[tuple[object, bool]]:
        """Up to `count` items for the rater, the next first: `next_item`'s, then further reservations in
        the rater's order, so a page can go on for a few items while offline. A re-score comes alone."""
        count = max(1, min(int(count), MAX_AHEAD))
        first = self.next_item(campaign, rater, now)
        if first is None or first[1]:
            return [first] if first else []
        now = _now(now)
        held = self._held(campaign, rater, now)
        with transaction.atomic():
            for _ in range(count - held.count()):
                if self.reserve_one(campaign, rater, now) is None:
                    break
        return [(self._serve(r), False) for r in self._held_items(campaign, held)[:count]]

    def change_overlap(self, campaign, overlap: int) -> None:
        """Set `campaign.overlap` (the caller saves it, under the campaign's row lock): refused below the answers
        an item already has; items become complete or open again, unanswered holds of dropped slots go."""
        if overlap < 1:
            raise InputError("overlap must be at least 1")
        if overlap == campaign.overlap:
            return
        answered = (self.reservations.objects.filter(item__campaign=campaign, labelled=True).values("item")
                    .annotate(n=Count("pk")).order_by("-n").values_list("n", flat=True).first() or 0)
        if overlap < answered:
            raise InputError(f"overlap {overlap} is below the {answered} answers some items already have")
        self.reservations.objects.filter(item__campaign=campaign, labelled=False, slot__gte=overlap).delete()
        labelled = self.reservations.objects.filter(item=OuterRef("pk"), labelled=True).order_by().values("item")
        count = Coalesce(Subquery(labelled.annotate(n=Count("pk")).values("n")[:1]), Value(0))
        items = self.items.objects.filter(campaign=campaign).alias(answered=count)
        items.filter(answered__gte=overlap, complete=False).update(complete=True)
        items.filter(answered__lt=overlap, complete=True).update(complete=False)
        campaign.overlap = overlap

    def drop_holds(self, campaign, *, exclude_raters) -> None:
        """Free the unanswered holds of raters no longer in the campaign."""
        self.reservations.objects.filter(item__campaign=campaign, labelled=False).exclude(
            rater__in=exclude_raters).delete()

    def release(self, campaign, rater, item) -> bool:
        """Give back the rater's unanswered reservation of an item (abandoned): its slot is free again."""
        count, _ = self.reservations.objects.filter(item=item, item__campaign=campaign, rater=rater,
                                                    labelled=False).delete()
        return count > 0

    def progress(self, campaign, rater, now=None) -> dict:
        """The rater's counts: items answered (first pass) and how many they could answer in all."""
        now = _now(now)
        done = self.reservations.objects.filter(item__campaign=campaign, rater=rater, labelled=True).count()
        held = self._held(campaign, rater, now).count()
        return {"done": done, "total": done + held + self.open_items(campaign, rater).count()}

    # --- re-scoring ----------------------------------------------------------------------------

    def _rescore_pick(self, campaign, rater_id: int, item_id: int) -> bool:
        share = getattr(campaign, "rescore_share", 0.0)
        if share <= 0:
            return False
        digest = hashlib.sha256(f"{campaign.sample_seed}:{campaign.pk}:{rater_id}:{item_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < share

    def pending_rescore(self, campaign, rater):
        """The first item picked for re-scoring that is due (answered long enough ago, not re-scored yet)."""
        if getattr(campaign, "rescore_share", 0.0) <= 0:
            return None
        answers = self.answers.objects.filter(item__campaign=campaign, rater=rater)
        first = list(answers.filter(rescore=False, revision=1).order_by("created_at", "pk")
                     .values_list("item_id", flat=True))
        if len(first) < RESCORE_AFTER:
            return None
        done = set(answers.filter(rescore=True).values_list("item_id", flat=True))
        for item_id in first[:len(first) - RESCORE_GAP]:
            if item_id not in done and self._rescore_pick(campaign, rater.pk, item_id):
                return self.items.objects.select_related(*self.item_related).get(pk=item_id)
        return None

    def is_rescore_due(self, campaign, rater, item) -> bool:
        pending = self.pending_rescore(campaign, rater)
        return pending is not None and pending.pk == item.pk

    # --- answers -------------------------------------------------------------------------------

    def current(self, campaign, *, rescore: bool | None = None):
        """The current answers (no later revision replaces them) of the campaign."""
        answers = self.answers.objects.filter(item__campaign=campaign, replaced_by__isnull=True)
        return answers if rescore is None else answers.filter(rescore=rescore)

    def visible(self, campaign, rater, item):
        """The rater's answer to an item as the rater sees it: the latest pass (a re-score once there is one)."""
        return prepared.first(self.prepared_key("visible"), self._visible_answers, self.answers.objects.db,
                              campaign_id=campaign.pk, item_id=item.pk, rater_id=rater.pk)

    def _visible_answers(self, campaign_id, item_id, rater_id):
        """The rater's current answers to the item, the visible one (the latest pass) first."""
        return self.current(campaign_id).filter(item=item_id, rater=rater_id).order_by("-rescore")

    def _answer_saved_as(self, client_id: uuid.UUID):
        return prepared.first(self.prepared_key("answer by client id"),
                              lambda client_id: self.answers.objects.filter(client_id=client_id),
                              self.answers.objects.db, client_id=client_id)

    def own_visible(self, campaign, rater):
        """The rater's current answers, one per item: the latest pass (so a re-score is not revealed)."""
        answers = self.current(campaign).filter(rater=rater)
        return answers.exclude(rescore=False, item_id__in=answers.filter(rescore=True).values("item_id"))

    def submit(self, campaign, rater, item, *, client_id, base_revision=None, seconds_spent=None, now=None,
               **fields):
        """Save the rater's answer to an item; returns (answer, created). Raises InputError, NotReserved, StaleAnswer,
        AnswerConflict. A retry of a save that was stored (the same `client_id`) returns that answer, unchanged;
        retries are rare, so the client_id is looked up only when the save cannot go through as a new one."""
        now = _now(now)
        if item.campaign_id != campaign.pk:
            raise InputError("the item is not in this campaign")
        try:
            client_id = uuid.UUID(str(client_id))
        except (TypeError, ValueError):
            raise InputError(f"client_id must be a UUID, got {client_id!r}") from None
        try:
            return self._save(campaign, rater, item, client_id, base_revision, seconds_spent, now, fields), True
        except (InputError, AnswerConflict, NotReserved, StaleAnswer, IntegrityError) as exc:
            existing = self._answer_saved_as(client_id)
            if existing is not None:
                return self._same_save(existing, rater, item, self.clean(campaign, {**fields, "seconds_spent": None})), False
            if isinstance(exc, IntegrityError):  # a concurrent save of the same revision, from another tab
                current = self.visible(campaign, rater, item)
                raise StaleAnswer(current.revision if current else None) from None
            raise

    def _save(self, campaign, rater, item, client_id, base_revision, seconds_spent, now, fields: dict):
        if seconds_spent is not None:
            try:
                seconds_spent = float(seconds_spent)
            except (TypeError, ValueError):
                raise InputError("seconds_spent must be a number") from None
            if not 0 <= seconds_spent <= MAX_SECONDS_SPENT:  # NaN fails too
                raise InputError(f"seconds_spent must be between 0 and {MAX_SECONDS_SPENT} (24 hours), "
                                 f"got {seconds_spent:g}")
        if base_revision in ("", 0):
            base_revision = None
        if base_revision is not None:
            try:
                base_revision = int(base_revision)
            except (TypeError, ValueError):
                raise InputError("base_revision must be an integer") from None
        fields = {**self.clean(campaign, {**fields, "seconds_spent": seconds_spent}), "client_id": client_id}
        with transaction.atomic():
            self.check_in_transaction(campaign, fields)
            visible, served, holds_others = self._lock_item(campaign, rater, item)
            current = None if visible is None else self.answers.objects.get(pk=visible)
            if current is None or (base_revision is None and not current.rescore
                                   and self.is_rescore_due(campaign, rater, item)):
                if base_revision is not None:
                    raise StaleAnswer(None)
                if current is None:
                    self._claim_slot(campaign, rater, item)
                else:
                    served = self._served_at(item, rater)
                answer = self.answers.objects.create(item=item, rater=rater, rescore=current is not None, revision=1,
                                                     **fields, **self.timed(campaign, served, now))
                audit.record(ChangeRecord.CREATE, answer, actor=rater, after=audit.snapshot(answer))
            else:
                if base_revision != current.revision:
                    raise StaleAnswer(current.revision)
                answer = self.answers.objects.create(item=item, rater=rater, rescore=current.rescore,
                                                     revision=current.revision + 1, replaces=current, **fields,
                                                     **self.timed(campaign, current.created_at, now))
                audit.record(ChangeRecord.REVISE, answer, actor=rater, before=audit.snapshot(current),
                             after=audit.snapshot(answer))
            if holds_others:  # the clock of items the rater holds ahead starts now: the next one is on screen
                prepared.update(self.prepared_key("served ahead"), lambda campaign_id, rater_id, now: (
                    self._unanswered(campaign_id, rater_id), {"served_at": now}), self.reservations.objects.db,
                    campaign_id=campaign.pk, rater_id=rater.pk, now=now)
            self.after_save(campaign, rater, item, now)
            return answer

    NOT_COMPARED = frozenset({"client_id", "seconds_spent", "rubric", "fast", "accepted"})

    def _same_save(self, answer, rater, item, cleaned: dict):
        """The answer a retried save (same client_id) made; refused when the retry is another answer."""
        if answer.rater_id != rater.pk or answer.item_id != item.pk:
            raise InputError("client_id was already used for another answer; send a new UUID for each save")
        changed = sorted(key for key, value in cleaned.items()
                         if key not in self.NOT_COMPARED and getattr(answer, key, value) != value)
        if changed:
            raise InputError(f"client_id was already used for a save with another {', '.join(changed)}; "
                             "send a new UUID for each save")
        return answer

    def timed(self, campaign, served, now) -> dict:
        """The answer's fields measured by the server: `server_seconds` from `served` (when the rater's clock on
        the item started) to the save; a subclass adds what it derives from them (e.g. a fast flag)."""
        return {"server_seconds": None if served is None else round(max(0.0, (now - served).total_seconds()), 3)}

    def _rater_reservation(self, item, rater):
        """The rater's reservation of the item (each given as an instance or an id), answered or not."""
        return self.reservations.objects.filter(item=item, rater=rater)

    def _served_at(self, item, rater):
        """When the rater's clock on the item started."""
        return self._rater_reservation(item, rater).values_list(_clock_start(), flat=True).first()

    def _lock_item(self, campaign, rater, item) -> tuple:
        """Lock the item's row (its last slots are answered one at a time) and read, in the same statement: the
        pk of the rater's visible answer (`visible`), when their unanswered reservation of it was served (None
        without one) and whether they hold other items unanswered in the campaign."""
        def locked(item_id, rater_id, campaign_id):
            visible = self._visible_answers(campaign_id, item_id, rater_id).values("pk")[:1]
            served = self._rater_reservation(item_id, rater_id).filter(labelled=False).values(at=_clock_start())[:1]
            others = self._unanswered(campaign_id, rater_id).exclude(item=item_id)
            return (self.items.objects.select_for_update(of=("self",)).filter(pk=item_id)
                    .values_list(Subquery(visible), Subquery(served), Exists(others)))
        rows = prepared.fetch(self.prepared_key("lock item"), locked, self.items.objects.db, item_id=item.pk,
                              rater_id=rater.pk, campaign_id=campaign.pk)
        return rows[0] if rows else (None, None, True)

    def _claim_slot(self, campaign, rater, item) -> None:
        """Mark the rater's own reservation of the item (locked by `_lock_item`) answered: its slot is kept for
        good, and the item complete with its last slot. No reservation: NotReserved."""
        db = self.reservations.objects.db
        if prepared.update(self.prepared_key("claim"), lambda item_id, rater_id: (
                self._rater_reservation(item_id, rater_id).filter(labelled=False), {"labelled": True}), db,
                item_id=item.pk, rater_id=rater.pk):
            # a statement after the lock: it sees every slot answered before (answered slots are kept for good)
            prepared.update(self.prepared_key("complete"), lambda item_id, overlap: (
                self.items.objects.filter(GreaterThanOrEqual(Subquery(
                    self.reservations.objects.filter(item=OuterRef("pk"), labelled=True).order_by()
                    .values("item").annotate(n=Count("pk")).values("n")), overlap), pk=item_id),
                {"complete": True}), db, item_id=item.pk, overlap=campaign.overlap)
            return
        if self._rater_reservation(item, rater).filter(labelled=True).exists():
            current = self.visible(campaign, rater, item)  # answered meanwhile from another tab
            raise StaleAnswer(current.revision if current else None)
        raise NotReserved("you hold no reservation of this item (it expired or was released); ask for the next item")
