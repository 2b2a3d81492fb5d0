"""Existing recordings get what an import now gives: a pseudonymous subject id for a name (the MASS id in
the old name kept, else <cohort prefix>-<NNNN> in import order), the measurement start moved to the
restricted `measured_at` and stored shifted by the cohort's own secret offset. Then (cohort, name) is unique."""
import re
import secrets
from datetime import timedelta

from django.db import migrations, models

MASS_ID = re.compile(r"(?<!\d)0\d-0[1-5]-0\d{3}(?!\d)")


def prefix_of(name: str, taken: set[str]) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    if len(words) > 1:
        prefix = "".join(w[0] for w in words)[:8]
    else:
        prefix = "".join(words) if len("".join(words)) <= 8 else words[0][:4]
    prefix = prefix.upper() or "SUBJ"
    stem, n = prefix, 2
    while prefix in taken:
        prefix, n = f"{stem}{n}", n + 1
    return prefix


def pseudonymise(apps, schema_editor):
    Cohort, Recording = apps.get_model("datasets", "Cohort"), apps.get_model("datasets", "Recording")
    prefixes = set(Cohort.objects.exclude(subject_prefix="").values_list("subject_prefix", flat=True))
    for cohort in Cohort.objects.order_by("pk"):
        cohort.date_shift_days = -(365 + secrets.randbelow(9 * 365 + 3))
        recordings = list(Recording.objects.filter(cohort=cohort).order_by("pk"))
        if recordings and not cohort.subject_prefix:
            cohort.subject_prefix = prefix_of(cohort.name, prefixes)
            prefixes.add(cohort.subject_prefix)
        names = set()
        for recording in recordings:
            found = MASS_ID.search(recording.name)
            if found and found.group(0) not in names:
                name = found.group(0)
            else:
                name = f"{cohort.subject_prefix}-{cohort.next_subject_number:04d}"
                cohort.next_subject_number += 1
            names.add(name)
            recording.name = name
            recording.measured_at = recording.start_time
            recording.start_time = recording.start_time and recording.start_time + timedelta(days=cohort.date_shift_days)
            recording.save(update_fields=["name", "measured_at", "start_time"])
        cohort.save(update_fields=["date_shift_days", "subject_prefix", "next_subject_number"])


class Migration(migrations.Migration):

    dependencies = [
        ('datasets', '0006_subject_ids_and_identity_fields'),
    ]

    operations = [
        migrations.RunPython(pseudonymise, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='recording',
            constraint=models.UniqueConstraint(fields=('cohort', 'name'), name='unique_subject_in_cohort'),
        ),
    ]
