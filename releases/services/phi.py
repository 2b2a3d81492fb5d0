"""The PHI scan of a release before anything is stored (spec/privacy.md).

Every path, CSV cell, Parquet cell and line of text the release would publish is searched for the
identity of its recordings: the names and codes of the EDF patient field and of the original file
name, the birth date and the measurement date in the common ways of writing them
(datasets.services.identity). A hit stops the build; the report names file, row and field. Images are
rendered signals: only their names are scanned.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from core.exceptions import InputError
from datasets.services.identity import IdentityTerms, recording_terms

SHOWN = 20
PIXELS_ONLY = (".png",)


@dataclass(frozen=True)
class Hit:
    path: str
    where: str  # "file name", "row 3, field note", "line 12"
    found: str
    kind: str  # e.g. "patient name of recording #4"


def release_terms(recordings) -> IdentityTerms:
    terms = IdentityTerms()
    for recording in recordings:
        terms.update(recording_terms(recording), owner=f"recording #{recording.pk}")
    return terms


def scan_folder(root: Path, top: str, terms: IdentityTerms) -> list[Hit]:
    """Every hit of `terms` in the files under `root`, published as `<top>/<path>`."""
    if not terms:
        return []
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = f"{top}/{path.relative_to(root).as_posix()}"
        hits += [Hit(name, "file name", name[start:end], kind) for start, end, kind in terms.spans(name)]
        if path.suffix == ".csv":
            hits += _csv_hits(path, name, terms)
        elif path.suffix == ".parquet":
            hits += _parquet_hits(path, name, terms)
        elif path.suffix not in PIXELS_ONLY:
            for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
                hits += [Hit(name, f"line {number}", line[start:end], kind) for start, end, kind in terms.spans(line)]
    return hits


def _csv_hits(path: Path, name: str, terms: IdentityTerms) -> list[Hit]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if not terms.pattern.search(text):
        return []
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, [])
    hits = [Hit(name, f"header, column {i + 1}", cell[s:e], kind)
            for i, cell in enumerate(header) for s, e, kind in terms.spans(cell)]
    for number, row in enumerate(rows, start=1):
        for column, cell in enumerate(row):
            field = header[column] if column < len(header) else f"column {column + 1}"
            hits += [Hit(name, f"row {number}, field {field}", cell[s:e], kind) for s, e, kind in terms.spans(cell)]
    return hits


def _parquet_hits(path: Path, name: str, terms: IdentityTerms) -> list[Hit]:
    import pyarrow.parquet as pq  # here: a build imports it once it writes its tables (releases.services.export)

    hits, offset = [], 0
    for batch in pq.ParquetFile(path).iter_batches():
        for field in batch.schema.names:
            cells = ["" if v is None else str(v) for v in batch.column(field).to_pylist()]
            if not terms.pattern.search("\n".join(cells)):
                continue
            hits += [Hit(name, f"row {offset + i + 1}, field {field}", cell[s:e], kind)
                     for i, cell in enumerate(cells) for s, e, kind in terms.spans(cell)]
        offset += batch.num_rows
    return hits


def report(hits: list[Hit]) -> str:
    """One entry per place (file and row, field or line), each with what was found there."""
    places: dict[tuple[str, str], list[str]] = {}
    for hit in hits:
        places.setdefault((hit.path, hit.where), []).append(f"{hit.found!r} ({hit.kind})")
    shown = [f"{path}, {where}: {', '.join(found)}" for (path, where), found in list(places.items())[:SHOWN]]
    more = len(places) - SHOWN
    if more > 0:
        shown.append(f"and {more} more places")
    return (f"PHI scan: the restricted identity of the release's recordings found in {len(places)} place(s) of what "
            f"it would publish; nothing was stored. {'; '.join(shown)}. Rename the subject or edit the text that "
            "carries it, then build anew.")


def check_release_folder(root: Path, top: str, recordings) -> None:
    """Raise InputError with the report when the release folder holds any recording's identity."""
    hits = scan_folder(root, top, release_terms(recordings))
    if hits:
        raise InputError(report(hits))
