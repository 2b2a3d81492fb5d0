"""python manage.py reliability_report [--output FILE] [-k EXPRESSION] [--min-cases N]

Runs the bad-input corpus (tests/test_bad_inputs.py) and the fast fault tests (marker `fast_fault` in
tests/test_faults*.py) in a pytest subprocess on a throwaway database, and writes a Markdown table of every case
(expected, observed, rows and files before and after) to --output and stdout. The last line is a JSON summary
{"cases", "clean", "rows_lost", "files_left"}; the exit status is non-zero when anything falls short: fewer than
--min-cases cases, a case not clean, a refused case that wrote rows or left files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

CORPUS = "tests/test_bad_inputs.py"
FAULTS = "tests/test_faults*.py"
SELECTION = "bad_input or fast_fault"
OBSERVED_CHARS = 160


def throwaway_environment(folder: Path, report: Path) -> dict[str, str]:
    """The subprocess's environment: its own var folder (SQLite's test database) and, on PostgreSQL, its own
    database name, so it never touches the caller's database or a test run's."""
    env = {**os.environ, "SLEEPREVIEW_VAR": str(folder / "var"), "RELIABILITY_REPORT_FILE": str(report),
           "PYTHONDONTWRITEBYTECODE": "1"}
    url = os.environ.get("DATABASE_URL")
    if url:
        parts = urlsplit(url)
        env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"{parts.path.rstrip('/') or '/sleepreview'}_reliability"))
    return env


def run_cases(keyword: str = "", timeout: int = 900) -> tuple[list[dict], str]:
    """Run the corpus and fast faults; every case as a row of the report, and pytest's output tail."""
    root = Path(settings.BASE_DIR)
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        folder = Path(tmp)
        report, junit = folder / "cases.jsonl", folder / "junit.xml"
        report.touch()
        paths = [CORPUS] + sorted(str(p.relative_to(root)) for p in root.glob(FAULTS))
        command = [sys.executable, "-m", "pytest", *paths, "-m", SELECTION, "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", "-o", "junit_family=xunit2"]
        if keyword:
            command += ["-k", keyword]
        try:
            done = subprocess.run(command, cwd=root, env=throwaway_environment(folder, report), capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CommandError(f"the corpus and fault tests did not finish within {timeout} s") from None
        output = (done.stdout + done.stderr)[-3000:]
        records = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines() if line.strip()]
        outcomes = _junit_outcomes(junit) if junit.exists() else {}
    if not outcomes and done.returncode not in (0, 5):
        raise CommandError(f"pytest could not run the cases (exit {done.returncode}):\n{output}")
    return _rows(records, outcomes), output


def _junit_outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """Each test's outcome (passed, failed, error, skipped) and message, by its pytest name."""
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        problem = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        outcome = "passed" if problem is None else {"failure": "failed"}.get(problem.tag, problem.tag)
        message = "" if problem is None else (problem.get("message") or problem.text or "")
        outcomes[f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"] = (outcome, message)
    return outcomes


def _rows(records: list[dict], outcomes: dict[str, tuple[str, str]]) -> list[dict]:
    """One row per case: the corpus's records (a case whose test failed is not clean, whatever it recorded),
    then the tests that recorded nothing (fault tests: their pass or fail; skipped ones are left out)."""
    by_case = {r["case"]: r for r in records}
    rows, seen = [], set()
    for name, (outcome, message) in outcomes.items():
        case = name.split("[", 1)[1].rstrip("]") if "[" in name else name
        if case in by_case:
            row = dict(by_case[case])
            row["clean"] = row["clean"] and outcome == "passed"
            seen.add(case)
        elif outcome == "skipped" or (outcome == "passed" and name.startswith("test_bad_inputs::") and "[" not in name):
            continue  # a skipped fault (no PostgreSQL, say), or a passing check of the corpus itself
        else:
            row = {"case": name, "surface": "fault" if "fault" in name else "corpus", "refused": False,
                   "expected": "passes: nothing lost, nothing partial", "observed": f"{outcome}: {message}".strip(": "),
                   "rows_before": None, "rows_after": None, "files_before": None, "files_after": None,
                   "clean": outcome == "passed"}
        rows.append(row)
    rows += [dict(r) for case, r in by_case.items() if case not in seen]  # recorded outside the JUnit names
    return rows


def summary(rows: list[dict]) -> dict:
    refused = [r for r in rows if r.get("refused") and r["rows_before"] is not None]
    return {"cases": len(rows), "clean": sum(bool(r["clean"]) for r in rows),
            # rows a refused case wrote or removed (tables whose counts moved, should the total not)
            "rows_lost": sum(max(abs(r["rows_after"] - r["rows_before"]), len(r.get("rows_changed", [])))
                             for r in refused),
            "files_left": sum(abs(r["files_after"] - r["files_before"]) for r in refused)}


def markdown(rows: list[dict]) -> str:
    def cell(value) -> str:
        text = "—" if value is None else " ".join(str(value).split())
        text = text if len(text) <= OBSERVED_CHARS else text[:OBSERVED_CHARS - 1] + "…"
        return text.replace("|", "\\|")

    lines = ["| case | expected | observed | rows before/after | files before/after | clean |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {cell(r['case'])} | {cell(r['expected'])} | {cell(r['observed'])} | "
                     f"{cell(r['rows_before'])} / {cell(r['rows_after'])} | "
                     f"{cell(r['files_before'])} / {cell(r['files_after'])} | {'yes' if r['clean'] else '**no**'} |")
    return "\n".join(lines)


class Command(BaseCommand):
    help = ("Run the bad-input corpus and the fast fault tests on a throwaway database; write the Markdown table "
            "and end with a JSON summary; exit non-zero when anything falls short.")

    def add_arguments(self, parser):
        parser.add_argument("--output", type=Path, default=Path(settings.BASE_DIR) / "var" / "reliability_report.md")
        parser.add_argument("-k", "--keyword", default="", help="pytest -k expression: run only these cases")
        parser.add_argument("--min-cases", type=int, default=40, help="fewer cases than this fails the report")
        parser.add_argument("--timeout", type=int, default=900, help="seconds the pytest run may take")

    def handle(self, *args, output: Path, keyword: str, min_cases: int, timeout: int, **options):
        rows, tail = run_cases(keyword, timeout)
        table = markdown(rows)
        totals = summary(rows)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("# Reliability report\n\n" + table + "\n\n" + json.dumps(totals) + "\n", encoding="utf-8")
        self.stdout.write(table)
        self.stdout.write(f"\nreport written to {output}")
        self.stdout.write(json.dumps(totals))
        short = [what for what, bad in (
            (f"{totals['cases']} cases, fewer than {min_cases}", totals["cases"] < min_cases),
            (f"{totals['cases'] - totals['clean']} case(s) not clean", totals["clean"] < totals["cases"]),
            (f"{totals['rows_lost']} row(s) written by refused cases", totals["rows_lost"]),
            (f"{totals['files_left']} file(s) left by refused cases", totals["files_left"])) if bad]
        if short:
            if totals["clean"] < totals["cases"]:
                self.stderr.write(tail)
            raise CommandError("reliability report short: " + "; ".join(short))
