"""Fixed vocabulary of the platform: stages, AASM derivations, image geometry (spec/rendering.md)."""

EPOCH_SECONDS = 30
TARGET_SFREQ = 100  # Hz, after resampling: 3000 samples per 30-s epoch
EPOCH_SAMPLES = EPOCH_SECONDS * TARGET_SFREQ

STAGES = ("W", "N1", "N2", "N3", "R")
UNSCORED = "unscored"
STAGE_CHOICES = [(s, s) for s in STAGES] + [(UNSCORED, "Unscored")]

# The six derivations, in band order (top to bottom) with colour and half-range in microvolts.
DERIVATIONS = ("F4-M1", "C4-M1", "O2-M1", "LOC", "ROC", "Chin EMG")
DERIVATION_COLOURS = {
    "F4-M1": "#FFFF00",
    "C4-M1": "#00FF00",
    "O2-M1": "#FF0000",
    "LOC": "#00FFFF",
    "ROC": "#FF00FF",
    "Chin EMG": "#0000FF",
}
DERIVATION_HALF_RANGE_UV = {d: (40.0 if d == "Chin EMG" else 50.0) for d in DERIVATIONS}
EEG_DERIVATIONS = ("F4-M1", "C4-M1", "O2-M1")
EOG_DERIVATIONS = ("LOC", "ROC")
EMG_DERIVATIONS = ("Chin EMG",)

MODEL_IMAGE_SIZE = (448, 224)  # width, height in pixels
GRID_COLOUR = "#404040"
