"""Read scored hypnograms from the formats the importer accepts into one shape.

Every reader converts its stage codes with an explicit map (spec/stage-codes.md) to W, N1, N2,
N3, R or "unscored", expands intervals to 30-s epochs and validates the result: epochs on a 30-s
grid from the first onset, no overlapping intervals, gaps filled with unscored epochs (noted).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from datasets.constants import EPOCH_SECONDS, MAX_HYPNOGRAM_SECONDS, MAX_RATIONALE_CHARS, RULE_IDS, UNSCORED
from datasets.exceptions import InputError

FORMATS = ("edf-annotations", "nsrr-xml", "csv", "per-line", "mass-ex")

# EDF+ annotations, Sleep-EDF and MASS (R&K 3 and 4 -> N3). Matched case-insensitively.
EDF_STAGE_MAP = {
    "Sleep stage W": "W",
    "Sleep stage 1": "N1",
    "Sleep stage 2": "N2",
    "Sleep stage 3": "N3",
    "Sleep stage 4": "N3",
    "Sleep stage R": "R",
    "Sleep stage N1": "N1",
    "Sleep stage N2": "N2",
    "Sleep stage N3": "N3",
    "Sleep stage ?": UNSCORED,
    "Movement time": UNSCORED,
}

# NSRR XML ScoredEvent EventConcept for EventType "Stages|Stages". Matched case-insensitively.
NSRR_STAGE_MAP = {
    "Wake|0": "W",
    "Stage 1 sleep|1": "N1",
    "Stage 2 sleep|2": "N2",
    "Stage 3 sleep|3": "N3",
    "Stage 4 sleep|4": "N3",
    "REM sleep|5": "R",
    "Movement|6": UNSCORED,
    "Unscored|9": UNSCORED,
}

# CSV "stage" column and per-line files: AASM labels, words, YASA integers (4 is R, not R&K 4).
TEXT_STAGE_MAP = {
    "W": "W", "Wake": "W", "0": "W",
    "N1": "N1", "1": "N1",
    "N2": "N2", "2": "N2",
    "N3": "N3", "3": "N3",
    "R": "R", "REM": "R", "4": "R",
    "-1": UNSCORED, "-2": UNSCORED, "Art": UNSCORED, "Uns": UNSCORED,
    "?": UNSCORED, "Unscored": UNSCORED,
}

# MASS-EX "Stage" column (spec/mass-ex.md): exactly the five AASM labels.
MASS_EX_STAGE_MAP = {"W": "W", "N1": "N1", "N2": "N2", "N3": "N3", "R": "R"}

STAGE_MAPS = {
    "edf-annotations": EDF_STAGE_MAP,
    "nsrr-xml": NSRR_STAGE_MAP,
    "csv": TEXT_STAGE_MAP,
    "per-line": TEXT_STAGE_MAP,
    "mass-ex": MASS_EX_STAGE_MAP,
}

# How exports write each stage (datasets/services/hypnogram_export.py): Sleep-EDF's labels and NSRR's concepts,
# each read back by the maps above to the same stage.
EDF_EXPORT_LABELS = {
    "W": "Sleep stage W", "N1": "Sleep stage 1", "N2": "Sleep stage 2", "N3": "Sleep stage 3", "R": "Sleep stage R",
    UNSCORED: "Sleep stage ?",
}
NSRR_EXPORT_CONCEPTS = {
    "W": "Wake|0", "N1": "Stage 1 sleep|1", "N2": "Stage 2 sleep|2", "N3": "Stage 3 sleep|3", "R": "REM sleep|5",
    UNSCORED: "Unscored|9",
}

NSRR_STAGE_EVENT_TYPE = "Stages|Stages"
MASS_EX_COLUMNS = ("custom_id", "Subject", "N", "Stage", "applicable_rules")
CSV_COLUMNS = ("onset", "duration", "stage")
CSV_DELIMITERS = (",", "\t", ";")
TOLERANCE_S = 0.01  # onsets and durations closer than this to the 30-s grid count as on it

_LOOKS_LIKE_STAGE = re.compile(r"^sleep[ _]?stage\b", re.IGNORECASE)


@dataclass(frozen=True)
class ScoredEpoch:
    """One 30-s epoch: onset in seconds from recording start, stage label, optional rules."""

    onset: float
    stage: str
    rule_ids: tuple[str, ...] = ()
    rationale: str = ""


@dataclass
class Hypnogram:
    """Consecutive 30-s epochs read from `source` in `format`; `notes` record any repairs."""

    epochs: list[ScoredEpoch]
    format: str
    source: str
    notes: list[str]
    annotations: object = field(default=None, repr=False)  # an EDF+ file's mne.Annotations, for the identity scan

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def onset(self) -> float:
        """Onset of the first epoch (0.0 when there are none)."""
        return self.epochs[0].onset if self.epochs else 0.0

    @property
    def end(self) -> float:
        """End of the last epoch (0.0 when there are none)."""
        return self.epochs[-1].onset + EPOCH_SECONDS if self.epochs else 0.0

    @property
    def stages(self) -> list[str]:
        return [epoch.stage for epoch in self.epochs]


@dataclass(frozen=True)
class MassExRow:
    """One MASS-EX CSV row; `where` is its line for error messages."""

    n: int
    stage: str
    rule_ids: tuple[str, ...]
    rationale: str
    subject: str
    where: str


@dataclass(frozen=True)
class _Interval:
    onset: float
    duration: float
    stage: str
    where: str  # location for error messages, e.g. "line 4"
    rule_ids: tuple[str, ...] = ()
    rationale: str = ""


def read_hypnogram(path, fmt: str | None = None, *, onset: float = 0.0) -> Hypnogram:
    """Read a hypnogram file; `fmt` is one of FORMATS or None to detect it.

    `onset` (seconds) is added to every onset; for per-line and MASS-EX files it is the onset
    of the first epoch.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if fmt is None:
        fmt = _detect_format(path)
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown hypnogram format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "edf-annotations":
        hypnogram = _read_edf_annotations(path, onset)
    elif fmt == "nsrr-xml":
        hypnogram = _read_nsrr_xml(path, onset)
    elif fmt == "csv":
        hypnogram = _read_csv(path, onset)
    elif fmt == "per-line":
        hypnogram = _read_per_line(path, onset)
    else:
        hypnogram = _read_mass_ex(path, onset)
    if not hypnogram.epochs:
        raise InputError(f"{path}: no sleep stages found (read as {fmt})")
    return hypnogram


