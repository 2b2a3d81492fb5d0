"""Where a PSG carries its subject's identity, and finding that identity again in text (spec/privacy.md).

The file name, the EDF header's patient field (EDF+: `code sex birthdate name [additional]`, spaces
inside a subfield written as `_`, `X` for unknown; plain EDF: free text), its recording field (EDF+:
`Startdate dd-MMM-yyyy admin-code technician equipment`) and the measurement date give an
`IdentityTerms`: the names, codes and dates (each date in the common ways of writing it) to look for.
The import scans annotation and hypnogram texts with them, adding generic date patterns and titled
names, and redacts what it keeps; the release build scans every file it would publish
(releases.services.phi).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from pathlib import Path

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
YEARS = range(1900, 2101)  # a "date" outside is a number (a MASS id such as 01-03-0006 is none)
AGE_CAP = 90  # HIPAA Safe Harbor: ages above 89 are reported as 90
REDACTED = "[redacted]"
UNKNOWN = "X"  # EDF+: an unknown or removed subfield

# Words of file names and free-text header fields that name no one.
COMMON_WORDS = frozenset("""
    psg edf bdf edfplus hyp hypno hypnogram annotation annotations annot base baseline night nights sleep study
    recording record rec raw data export file test scoring scored score eeg eog emg ecg ekg subject patient pat
    session visit followup follow up pre post mass sleepedf synthetic demo copy final new old part split full
    startdate born birth dob mrn male female sex age years name id mr mrs ms miss dr and the of in on at
