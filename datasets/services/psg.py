"""Read EDF, EDF+ and BDF files with MNE after checking the header ourselves.

MNE reads damaged files leniently (or fails with messages about its internals); the header
check here turns every such problem into an InputError that names what is wrong.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import mne

from datasets.exceptions import InputError

MAX_SIGNALS = 1024
MAX_DURATION_S = 7 * 24 * 3600


@dataclass
class SignalHeader:
    label: str
    unit: str
    samples_per_record: int
    sfreq: float


@dataclass
class PsgHeader:
    file_format: str  # EDF, EDF+ or BDF
    n_records: int
    record_duration: float
    signals: list[SignalHeader] = field(default_factory=list)
    # identity fields, as in the file (restricted: datasets.services.identity)
    patient: str = ""  # bytes 8-88: EDF+ "code sex birthdate name", plain EDF free text
    recording: str = ""  # bytes 88-168: EDF+ "Startdate dd-MMM-yyyy admin-code technician equipment"
    startdate: str = ""  # dd.mm.yy
    starttime: str = ""  # hh.mm.ss

    @property
    def duration_s(self) -> float:
        return self.n_records * self.record_duration


def _field(raw: bytes, start: int, width: int) -> str:
    return raw[start : start + width].decode("latin-1").strip()


def shown_bytes(raw: bytes) -> str:
    """A file's bytes as a curator reads them: printable ASCII as is, anything else as hex, in quotes."""
    return "'" + "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in raw) + "'"


# Common files picked by mistake, by their first bytes.
SIGNATURES = ((b"PK\x03\x04", "a ZIP archive"), (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"),
              (b"<?xml", "an XML file (a hypnogram?)"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"))


def _looks_like(head: bytes) -> str:
    """': it looks like a ZIP archive' and the like, for a file that is not EDF or BDF ('' when unknown)."""
    kind = next((kind for start, kind in SIGNATURES if head.startswith(start)), None)
    if kind is None and head[:64].isascii() and all(32 <= b < 127 or b in b"\r\n\t" for b in head[:64]):
        kind = "a text file"
    return f": it looks like {kind}" if kind else ""


def _number(text: str, what: str, name: str, cast=float):
    try:
        return cast(text)
    except ValueError:
        raise InputError(f"{name}: header field '{what}' is not a number: {shown_bytes(text.encode('latin-1'))}") from None


def read_header(path: Path) -> PsgHeader:
    """Parse and sanity-check an EDF/EDF+/BDF header; raise InputError naming any problem."""
    name = path.name
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(256)
        if len(head) < 256:
            raise InputError(f"{name}: truncated header: the file has {size} bytes, an EDF/BDF header needs at least 256")
        if head[:8] == b"\xffBIOSEMI":
            file_format, sample_bytes = "BDF", 3
        elif head[:8] == b"0       ":
            file_format, sample_bytes = "EDF", 2
        else:
            raise InputError(f"{name}: not an EDF or BDF file{_looks_like(head)} (the first 8 bytes are "
                             f"{shown_bytes(head[:8])}; an EDF file starts with '0' and seven spaces)")
        identity = {"patient": _field(head, 8, 80), "recording": _field(head, 88, 80),
                    "startdate": _field(head, 168, 8), "starttime": _field(head, 176, 8)}
        reserved = _field(head, 192, 44)
        if reserved.startswith(("EDF+", "BDF+")):
            file_format += "+"
        header_bytes = _number(_field(head, 184, 8), "header bytes", name, int)
        n_records = _number(_field(head, 236, 8), "number of data records", name, int)
        record_duration = _number(_field(head, 244, 8), "duration of a data record", name)
        ns = _number(_field(head, 252, 4), "number of signals", name, int)
        if not 1 <= ns <= MAX_SIGNALS:
            raise InputError(f"{name}: absurd header: {ns} signals (expected 1 to {MAX_SIGNALS})")
        if header_bytes != 256 * (ns + 1):
            raise InputError(f"{name}: absurd header: it declares {header_bytes} header bytes but {ns} signals need {256 * (ns + 1)}")
        rest = fh.read(256 * ns)
    if len(rest) < 256 * ns:
        raise InputError(f"{name}: truncated header: {ns} signals need {256 * (ns + 1)} header bytes, the file has {size}")
    if record_duration <= 0 or record_duration > 3600:
        raise InputError(f"{name}: absurd header: data record duration {record_duration} s")

    def column(offset: int, width: int) -> list[str]:
        base = offset * ns
        return [_field(rest, base + i * width, width) for i in range(ns)]

    labels, units = column(0, 16), column(96, 8)
    offset = 16 + 80 + 8
    phys_min, phys_max = column(offset, 8), column(offset + 8, 8)
    dig_min, dig_max = column(offset + 16, 8), column(offset + 24, 8)
    spr = column(offset + 32 + 80, 8)
    signals = []
    for i, label in enumerate(labels):
        n = _number(spr[i], f"samples per record of '{label}'", name, int)
        if n <= 0:
            raise InputError(f"{name}: absurd header: signal '{label}' has {n} samples per data record")
        pmin, pmax = (_number(v, f"physical range of '{label}'", name) for v in (phys_min[i], phys_max[i]))
        dmin, dmax = (_number(v, f"digital range of '{label}'", name) for v in (dig_min[i], dig_max[i]))
        if label != "EDF Annotations" and (pmin == pmax or dmin >= dmax):
            raise InputError(
                f"{name}: absurd header: signal '{label}' has physical range {pmin}..{pmax} and digital range {dmin}..{dmax}"
            )
        signals.append(SignalHeader(label=label, unit=units[i], samples_per_record=n, sfreq=n / record_duration))

    record_bytes = sum(s.samples_per_record for s in signals) * sample_bytes
    data_bytes = size - header_bytes
    if n_records == -1:  # allowed while recording: derive from the size
        n_records = data_bytes // record_bytes
    if n_records <= 0:
        raise InputError(f"{name}: absurd header: {n_records} data records")
    if data_bytes < n_records * record_bytes:
        held = data_bytes // record_bytes
        raise InputError(
            f"{name}: truncated data: the header promises {n_records} data records "
            f"({n_records * record_bytes} bytes) but the file holds {data_bytes} bytes ({held} complete records)"
        )
    header = PsgHeader(file_format, n_records, record_duration, signals, **identity)
    if header.duration_s > MAX_DURATION_S:
        raise InputError(f"{name}: absurd header: the recording would last {header.duration_s / 3600:.0f} hours")
    return header


def read_psg(path: Path) -> tuple[mne.io.BaseRaw, PsgHeader]:
    """Open a PSG file lazily with MNE after the header check."""
    header = read_header(path)
    reader = mne.io.read_raw_bdf if header.file_format.startswith("BDF") else mne.io.read_raw_edf
    try:
        raw = reader(path, preload=False, verbose="error")
    except Exception as exc:  # MNE's own message, prefixed with the file name
        raise InputError(f"{path.name}: MNE cannot read this {header.file_format} file: {exc}") from None
    return raw, header
