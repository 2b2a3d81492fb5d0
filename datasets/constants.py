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

# The signal view of the scoring and rating pages: the model's 100-Hz preparation, or the recording's own
# rate with a technologist's filters (AASM defaults).
MODEL_VIEW, CLINICAL_VIEW = "model", "clinical"
SIGNAL_VIEW_CHOICES = [(MODEL_VIEW, "As the model saw it (100 Hz preparation)"),
                       (CLINICAL_VIEW, "Clinical (own sampling rate, AASM filters)")]

MODEL_IMAGE_SIZE = (448, 224)  # width, height in pixels
# Longest rationale (and rater note) kept: a MASS-EX reasoning text runs to ~1,500 characters; more is an error.
MAX_RATIONALE_CHARS = 10_000
# Longest hypnogram read (7 days, as psg.MAX_DURATION_S): a longer one is an error, not a night.
MAX_HYPNOGRAM_SECONDS = 7 * 24 * 3600
GRID_COLOUR = "#404040"

# The 15 operationalised AASM rules cited by SleepVLM and MASS-EX (spec/rules.md): id, stage, title, text.
# Ids are fixed; the texts seed the editable catalog in the inference app.
AASM_RULES = (
    ("W.1", "W", "Occipital alpha", "Alpha rhythm (8–13 Hz) over the occipital region for more than half the epoch."),
    ("W.2", "W", "Eye blinks", "Eye blinks (0.5–2 Hz)."),
    ("W.3", "W", "Rapid eye movements, chin EMG normal or raised",
     "Irregular conjugate rapid eye movements with normal or raised chin EMG."),
    ("N1.1", "N1", "Alpha replaced by LAMF",
     "In a person who shows alpha: alpha attenuated and replaced by low-amplitude mixed-frequency (LAMF, mostly "
     "4–7 Hz) activity for more than half the epoch."),
    ("N1.2", "N1", "Slowing, vertex waves or slow eye movements",
     "In a person without alpha: first of 4–7 Hz activity with background slowing >= 1 Hz, vertex sharp waves, "
     "or slow eye movements."),
    ("N2.1", "N2", "Start N2: K-complex or spindle",
     "A K-complex not linked to an arousal, or a sleep spindle, in the first half of this epoch or the last half "
     "of the previous one (N3 not met)."),
    ("N2.2", "N2", "Continue N2",
     "LAMF without K-complexes or spindles following N2, with no arousal in between."),
    ("N2.3", "N2", "After N3", "An epoch after N3 that no longer meets N3 and is not W or R."),
    ("N2.4", "N2 end", "End N2",
     "Transition to W, N3 or R; an arousal (score N1 until a K-complex or spindle); a major body movement "
     "followed by slow eye movements (N1)."),
    ("N3.1", "N3", "Slow-wave activity >= 20%",
     "Slow-wave activity (0.5–2 Hz, > 75 µV peak-to-peak, frontal) for at least 20% of the epoch."),
    ("R.1", "R", "Definite R", "LAMF EEG, low chin EMG and rapid eye movements together."),
    ("R.2", "R", "Continue R",
     "Contiguous with definite R, LAMF without K-complexes or spindles, chin EMG still low, no arousal."),
    ("R.3", "R end", "End R",
     "Transition to W or N3; chin EMG rising with N1 criteria; arousal followed by slow eye movements (N1); "
     "K-complexes or spindles without REMs (N2)."),
    ("MBM.1", "W", "Major body movement with alpha",
     "Major body movement (artefact over more than half the epoch): W if alpha appears anywhere in it or the "
     "epochs on both sides are W."),
    ("MBM.2", "any", "Major body movement otherwise", "Major body movement otherwise: same stage as the following epoch."),
)
RULE_IDS = tuple(rule[0] for rule in AASM_RULES)