def hypnogram_from_annotations(annotations, source: str) -> Hypnogram:
    """Stage epochs from `mne.Annotations` (e.g. a PSG's `raw.annotations`).

    Onsets are taken as given (relative to the recording start for a freshly read EDF). Returns a
    Hypnogram without epochs when no annotation is a stage label.
    """
    return _from_annotations(annotations, source, 0.0)


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".edf", ".bdf"):
        return "edf-annotations"
    if suffix == ".xml":
        return "nsrr-xml"
    if suffix not in (".csv", ".tsv", ".txt"):
        raise InputError(
            f"{path}: cannot tell the hypnogram format from the extension {suffix!r}; "
            f"choose one of {', '.join(FORMATS)}"
        )
    first = next((line for line in _read_text(path).splitlines() if line.strip()), "")
    cells = {cell.strip().lower() for cell in re.split(r"[,\t;]", first)}
    if "custom_id" in cells or {"n", "stage"} <= cells:
        return "mass-ex"
    if set(CSV_COLUMNS) <= cells:
        return "csv"
    if len(first.split()) == 1 and _stage_token(first) in _lower_keys(TEXT_STAGE_MAP):
        return "per-line"
    raise InputError(
        f"{path}: line 1: cannot tell the hypnogram format from {first.strip()[:80]!r}; expected a "
        f"header with onset, duration, stage (csv) or custom_id, N, Stage (mass-ex), or one stage "
        f"per line; or choose one of {', '.join(FORMATS)}"
    )


def _read_edf_annotations(path: Path, onset: float) -> Hypnogram:
    import mne

    from datasets.services.psg import shown_bytes

    with path.open("rb") as handle:
        version = handle.read(8)
    if version not in (b"0       ", b"\xffBIOSEMI"):
        raise InputError(f"{path}: not an EDF+/BDF+ file (header starts with {shown_bytes(version)})")
    try:
        annotations = mne.read_annotations(path)
    except Exception as error:  # mne raises many types for unreadable files
        raise InputError(f"{path}: cannot read EDF+ annotations: {error}") from error
    hypnogram = _from_annotations(annotations, str(path), onset)
    hypnogram.annotations = annotations
    return hypnogram


