"""Writes the EDF+ hypnograms of the corpus (run from the repository root:
.venv/bin/python tests/data/bad/hypnograms/make_edf.py); the files are committed beside it."""
from pathlib import Path

from edfio import Edf, EdfAnnotation

HERE = Path(__file__).resolve().parent
STAGES = ["Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage R"]


def write(name: str, annotations: list[tuple[float, float, str]]) -> None:
    edf = Edf([], annotations=[EdfAnnotation(onset, duration, text) for onset, duration, text in annotations])
    edf.write(HERE / name)


# 20 epochs of 30 s (the corpus PSG lasts 600 s), the 5th lasting 60 s: it overlaps the 6th
overlap = [(30.0 * i, 30.0, STAGES[i % 5]) for i in range(20)]
overlap[4] = (120.0, 60.0, STAGES[4])
write("edf_overlapping.edf", overlap)
# the same 20 epochs, written in reverse time order (EDF+ does not require order: read in time order)
write("edf_out_of_order.edf", [(30.0 * i, 30.0, STAGES[i % 5]) for i in reversed(range(20))])
# the same epochs, one off the 30-s grid by 7 s
write("edf_off_grid.edf", [(30.0 * i + (7.0 if i == 3 else 0.0), 30.0, STAGES[i % 5]) for i in range(20)])
# an unknown stage label
write("edf_unknown_stage.edf", [(30.0 * i, 30.0, "Sleep stage 5" if i == 4 else STAGES[i % 5]) for i in range(20)])
# 30 epochs: 15 minutes of stages for a 10-minute recording
write("edf_longer_than_recording.edf", [(30.0 * i, 30.0, STAGES[i % 5]) for i in range(30)])
