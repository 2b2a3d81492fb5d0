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
    labels = {"W": "Sleep stage W", "N1": "Sleep stage 1", "N2": "Sleep stage 2", "N3": "Sleep stage 3", "R": "Sleep stage R"}
    return [(30.0 * i, 30.0, labels[s]) for i, s in enumerate(stages)]