""".split())

_BOUNDARY_BEFORE, _BOUNDARY_AFTER = r"(?<![^\W_])", r"(?![^\W_])"  # not next to a letter or digit
_WORD = re.compile(r"(?<![^\W_])[^\W\d_]{2,}(?![^\W_])")  # a whole token of two or more letters
_RECORD_NUMBER = re.compile(r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[^\W\d_])[^\W_][\w-]{3,}(?![\w-])")  # letters and digits
_MONTH = "|".join(name[:3] for name in MONTH_NAMES)
_DATES = (
    ("ymd", re.compile(r"(?<!\d)(\d{4})([-_./]?)(\d{2})\2(\d{2})(?!\d)")),  # 1962-03-14, 19620314
    ("dmy", re.compile(r"(?<!\d)(\d{1,2})([-_./])(\d{1,2})\2(\d{4})(?!\d)")),  # 14.03.1962, 03/14/1962
    ("d-mon-y", re.compile(rf"(?<![^\W_])(\d{{1,2}})[-_ ]?({_MONTH})[a-z]*\.?[-_ ,]*(\d{{4}})(?!\d)", re.IGNORECASE)),
    ("mon-d-y", re.compile(rf"(?<![^\W_])({_MONTH})[a-z]*\.?[-_ ](\d{{1,2}}),?[-_ ](\d{{4}})(?!\d)", re.IGNORECASE)),
)
_TITLED_NAME = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Herr|Frau|Mme|Mlle)\.?\s+[A-Z][^\W\d_]+")


def _date(year: int, month: int, day: int) -> date | None:
    try:
        found = date(year, month, day)
    except ValueError:
        return None
    return found if found.year in YEARS else None


def _month(text: str) -> int:
    return MONTHS.index(text[:3].upper()) + 1


def dates_in(text: str) -> list[tuple[date, int, int]]:
    """Every date written in `text` in a common form, with its span (day-first and month-first both tried)."""
    found = []
    for form, pattern in _DATES:
        for match in pattern.finditer(text):
            groups = match.groups()
            if form == "ymd":
                candidates = [_date(int(groups[0]), int(groups[2]), int(groups[3]))]
            elif form == "dmy":
                a, b, year = int(groups[0]), int(groups[2]), int(groups[3])
                candidates = [_date(year, b, a), _date(year, a, b)]
            elif form == "d-mon-y":
                candidates = [_date(int(groups[2]), _month(groups[1]), int(groups[0]))]
            else:
                candidates = [_date(int(groups[2]), _month(groups[0]), int(groups[1]))]
            found += [(day, match.start(), match.end()) for day in dict.fromkeys(candidates) if day]
    return found


def date_forms(day: date) -> set[str]:
    """The ways a date is commonly written: ISO, compact, day or month first, EDF+ dd-MMM-yyyy, words."""
    d, m, y = day.day, day.month, day.year
    mon, month = MONTHS[m - 1], MONTH_NAMES[m - 1]
    forms = {f"{y}-{m:02d}-{d:02d}", f"{y}/{m:02d}/{d:02d}", f"{y}.{m:02d}.{d:02d}", f"{y}{m:02d}{d:02d}"}
    for first, second in ((d, m), (m, d)):
        for sep in "-./":
            forms |= {f"{first:02d}{sep}{second:02d}{sep}{y}", f"{first}{sep}{second}{sep}{y}",
                      f"{first:02d}{sep}{second:02d}{sep}{y % 100:02d}"}
    for dd in {f"{d:02d}", f"{d}"}:
        forms |= {f"{dd}-{mon}-{y}", f"{dd} {mon} {y}", f"{dd}{mon}{y}", f"{dd} {month} {y}", f"{month} {dd}, {y}",
                  f"{month} {dd} {y}", f"{mon} {dd}, {y}", f"{mon} {dd} {y}"}
    return forms


def edf_date(text: str) -> date | None:
    """An EDF+ date subfield (dd-MMM-yyyy), None for X or anything else."""
    match = re.fullmatch(r"(\d{2})-([A-Za-z]{3})-(\d{4})", text.strip())
    if not match or match.group(2).upper() not in MONTHS:
        return None
    return _date(int(match.group(3)), _month(match.group(2)), int(match.group(1)))


def edf_plus_patient(patient: str) -> tuple[str, str, date | None, str, list[str]] | None:
    """(code, sex, birth date, name, additional) of an EDF+ patient field; None for plain EDF free text."""
    parts = patient.split()
    if len(parts) < 4 or parts[1].upper() not in ("M", "F", UNKNOWN):
        return None
    birth = edf_date(parts[2])
    if birth is None and parts[2].upper() != UNKNOWN:
        return None
    return parts[0], parts[1], birth, parts[3], parts[4:]


def birthdate(patient: str) -> date | None:
    fields = edf_plus_patient(patient)
    return fields[2] if fields else None


def capped_age(born: date, on: date) -> int | None:
    """Age in whole years on a date, above 89 reported as 90; None when the dates make no sense."""
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if not 0 <= years < 150:
        return None
    return AGE_CAP if years > AGE_CAP - 1 else years


@dataclass
class IdentityTerms:
    """Names, codes and dates to look for in text; each term maps to what it is (e.g. "patient name")."""

    kinds: dict[str, str] = field(default_factory=dict)

    def add(self, term: str, kind: str) -> None:
        term = term.strip()
        if len(term) >= 2 and term.upper() != UNKNOWN:
            self.kinds.setdefault(term.lower(), kind)
            self.__dict__.pop("pattern", None)

    def add_date(self, day: date | None, kind: str) -> None:
        for form in date_forms(day) if day else ():
            self.add(form, kind)

    def add_words(self, text: str, kind: str, *, keep=lambda word: word.lower() not in COMMON_WORDS) -> None:
        for word in _WORD.findall(text):
            if keep(word):
                self.add(word, kind)

    def update(self, other: IdentityTerms, owner: str = "") -> None:
        for term, kind in other.kinds.items():
            self.add(term, f"{kind} of {owner}" if owner else kind)

    @cached_property
    def pattern(self) -> re.Pattern | None:
        if not self.kinds:
            return None
        return re.compile(_BOUNDARY_BEFORE + _alternation(self.kinds) + _BOUNDARY_AFTER, re.IGNORECASE)

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, kind) of every term in `text`."""
        if self.pattern is None or not text:
            return []
        return [(m.start(), m.end(), self.kinds.get(m.group(0).lower(), "identity term"))
                for m in self.pattern.finditer(text)]

    def __bool__(self) -> bool:
        return bool(self.kinds)


