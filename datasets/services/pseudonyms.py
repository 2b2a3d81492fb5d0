"""Pseudonymous subject ids and de-identified dates of recordings (spec/privacy.md).

A recording's name is its subject id, which a release publishes: one the curator gives (checked), else a
MASS id at the start of the file name (`01-03-0006 PSG.edf`) kept as it is, else the cohort's next
`<prefix>-<NNNN>`. The cohort's counter is advanced by one UPDATE inside the import's transaction (a row
lock on PostgreSQL, the write lock on SQLite), so two imports into one cohort never draw one number;
(cohort, name) is unique besides. The measurement start is stored shifted by the cohort's secret offset,
or not at all, by the cohort's date policy; the original stays in the restricted `measured_at`.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from django.db.models import F

from datasets.exceptions import InputError
from datasets.models import SUBJECT_ID_PATTERN, SUBJECT_ID_RULE, Cohort, Recording

MASS_ID = re.compile(r"0\d-0[1-5]-0\d{3}(?![A-Za-z0-9-])")  # cohort 01, subset SS1-SS5, subject number
MAX_PREFIX = 8


def check_subject_id(subject_id: str) -> str:
    """A subject id the curator gives: it names release files, so no separators and a bounded length."""
    if not re.fullmatch(SUBJECT_ID_PATTERN, subject_id):
        raise InputError(f"subject id {subject_id[:80]!r}: a subject id is {SUBJECT_ID_RULE} "
                         "(it names the release's files)")
    return subject_id


def mass_id(file_name: str) -> str | None:
    """The MASS subject id a file name starts with (`01-03-0006 PSG.edf`), if any."""
    found = MASS_ID.match(Path(file_name).name)
    return found.group(0) if found else None


def derived_prefix(cohort_name: str) -> str:
    """Upper case: the initials of several words ("Synthetic demo": SD), a short word ("MASS"), else its first
    four letters ("Synthetic": SYNT)."""
    words = re.findall(r"[A-Za-z0-9]+", cohort_name)
    if len(words) > 1:
        prefix = "".join(w[0] for w in words)[:MAX_PREFIX]
    else:
        prefix = "".join(words) if len("".join(words)) <= MAX_PREFIX else words[0][:4]
    return prefix.upper() or "SUBJ"


def cohort_prefix(cohort: Cohort) -> str:
    """The cohort's subject prefix; derived and stored at its first numbered recording, unique among cohorts."""
    if cohort.subject_prefix:
        return cohort.subject_prefix
    stem = derived_prefix(cohort.name)
    prefix, n = stem, 2
    while Cohort.objects.filter(subject_prefix=prefix).exclude(pk=cohort.pk).exists():
        prefix, n = f"{stem}{n}", n + 1
    Cohort.objects.filter(pk=cohort.pk, subject_prefix="").update(subject_prefix=prefix)
    cohort.refresh_from_db(fields=["subject_prefix"])
    return cohort.subject_prefix


def subject_id_for(cohort: Cohort, *, given: str, file_name: str) -> str:
    """The subject id of a recording being imported into `cohort` (call inside the import's transaction)."""
    taken = Recording.objects.filter(cohort=cohort)
    if given:
        check_subject_id(given)
        if taken.filter(name=given).exists():
            raise InputError(f"subject id {given!r} is already used in cohort {cohort.name!r}; give another one, "
                             "or none to number the recording")
        return given
    found = mass_id(file_name)
    if found:
        if taken.filter(name=found).exists():
            raise InputError(f"{file_name}: MASS subject {found} is already a recording of cohort {cohort.name!r}; "
                             "give this one a subject id of its own")
        return found
    prefix = cohort_prefix(cohort)
    while True:
        Cohort.objects.filter(pk=cohort.pk).update(next_subject_number=F("next_subject_number") + 1)
        number = Cohort.objects.values_list("next_subject_number", flat=True).get(pk=cohort.pk) - 1
        candidate = f"{prefix}-{number:04d}"
        if not taken.filter(name=candidate).exists():  # a curator may have given this id already
            return candidate


def stored_start(cohort: Cohort, measured: datetime | None) -> datetime | None:
    """The measurement start as stored under the cohort's date policy: shifted by its offset, or none."""
    if measured is None or cohort.date_policy == Cohort.DROP_DATES:
        return None
    return measured + timedelta(days=cohort.date_shift_days)