def _from_annotations(annotations, source: str, shift: float) -> Hypnogram:
    stage_map = _lower_keys(EDF_STAGE_MAP)
    intervals, notes, pointlike = [], [], 0
    for start, duration, label in zip(annotations.onset, annotations.duration, annotations.description):
        key = " ".join(str(label).split()).lower()
        where = f"annotation {label!r} at {float(start):g} s"
        if key not in stage_map:
            if _LOOKS_LIKE_STAGE.match(key):
                raise InputError(
                    f"{source}: {where}: unknown stage label; expected one of {', '.join(EDF_STAGE_MAP)}"
                )
            continue
        if not (math.isfinite(start) and math.isfinite(duration)):
            raise InputError(f"{source}: {where}: onset and duration must be finite numbers of seconds")
        if duration <= 0:
            pointlike += 1
            duration = EPOCH_SECONDS
        intervals.append(_Interval(float(start) + shift, float(duration), stage_map[key], where))
    if pointlike:
        notes.append(f"{pointlike} stage annotations without duration taken as one 30-s epoch each")
    return _assemble(intervals, "edf-annotations", source, notes)


def _read_nsrr_xml(path: Path, onset: float) -> Hypnogram:
    fields = ("EventType", "EventConcept", "Start", "Duration")
    events: list[dict] = []
    text: list[str] = []
    current: dict | None = None
    parser = expat.ParserCreate()

    def start_element(name, _attrs):
        nonlocal current
        text.clear()
        if name == "ScoredEvent":
            current = {"line": parser.CurrentLineNumber}

    def end_element(name):
        nonlocal current
        if current is None:
            return
        if name == "ScoredEvent":
            events.append(current)
            current = None
        elif name in fields:
            current[name] = "".join(text).strip()

    parser.StartElementHandler = start_element
    parser.EndElementHandler = end_element
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(path.read_bytes(), True)
    except expat.ExpatError as error:
        raise InputError(
            f"{path}: line {error.lineno}, column {error.offset + 1}: malformed XML: "
            f"{expat.ErrorString(error.code)}"
        ) from error

    stage_map = _lower_keys(NSRR_STAGE_MAP)
    intervals = []
    for event in events:
        if event.get("EventType", "").lower() != NSRR_STAGE_EVENT_TYPE.lower():
            continue
        where = f"line {event['line']}"
        concept = event.get("EventConcept", "")
        stage = stage_map.get(" ".join(concept.split()).lower())
        if stage is None:
            raise InputError(
                f"{path}: {where}: unknown stage EventConcept {concept!r}; "
                f"expected one of {', '.join(NSRR_STAGE_MAP)}"
            )
        start = _number(event.get("Start"), path, where, "Start")
        duration = _number(event.get("Duration"), path, where, "Duration")
        intervals.append(_Interval(start + onset, duration, stage, where))
    return _assemble(intervals, "nsrr-xml", str(path), [])


def _read_csv(path: Path, onset: float) -> Hypnogram:
    text = _read_text(path)
    header = text.splitlines()[0] if text else ""
    delimiter = next(
        (d for d in CSV_DELIMITERS if set(CSV_COLUMNS) <= {c.strip().lower() for c in header.split(d)}),
        None,
    )
    if delimiter is None:
        raise InputError(
            f"{path}: line 1: header must name the columns onset, duration and stage "
            f"(comma, tab or semicolon separated); found {header.strip()[:80]!r}"
        )
    rows = _csv_rows(text, delimiter, path)
    columns = [c.strip().lower() for c in next(rows, (1, []))[1]]
    if not set(CSV_COLUMNS) <= set(columns):  # the split found them, but the quoting of the header hides one
        raise InputError(f"{path}: line 1: header must name the columns onset, duration and stage; read as CSV it "
                         f"names {', '.join(repr(c[:20]) for c in columns[:8])}")
    index = {name: columns.index(name) for name in CSV_COLUMNS}
    stage_map = _lower_keys(TEXT_STAGE_MAP)
    intervals = []
    for line_no, row in rows:
        where = f"line {line_no}"
        if len(row) < len(columns):
            raise InputError(f"{path}: {where}: expected {len(columns)} fields, found {len(row)}")
        label = row[index["stage"]].strip()
        stage = stage_map.get(_stage_token(label))
        if stage is None:
            raise InputError(
                f"{path}: {where}: unknown stage {label[:40]!r}; expected one of {', '.join(TEXT_STAGE_MAP)}"
            )
        start = _number(row[index["onset"]], path, where, "onset")
        duration = _number(row[index["duration"]], path, where, "duration")
        intervals.append(_Interval(start + onset, duration, stage, where))
    return _assemble(intervals, "csv", str(path), [])


