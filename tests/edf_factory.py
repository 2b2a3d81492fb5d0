"""Write small EDF+ files for tests with MNE (the same library the importer reads with)."""
from pathlib import Path

import mne
import numpy as np


def write_edf(path: Path, channels: dict[str, np.ndarray], sfreq: float, annotations=None) -> Path:
    """channels: name -> signal in microvolts; annotations: [(onset, duration, label)]."""
    names = list(channels)
    info = mne.create_info(names, sfreq, ch_types="eeg")
    raw = mne.io.RawArray(np.vstack([channels[n] for n in names]) * 1e-6, info, verbose="error")
    if annotations:
        onsets, durations, labels = zip(*annotations)
        raw.set_annotations(mne.Annotations(onsets, durations, labels))
    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")
    return path


def noise_channels(names, seconds: float, sfreq: float, seed: int = 0, uv: float = 20.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(seconds * sfreq)
    return {name: rng.normal(0, uv, n) for name in names}


def stage_annotations(stages: list[str]) -> list[tuple[float, float, str]]:
    labels = {"W": "Sleep stage W", "N1": "Sleep stage 1", "N2": "Sleep stage 2", "N3": "Sleep stage 3", "R": "Sleep stage R",
              "?": "Sleep stage ?", "MT": "Movement time"}
    return [(30.0 * i, 30.0, labels[s]) for i, s in enumerate(stages)]


def write_bdf(path: Path, channels: dict[str, np.ndarray], sfreq: int, record_s: int = 1) -> Path:
    """A plain BDF (24-bit) file written by hand from the BioSemi layout: header, then int24 records."""
    names = list(channels)
    n_records = len(next(iter(channels.values()))) // (sfreq * record_s)
    spr = sfreq * record_s
    pmin, pmax, dmin, dmax = -3276.8, 3276.7, -8388608, 8388607

    def field(value, width):
        return str(value).ljust(width)[:width].encode("latin-1")

    ns = len(names)
    header = b"\xffBIOSEMI" + field("X X X X", 80) + field("Startdate X", 80) + field("01.01.24", 8)
    header += field("23.00.00", 8) + field(256 * (ns + 1), 8) + field("24BIT", 44) + field(n_records, 8)
    header += field(record_s, 8) + field(ns, 4)
    columns = [
        [field(n, 16) for n in names], [field("AgAgCl", 80)] * ns, [field("uV", 8)] * ns,
        [field(pmin, 8)] * ns, [field(pmax, 8)] * ns, [field(dmin, 8)] * ns, [field(dmax, 8)] * ns,
        [field("HP:0.1Hz", 80)] * ns, [field(spr, 8)] * ns, [field("", 32)] * ns,
    ]
    header += b"".join(b"".join(column) for column in columns)
    gain = (dmax - dmin) / (pmax - pmin)
    digital = {n: np.round((np.asarray(channels[n]) - pmin) * gain + dmin).astype(np.int32) for n in names}
    body = bytearray()
    for r in range(n_records):
        for n in names:
            block = digital[n][r * spr : (r + 1) * spr].astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
            body += block.tobytes()
    path.write_bytes(header + bytes(body))
    return path
