"""manage.py reliability_report: a pytest run of the corpus (here two cases) turned into the table and summary."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from core.management.commands import reliability_report


def test_report_runs_the_cases_and_ends_with_the_json_summary(tmp_path):
    output, out = tmp_path / "report.md", StringIO()
    call_command("reliability_report", keyword="hypnogram-csv-unknown-stage or massex-bom or test_bad_input and api-label-seconds-negative",
                 min_cases=3, output=output, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert json.loads(lines[-1]) == {"cases": 3, "clean": 3, "rows_lost": 0, "files_left": 0}
    table = output.read_text(encoding="utf-8")
    assert "| case | expected | observed | rows before/after | files before/after | clean |" in table
    row = next(line for line in table.splitlines() if line.startswith("| hypnogram-csv-unknown-stage |"))
    assert "line 8: unknown stage 'S9'" in row and row.endswith("| yes |")
    assert "| massex-bom | accepted | accepted |" in table
    assert "| api-label-seconds-negative | 400: " in table


def test_report_fails_on_a_refused_case_that_wrote_rows(tmp_path, monkeypatch):
    rows = [{"case": "leaky", "surface": "api", "refused": True, "expected": "400", "observed": "201: saved",
             "rows_before": 10, "rows_after": 11, "rows_changed": ["annotation.Label"], "files_before": 2,
             "files_after": 3, "clean": False},
            {"case": "fault", "surface": "fault", "refused": False, "expected": "passes", "observed": "passed",
             "rows_before": None, "rows_after": None, "files_before": None, "files_after": None, "clean": True}]
    monkeypatch.setattr(reliability_report, "run_cases", lambda keyword, timeout: (rows, "pytest output"))
    out = StringIO()
    with pytest.raises(CommandError, match="1 case\\(s\\) not clean; 1 row\\(s\\) written by refused cases; "
                                           "1 file\\(s\\) left by refused cases"):
        call_command("reliability_report", min_cases=1, output=tmp_path / "r.md", stdout=out, stderr=StringIO())
    assert json.loads(out.getvalue().strip().splitlines()[-1]) == {"cases": 2, "clean": 1, "rows_lost": 1,
                                                                  "files_left": 1}
    assert "| leaky | 400 | 201: saved | 10 / 11 | 2 / 3 | **no** |" in (tmp_path / "r.md").read_text()