def _read_per_line(path: Path, onset: float) -> Hypnogram:
    lines = _read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    stage_map = _lower_keys(TEXT_STAGE_MAP)
    intervals = []
    for line_no, line in enumerate(lines, start=1):
        tokens = line.split()
        if len(tokens) != 1:
            problem = f"expected one stage, found {line.strip()[:40]!r}" if tokens else "blank line inside the hypnogram"
            raise InputError(f"{path}: line {line_no}: {problem}")
        stage = stage_map.get(_stage_token(tokens[0]))
        if stage is None:
            raise InputError(
                f"{path}: line {line_no}: unknown stage {tokens[0][:40]!r}; "
                f"expected one of {', '.join(TEXT_STAGE_MAP)}"
            )
        onset_s = onset + (line_no - 1) * EPOCH_SECONDS
        intervals.append(_Interval(onset_s, EPOCH_SECONDS, stage, f"line {line_no}"))
    return _assemble(intervals, "per-line", str(path), [])


def read_mass_ex_rows(path) -> list[MassExRow]:
    """The rows of a MASS-EX CSV (spec/mass-ex.md), checked: N sorted without duplicates, known stages and rules."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    rows = _csv_rows(_read_text(path), ",", path)
    columns = [c.strip() for c in next(rows, (1, []))[1]]
    absent = [name for name in MASS_EX_COLUMNS if name not in columns]
    if absent:
        raise InputError(
            f"{path}: line 1: MASS-EX header lacks {', '.join(absent)}; "
            f"expected {', '.join(MASS_EX_COLUMNS[:3])}, [reasoning_text,] {', '.join(MASS_EX_COLUMNS[3:])}"
        )
    index = {name: columns.index(name) for name in columns}
    has_reasoning = "reasoning_text" in index
    result: list[MassExRow] = []
    custom_ids: dict[str, str] = {}
    for line_no, row in rows:
        where = f"line {line_no}"
        if len(row) != len(columns):
            raise InputError(f"{path}: {where}: expected {len(columns)} fields, found {len(row)}")
        n_text = row[index["N"]].strip()
        if not re.fullmatch(r"[0-9]{1,9}", n_text):
            raise InputError(f"{path}: {where}: N must be a non-negative integer (at most 9 digits), "
                             f"found {n_text[:40]!r}")
        n = int(n_text)
        if result and n <= result[-1].n:
            problem = "duplicates" if n == result[-1].n else "comes before"
            raise InputError(
                f"{path}: {where}: epoch N={n} {problem} N={result[-1].n} of the previous row; "
                "rows must be sorted by N without duplicates"
            )
        custom_id = row[index["custom_id"]].strip()
        if custom_id in custom_ids:
            raise InputError(f"{path}: {where}: custom_id {custom_id[:80]!r} repeats that of {custom_ids[custom_id]}; "
                             "each row needs its own custom_id")
        custom_ids[custom_id] = where
        label = row[index["Stage"]].strip()
        if label not in MASS_EX_STAGE_MAP:
            raise InputError(
                f"{path}: {where}: unknown stage {label[:40]!r}; expected one of {', '.join(MASS_EX_STAGE_MAP)}"
            )
        rule_ids = tuple(r.strip() for r in row[index["applicable_rules"]].split(",") if r.strip())
        for rule_id in rule_ids:
            if rule_id not in RULE_IDS:
                raise InputError(
                    f"{path}: {where}: unknown rule id {rule_id[:40]!r} in applicable_rules; "
                    f"expected ids from {', '.join(RULE_IDS)}"
                )
        rationale = row[index["reasoning_text"]].strip() if has_reasoning else ""
        if len(rationale) > MAX_RATIONALE_CHARS:
            raise InputError(f"{path}: {where}: reasoning_text has {len(rationale):,} characters, "
                             f"more than {MAX_RATIONALE_CHARS:,}")
        result.append(MassExRow(n, MASS_EX_STAGE_MAP[label], rule_ids, rationale, row[index["Subject"]].strip(), where))
    return result


def _read_mass_ex(path: Path, onset: float) -> Hypnogram:
    """Rows as epochs at onset + N * 30 s: right only when the CSV's epochs are contiguous (spec/mass-ex.md)."""
    intervals = [
        _Interval(onset + row.n * EPOCH_SECONDS, EPOCH_SECONDS, row.stage, row.where, row.rule_ids, row.rationale)
        for row in read_mass_ex_rows(path)
    ]
    return _assemble(intervals, "mass-ex", str(path), [])


