"""Load a MASS-EX release folder (spec/mass-ex.md) onto the recordings of a cohort.

`annotations/fine/<subject>.csv` and `annotations/coarse/<subject>.csv` give each subject's rule ids (and,
fine, rationales). A subject's CSVs go onto the one recording of the cohort whose name contains the subject;
row N onto its scored epoch with massex_n == N, whose stage must equal the row's. Where a subject has both,
fine rows win for their epochs. The whole folder is checked before anything is written, and the matched
recordings' scored epochs then hold exactly what the folder says (rules [] and rationale "" where it says
nothing), so importing twice changes nothing and exporting reproduces the folder.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from datasets.exceptions import InputError
from datasets.models import Cohort, Epoch, Recording
from datasets.services.hypnograms import MassExRow, read_mass_ex_rows

SUBSETS = ("fine", "coarse")  # fine first: its rows win over coarse ones for the same epoch
SHOWN_PER_FILE = 5
Track = Callable[[list, str], Iterable]  # (items, what is being done) -> the items, e.g. under a progress bar


def _same(items: list, _what: str) -> Iterable:
    return items


@dataclass(frozen=True)
class CsvFile:
    """One subject CSV of the folder, its rows read and checked."""

    path: Path
    rows: list[MassExRow]

    @property
    def subject(self) -> str:
        return self.path.stem


@dataclass
class SubjectPlan:
    """What the folder puts on one recording: (rules, rationale) by massex_n, and its scored epochs."""

    subject: str
    recording: Recording
    files: list[CsvFile]
    epochs: list[Epoch]
    values: dict[int, tuple[list[str], str]]


@dataclass
class ImportPlan:
    folder: Path
    cohort: Cohort
    subjects: list[SubjectPlan]


@dataclass(frozen=True)
class ImportSummary:
    subjects: int
    epochs_with_rules: int
    epochs_with_rationale: int
    epochs_changed: int


def read_folder(folder: Path, track: Track = _same) -> tuple[list[CsvFile], list[tuple[Path, str]]]:
    """The folder's subject CSVs (fine before coarse) and the problems found in them, as (file, what)."""
    folder = Path(folder)
    paths = [path for subset in SUBSETS for path in sorted((folder / "annotations" / subset).glob("*.csv"))]
    if not paths:
        raise InputError(f"{folder}: no MASS-EX CSVs in annotations/fine/ or annotations/coarse/")
    files, problems = [], []
    for path in track(paths, "reading"):
        try:
            rows = read_mass_ex_rows(path)
        except InputError as exc:
            problems.append((path, str(exc).removeprefix(f"{path}: ")))
            continue
        if not rows:
            problems.append((path, "no rows"))
        problems += [(path, f"{row.where}: Subject {row.subject!r} disagrees with the file name {path.stem!r}")
                     for row in rows if row.subject != path.stem]
        files.append(CsvFile(path, rows))
    return files, problems


def plan_import(folder: Path, cohort_name: str, track: Track = _same) -> ImportPlan:
    """Match the folder to the cohort's recordings and check every row; InputError lists every problem."""
    cohort = Cohort.objects.filter(name=cohort_name).first()
    if cohort is None:
        raise InputError(f"no cohort {cohort_name!r}")
    files, problems = read_folder(folder, track)
    by_subject: dict[str, list[CsvFile]] = defaultdict(list)
    for file in files:
        by_subject[file.subject].append(file)
    recordings = list(cohort.recordings.all())
    matched: dict[int, list[str]] = defaultdict(list)
    subjects = []
    for subject, subject_files in sorted(by_subject.items()):
        candidates = [r for r in recordings if subject in r.name]
        if len(candidates) != 1:
            found = ", ".join(repr(r.name) for r in candidates) or "none"
            problems += [(f.path, f"subject {subject} must match exactly one recording of cohort {cohort.name} "
                                  f"(a name equal to or containing it); found {found}") for f in subject_files]
            continue
        recording = candidates[0]
        matched[recording.pk].append(subject)
        epochs = list(recording.epochs.exclude(massex_n=None).order_by("index"))
        by_n = {epoch.massex_n: epoch for epoch in epochs}
        values: dict[int, tuple[list[str], str]] = {}
        for file in subject_files:
            problems += _row_problems(file, by_n, recording)
            for row in file.rows:
                values.setdefault(row.n, (list(row.rule_ids), row.rationale))
        subjects.append(SubjectPlan(subject, recording, subject_files, epochs, values))
    for plan in subjects:
        if len(matched[plan.recording.pk]) > 1:
            problems += [(f.path, f"recording {plan.recording.name!r} is matched by several subjects "
                                  f"({', '.join(matched[plan.recording.pk])})") for f in plan.files]
    if problems:
        raise InputError(_report(folder, cohort.name, problems))
    return ImportPlan(Path(folder), cohort, subjects)


def apply_plan(plan: ImportPlan, track: Track = _same) -> ImportSummary:
    """Write the plan in one transaction, touching only epochs whose rules or rationale change."""
    changed = 0
    with transaction.atomic():
        for subject in track(plan.subjects, "writing"):
            updates = []
            for epoch in subject.epochs:
                rules, rationale = subject.values.get(epoch.massex_n, ([], ""))
                if (epoch.reference_rules, epoch.reference_rationale) != (rules, rationale):
                    epoch.reference_rules, epoch.reference_rationale = rules, rationale
                    updates.append(epoch)
            Epoch.objects.bulk_update(updates, ["reference_rules", "reference_rationale"], batch_size=500)
            changed += len(updates)
    values = [v for subject in plan.subjects for v in subject.values.values()]
    return ImportSummary(len(plan.subjects), sum(bool(rules) for rules, _ in values),
                         sum(bool(rationale) for _, rationale in values), changed)


def import_folder(folder: Path, cohort_name: str, track: Track = _same) -> ImportSummary:
    """Plan and apply in one transaction: all of the folder or nothing."""
    with transaction.atomic():
        return apply_plan(plan_import(folder, cohort_name, track), track)


def _row_problems(file: CsvFile, by_n: dict[int, Epoch], recording: Recording) -> list[tuple[Path, str]]:
    problems = []
    for row in file.rows:
        epoch = by_n.get(row.n)
        if epoch is None:
            problems.append((file.path, f"{row.where}: N={row.n} is past the last scored epoch of recording "
                                        f"{recording.name!r}, which has {len(by_n)} (N 0–{len(by_n) - 1})"))
        elif epoch.stage != row.stage:
            problems.append((file.path, f"{row.where}: N={row.n} Stage {row.stage}, but that epoch of recording "
                                        f"{recording.name!r} (index {epoch.index}) is {epoch.stage}"))
    return problems


def _report(folder: Path, cohort_name: str, problems: list[tuple[Path, str]]) -> str:
    by_file: dict[Path, list[str]] = defaultdict(list)
    for path, what in problems:
        by_file[path].append(what)
    lines = [f"{folder}: the MASS-EX folder does not match cohort {cohort_name}; nothing was written. "
             f"{len(problems)} problem(s) in {len(by_file)} file(s) (row N goes onto the recording's scored "
             "epoch of rank N, whose stage must be the row's; many stage mismatches mean shifted numbering "
             "or the wrong recording):"]
    for path, whats in by_file.items():
        lines += [f"  {path}: {what}" for what in whats[:SHOWN_PER_FILE]]
        if len(whats) > SHOWN_PER_FILE:
            lines.append(f"  {path}: and {len(whats) - SHOWN_PER_FILE} more problem(s) in this file")
    return "\n".join(lines)