def _alternation(words) -> str:
    """One regular expression matching any of `words`, as a trie (fast with thousands of terms)."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict) -> str:
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        group = branches[0] if len(branches) == 1 and "" not in node else f"(?:{'|'.join(branches)})"
        return f"(?:{group})?" if "" in node else group

    return f"(?:{render(trie)})"


def identity_terms(*, source_filename: str = "", patient: str = "", recording: str = "",
                   measured: date | None = None) -> IdentityTerms:
    """What identifies the subject of one recording, from its restricted fields."""
    terms = IdentityTerms()
    fields = edf_plus_patient(patient)
    if fields:
        code, _, born, name, additional = fields
        terms.add(code, "patient code")
        terms.add_words(name.replace("_", " "), "patient name", keep=lambda word: True)  # a name, whatever it is
        terms.add_date(born, "birth date")
        terms.add_words(" ".join(additional).replace("_", " "), "patient field")
    else:
        _free_text(terms, patient, "patient field")
    parts = recording.split()
    if parts[:1] == ["Startdate"] and len(parts) >= 2:
        terms.add_date(edf_date(parts[1]), "measurement date")
        if len(parts) >= 3 and any(c.isdigit() for c in parts[2]):
            terms.add(parts[2], "hospital administration code")
    else:
        for match in _RECORD_NUMBER.finditer(recording):
            terms.add(match.group(0), "recording field")
        for day, _, _ in dates_in(recording):
            terms.add_date(day, "date in the recording field")
    stem = Path(source_filename).stem if source_filename else ""
    in_name = dates_in(stem)
    for day, _, _ in in_name:
        terms.add_date(day, "date in the file name")
    # a file name is mostly words of a protocol (night, PSG, ...): a capitalised word is taken for a name,
    # and every word once the name carries a date (Surname_Firstname_YYYY-MM-DD)
    terms.add_words(stem, "name in the file name",
                    keep=lambda word: word.lower() not in COMMON_WORDS and (bool(in_name) or word[0].isupper()))
    terms.add_date(measured, "measurement date")
    return terms


def _free_text(terms: IdentityTerms, text: str, kind: str) -> None:
    terms.add_words(text, kind)
    for match in _RECORD_NUMBER.finditer(text):
        terms.add(match.group(0), kind)
    for day, _, _ in dates_in(text):
        terms.add_date(day, f"date in the {kind}")


def recording_terms(recording) -> IdentityTerms:
    """The identity terms of a stored recording (its restricted fields)."""
    measured = recording.measured_at.date() if recording.measured_at else None
    return identity_terms(source_filename=recording.source_filename, patient=recording.edf_patient,
                          recording=recording.edf_recording, measured=measured)


def find_identity(text: str, terms: IdentityTerms) -> list[tuple[int, int, str]]:
    """(start, end, kind) of the subject's names, codes and dates in free text, and of any date or titled name."""
    spans = terms.spans(text)
    spans += [(start, end, "date") for _, start, end in dates_in(text)]
    spans += [(m.start(), m.end(), "title and name") for m in _TITLED_NAME.finditer(text)]
    return sorted(spans)


def redact(text: str, terms: IdentityTerms) -> tuple[str, list[str]]:
    """`text` with every finding replaced by [redacted], and what was found ("'Doe' (patient name)")."""
    spans = find_identity(text, terms)
    if not spans:
        return text, []
    found = list(dict.fromkeys(f"{text[start:end]!r} ({kind})" for start, end, kind in spans))
    out, position = [], 0
    for start, end, _ in spans:
        if start < position:  # overlaps the previous finding: one mark for both
            position = max(position, end)
            continue
        out += [text[position:start], REDACTED]
        position = end
    out.append(text[position:])
    return "".join(out), found


def scan_import(annotation_sets, epochs, terms: IdentityTerms) -> tuple[list, list[str]]:
    """Scan what an import reads as text: every annotation of `annotation_sets` ([(label, mne.Annotations or
    None)]: reported, their texts are not stored) and each epoch's rationale (redacted). Returns the epochs
    and the findings, one line each."""
    findings = []
    for label, annotations in annotation_sets:
        if annotations is None:
            continue
        for onset, description in zip(annotations.onset, annotations.description):
            _, found = redact(str(description), terms)
            if found:
                findings.append(f"{label} at {float(onset):g} s: {', '.join(found)} (annotation texts are not stored)")
    kept = []
    for index, epoch in enumerate(epochs):
        text, found = redact(epoch.rationale, terms)
        if found:
            findings.append(f"epoch {index} rationale: {', '.join(found)} redacted")
            epoch = replace(epoch, rationale=text)
        kept.append(epoch)
    return kept, findings