def _assemble(intervals: list[_Interval], fmt: str, source: str, notes: list[str]) -> Hypnogram:
    """Expand intervals to consecutive 30-s epochs, checking the grid and overlaps, filling gaps."""
    intervals = sorted(intervals, key=lambda interval: interval.onset)
    epochs: list[ScoredEpoch] = []
    if not intervals:
        return Hypnogram(epochs, fmt, source, notes)
    first = intervals[0].onset
    if first < -TOLERANCE_S:
        raise InputError(f"{source}: {intervals[0].where}: onset {first:g} s is before the recording start")
    end = first
    for interval in intervals:
        if interval.onset + interval.duration - first > MAX_HYPNOGRAM_SECONDS:
            raise InputError(
                f"{source}: {interval.where}: the hypnogram would last past {MAX_HYPNOGRAM_SECONDS / 86400:g} days "
                f"(interval at {interval.onset:g} s lasting {interval.duration:g} s); a hypnogram covers one recording"
            )
        count = _epoch_count(interval, source)
        steps = (interval.onset - first) / EPOCH_SECONDS
        if abs(steps - round(steps)) * EPOCH_SECONDS > TOLERANCE_S:
            raise InputError(
                f"{source}: {interval.where}: onset {interval.onset:g} s is not on the 30-s epoch grid "
                f"starting at {first:g} s"
            )
        start = first + round(steps) * EPOCH_SECONDS
        if start < end - TOLERANCE_S:
            raise InputError(
                f"{source}: {interval.where}: stage interval at {start:g} s overlaps the previous one, "
                f"which ends at {end:g} s"
            )
        gap = round((start - end) / EPOCH_SECONDS)
        if gap:
            epochs += [ScoredEpoch(end + k * EPOCH_SECONDS, UNSCORED) for k in range(gap)]
            notes.append(f"gap {end:g}-{start:g} s filled with {gap} unscored epochs")
        epochs += [
            ScoredEpoch(start + k * EPOCH_SECONDS, interval.stage, interval.rule_ids, interval.rationale)
            for k in range(count)
        ]
        end = start + count * EPOCH_SECONDS
    return Hypnogram(epochs, fmt, source, notes)


def _epoch_count(interval: _Interval, source: str) -> int:
    epochs = interval.duration / EPOCH_SECONDS
    count = round(epochs)
    if count >= 1 and abs(epochs - count) * EPOCH_SECONDS <= TOLERANCE_S:
        return count
    if abs(interval.duration - 20) <= TOLERANCE_S:
        problem = (
            "20-s epochs (R&K scoring as in MASS SS2/SS4/SS5) are not supported; "
            "stage targets need 30-s epochs"
        )
    else:
        problem = f"duration {interval.duration:g} s is not a positive multiple of 30 s"
    raise InputError(f"{source}: {interval.where}: {problem}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text (byte {error.start}): {error.reason}") from error


def _csv_rows(text: str, delimiter: str, path: Path):
    """Yield (1-based line where the record starts, fields) for each non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line_no = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield line_no, row
            line_no = reader.line_num + 1
    except csv.Error as error:
        raise InputError(f"{path}: line {reader.line_num}: malformed CSV: {error}") from error


def _number(text: str | None, path: Path, where: str, field: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"{path}: {where}: {field} must be a number of seconds, found {(text or '')[:40]!r}")
    return value


def _stage_token(text: str) -> str:
    """Lower-cased label; integral numbers as plain integers (YASA's np.savetxt writes 2.0e+00)."""
    token = text.strip().lower()
    try:
        number = float(token)
    except ValueError:
        return token
    return str(int(number)) if number.is_integer() else token


def _lower_keys(mapping: dict[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in mapping.items()}
