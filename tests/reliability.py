"""What manage.py reliability_report reads: each case's outcome as a JSON line in $RELIABILITY_REPORT_FILE.

The bad-input corpus (test_bad_inputs.py) records every case; a fault test may record its own with `record`
(else the report takes its pass or fail from pytest's JUnit XML)."""
from __future__ import annotations

import json
import os

from django.apps import apps

from tests.conftest import stored_files  # noqa: F401 (the files in storage, for callers)


def row_counts() -> dict[str, int]:
    """Rows of every model (many-to-many tables included)."""
    return {model._meta.label: model.objects.count() for model in apps.get_models(include_auto_created=True)}


def record(case: str, *, expected: str, observed: str, rows_before: dict, rows_after: dict, files_before: list,
           files_after: list, clean: bool, refused: bool = True, surface: str = "fault") -> None:
    """Append one case's outcome when RELIABILITY_REPORT_FILE is set. `refused`: the case must write nothing
    (its changed rows and files count as lost or left in the report)."""
    path = os.environ.get("RELIABILITY_REPORT_FILE")
    if not path:
        return
    changed = sorted(k for k in set(rows_before) | set(rows_after) if rows_before.get(k) != rows_after.get(k))
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({
            "case": case, "surface": surface, "refused": refused, "expected": expected,
            "observed": " ".join(observed.split())[:300], "rows_before": sum(rows_before.values()),
            "rows_after": sum(rows_after.values()), "rows_changed": changed,
            "files_before": len(files_before), "files_after": len(files_after), "clean": clean,
        }) + "\n")
