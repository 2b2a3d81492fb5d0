"""Import one PSG night: read, map channels, prepare signals, cut epochs, render, store.

Atomic: files are written first (content-addressed), then every row in one transaction; on any
failure no row remains. Files are never deleted here: a content-addressed file may already serve a
row committed by another import, so unreferenced files are left to the storage sweep. Imports of
the same file (SHA-256) are serialised with a named lock.

The subject's identity (file name, EDF header fields, measurement date) goes only into restricted fields:
the recording is named by a pseudonymous subject id (pseudonyms.py), its stored start follows the cohort's
date policy, and annotation and hypnogram texts are scanned for names and dates (identity.py).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from core.locks import named_lock
from core.models import ChangeRecord
from core.services import audit

from datasets.constants import EMG_DERIVATIONS, EPOCH_SAMPLES, EPOCH_SECONDS, MODEL_IMAGE_SIZE, TARGET_SFREQ, UNSCORED
from datasets.exceptions import InputError
from datasets.models import Cohort, Epoch, EpochImage, Recording
from datasets.services import identity, pseudonyms, storage
from datasets.services.channels import ChannelPlan, plan_channels
from datasets.services.hypnograms import (
    Hypnogram, ScoredEpoch, hypnogram_from_annotations, read_hypnogram, read_mass_ex_rows,
)
from datasets.services.massex import NEEDS_HYPNOGRAM, apply_rows, contiguous_numbers, ranks, subject_notes
from datasets.services.psg import PsgHeader, read_psg
from datasets.services.rendering import render_model_images
from datasets.services.signals import CURRENT_PROFILE, PROFILE_DESCRIPTIONS, minimum_sfreq, prepare_all

Progress = Callable[[float, int, int, str], None]
MICROVOLT_UNITS = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6}


@dataclass
class ImportRequest:
    path: Path
    cohort: str
    source_name: str = ""
    hypnogram: Path | None = None
    hypnogram_format: str | None = None
    channel_map: dict | None = None
    mains_hz: float = 50.0
    trim_to_hypnogram: bool = False
    profile: str = CURRENT_PROFILE
    massex: Path | None = None  # MASS-EX CSV whose rules and rationale go onto the hypnogram's scored epochs
    massex_contiguous: bool = False  # the user states a MASS-EX CSV's epochs are contiguous: it is the hypnogram
    subject_id: str = ""  # given by the curator; else the file name's MASS id or the cohort's next number
    notes: list[str] = field(default_factory=list)


def _no_progress(fraction: float, done: int, total: int, message: str) -> None:
    pass


def find_existing(path: Path) -> Recording | None:
    return Recording.objects.filter(sha256=storage.file_sha256(path)).first()


def import_psg(request: ImportRequest, *, user=None, progress: Progress = _no_progress,
               guard: Callable[[], None] | None = None) -> tuple[Recording, bool]:
    """Import a PSG file; return (recording, created). The same file (SHA-256) imports once.

    `guard` runs inside the transaction of the rows, before any is written, and raises to refuse them (a job
    whose worker lost its lease); the content-addressed files stored before are then the storage sweep's."""
    sha = storage.file_sha256(request.path)
    with named_lock(f"import:{sha}"):
        return _import_locked(request, sha, user, progress, guard)


def _import_locked(request: ImportRequest, sha: str, user, progress: Progress, guard=None) -> tuple[Recording, bool]:
    existing = Recording.objects.filter(sha256=sha).first()
    if existing is not None:
        progress(1.0, existing.epoch_count, existing.epoch_count, f"already imported as recording #{existing.pk}")
        return existing, False
    name = request.source_name or request.path.name
    progress(0.01, 0, 0, "reading header")
    raw, header = read_psg(request.path)
    plan = plan_channels(raw.ch_names, request.channel_map, source=name)
    channel_notes = _check_channels(plan, header, name)
    hypnogram = _load_hypnogram(request, raw)
    usable_s = (raw.n_times * TARGET_SFREQ // raw.info["sfreq"]) / TARGET_SFREQ  # whole samples after resampling
    scored, align_notes = align_epochs(hypnogram, usable_s, request.trim_to_hypnogram, name)
    scored, numbers = _apply_massex(request, hypnogram, scored, name)
    measured = raw.info.get("meas_date")
    terms = identity.identity_terms(source_filename=name, patient=header.patient, recording=header.recording,
                                    measured=measured.date() if measured else None)
    _check_subject_id(request.subject_id, terms)
    annotation_sets = [("PSG annotation", raw.annotations)]
    if request.hypnogram is not None:
        annotation_sets.append(("hypnogram annotation", hypnogram.annotations))
    scored, findings = identity.scan_import(annotation_sets, scored, terms)

    progress(0.05, 0, len(scored), "reading signals")
    sources = derivation_sources(raw, plan)
    signals, prep_notes = prepared_signals(sources, raw.info["sfreq"], plan.derivations, request.mains_hz,
                                           request.profile, progress, len(scored))
    with ThreadPoolExecutor(max_workers=1) as side:  # the arrays are stored while the renders leave a core idle
        stored = side.submit(lambda: (storage.save_array(signals)[0], store_native_signals(sources)))
        images = render_epochs(signals, plan.derivations, scored, progress)
        signal_name, (native_name, native_scales) = stored.result()
    progress(0.97, len(scored), len(scored), "saving")
    original = storage.save_file(request.path, "originals", sha, header.file_format[:3].lower()) \
        if settings.KEEP_ORIGINAL_PSG else ""
    try:
        recording = _save(request, name, sha, header, raw, plan, hypnogram, scored, numbers, signal_name, images,
                          channel_notes + align_notes + prep_notes, user, findings=findings, original=original,
                          native=(native_name, native_scales), guard=guard)
    except IntegrityError:
        existing = Recording.objects.filter(sha256=sha).first()
        if existing is None:
            if request.subject_id and Recording.objects.filter(cohort__name=request.cohort,
                                                               name=request.subject_id).exists():
                raise InputError(f"subject id {request.subject_id!r} was taken in cohort {request.cohort!r} by an "
                                 "import that ran at the same time; give another one") from None
            raise
        return existing, False
    progress(1.0, len(scored), len(scored), "done")
    return recording, True


def _check_subject_id(subject_id: str, terms: identity.IdentityTerms) -> None:
    """A given subject id is well formed and carries nothing of the file's identity fields."""
    if not subject_id:
        return
    pseudonyms.check_subject_id(subject_id)
    found = sorted({kind for _, _, kind in terms.spans(subject_id)})
    if found:
        raise InputError(f"subject id {subject_id!r} carries the subject's identity ({', '.join(found)} of the file); "
                         "give a pseudonymous id")


def _check_channels(plan: ChannelPlan, header: PsgHeader, name: str) -> list[str]:
    """Reject channels that cannot carry their band; a chin EMG that cannot is dropped with a note."""
    notes = []
    for derivation in list(plan.derivations):
        source = plan.sources[derivation]
        for channel in filter(None, (source.positive, source.negative)):
            signal_header = next(s for s in header.signals if s.label == channel)
            if signal_header.unit.lower() not in MICROVOLT_UNITS:
                raise InputError(f"{name}: channel '{channel}' has physical unit '{signal_header.unit}'; expected uV, mV or V")
            if signal_header.sfreq > minimum_sfreq(derivation):
                continue
            band = "10–100 Hz" if derivation in EMG_DERIVATIONS else "0.3–35 Hz"
            problem = (f"channel '{channel}' ({derivation}) is sampled at {signal_header.sfreq:g} Hz, too low for the "
                       f"{band} band (needs more than {minimum_sfreq(derivation):g} Hz)")
            if derivation not in EMG_DERIVATIONS:
                raise InputError(f"{name}: {problem}")
            del plan.sources[derivation]
            plan.missing.append(derivation)
            notes.append(f"{problem}: {derivation} left out")
            break
    return notes


def _load_hypnogram(request: ImportRequest, raw) -> Hypnogram | None:
    """The recording's hypnogram; a MASS-EX CSV serves as one only when stated contiguous."""
    if request.hypnogram is not None:
        hypnogram = read_hypnogram(request.hypnogram, request.hypnogram_format or None)
    else:
        embedded = hypnogram_from_annotations(raw.annotations, request.source_name or request.path.name)
        hypnogram = embedded if embedded.epochs else None
    if hypnogram is None and request.massex is not None and request.massex_contiguous:
        hypnogram = read_hypnogram(request.massex, "mass-ex")
    elif hypnogram is not None and hypnogram.format == "mass-ex":
        if request.massex is not None:
            raise InputError(f"{hypnogram.source}: a MASS-EX CSV cannot be the hypnogram that {request.massex} is "
                             "read onto; give the recording's own scored hypnogram, e.g. its MASS Base annotations")
        if not request.massex_contiguous:
            raise InputError(f"{hypnogram.source}: {NEEDS_HYPNOGRAM}")
    elif request.massex is not None and hypnogram is None:
        raise InputError(f"{request.massex}: {NEEDS_HYPNOGRAM}")
    elif request.massex_contiguous:
        found = (f"{hypnogram.source} is the recording's scored hypnogram: drop the flag and its N is mapped through it"
                 if hypnogram is not None else "no MASS-EX CSV was given")
        raise InputError(f"--massex-contiguous states that a MASS-EX CSV read as the hypnogram is contiguous; {found}")
    return hypnogram


def _apply_massex(request: ImportRequest, hypnogram: Hypnogram | None, scored: list[ScoredEpoch],
                  name: str) -> tuple[list[ScoredEpoch], list[int | None]]:
    """The epochs, with the rules and rationale of `request.massex` on them, and each epoch's MASS-EX N."""
    if hypnogram is not None and hypnogram.format == "mass-ex":  # stated contiguous (_load_hypnogram)
        source = Path(hypnogram.source)
        hypnogram.notes.extend(subject_notes(read_mass_ex_rows(source), source, name))
        return scored, contiguous_numbers(scored)
    if request.massex is not None:  # with a scored hypnogram (_load_hypnogram)
        rows = read_mass_ex_rows(request.massex)
        scored = apply_rows(scored, rows, request.massex, hypnogram.source)
        hypnogram.notes.append(f"MASS-EX rules and rationale of {len(rows)} rows from {request.massex}, "
                               "each on the epoch of rank N among the scored epochs; every Stage matched")
        hypnogram.notes.extend(subject_notes(rows, request.massex, name))
    return scored, ranks(scored)


def align_epochs(hypnogram: Hypnogram | None, duration_s: float, trim: bool, name: str) -> tuple[list[ScoredEpoch], list[str]]:
    """Epochs aligned to the hypnogram's onsets, checked against the signal's length."""
    if hypnogram is None:
        count = int(duration_s // EPOCH_SECONDS)
        return [ScoredEpoch(onset=i * EPOCH_SECONDS, stage=UNSCORED) for i in range(count)], [
            f"no hypnogram: {count} unscored epochs from the recording start"
        ]
    epochs = list(hypnogram.epochs)
    notes = []
    dropped = 0
    while epochs and epochs[-1].stage == UNSCORED and epochs[-1].onset + EPOCH_SECONDS > duration_s:
        epochs.pop()
        dropped += 1
    if dropped:
        notes.append(f"{dropped} trailing unscored hypnogram epochs past the end of the signal dropped")
    if not epochs:
        raise InputError(f"{hypnogram.source}: the hypnogram has no epoch within the signal ({duration_s:.0f} s)")
    end = epochs[-1].onset + EPOCH_SECONDS
    if end - duration_s > EPOCH_SECONDS:
        raise InputError(
            f"{hypnogram.source}: the hypnogram is {end - duration_s:.0f} s longer than the signal of {name} "
            f"(hypnogram ends at {end:.0f} s, signal at {duration_s:.0f} s)"
        )
    if end > duration_s:
        epochs.pop()
        notes.append(f"last hypnogram epoch dropped: only {EPOCH_SECONDS - (end - duration_s):.1f} s of signal")
        end -= EPOCH_SECONDS
    shortfall = duration_s - end
    if shortfall >= EPOCH_SECONDS:
        if not trim:
            raise InputError(
                f"{hypnogram.source}: the hypnogram is {shortfall:.0f} s shorter than the signal of {name} "
                f"(hypnogram ends at {end:.0f} s, signal at {duration_s:.0f} s); "
                "import with --trim-to-hypnogram to keep only the scored part"
            )
        notes.append(f"signal trimmed to the hypnogram: {shortfall:.0f} s after its end not imported")
    if epochs[0].onset > 0:
        notes.append(f"epochs aligned to the hypnogram's first onset at {epochs[0].onset:g} s")
    return epochs, notes


def derivation_sources(raw, plan: ChannelPlan) -> list[Callable[[], np.ndarray]]:
    """Each derivation of the plan in µV at the file's rate, as a function computing it when called."""
    channels = sorted({c for d in plan.derivations for c in (plan.sources[d].positive, plan.sources[d].negative) if c})
    data = dict(zip(channels, raw.get_data(picks=channels, units="uV")))

    def source(derivation):
        plan_source = plan.sources[derivation]
        if plan_source.negative:
            return lambda: data[plan_source.positive] - data[plan_source.negative]
        return lambda: data[plan_source.positive]

    return [source(d) for d in plan.derivations]


def prepared_signals(sources, sfreq: float, derivations, mains_hz: float, profile: str, progress: Progress, total: int):
    """(n derivations, samples) float32 at 100 Hz under the preparation profile, and its notes."""
    notes = [f"preparation profile {profile}: {PROFILE_DESCRIPTIONS[profile]}; "
             f"EEG/EOG 0.3–35 Hz, chin EMG 10–100 Hz, notch {mains_hz:g} Hz"]
    n = len(derivations)
    progress(0.10, 0, total, "filtering")
    signals, prepared_notes = prepare_all(
        sources, sfreq, derivations, mains_hz, profile,
        prepared=lambda i: progress(0.10 + 0.2 * (i + 1) / n, 0, total, f"filtered {derivations[i]}"))
    return signals, notes + prepared_notes


def store_native_signals(sources) -> tuple[str, list[float]]:
    """Store the unfiltered derivations at the file's own rate for the clinical view: int16, derivation-major,
    content-addressed; each derivation scaled to its own peak (the µV per step returned, one per derivation)."""
    rows, scales = [], []
    for source in sources:  # one float derivation in memory at a time
        row = source()
        scales.append(max(float(np.abs(row).max()) / 32767, 1e-3))
        rows.append(np.rint(row / scales[-1]).astype(np.int16))
    name, _, _ = storage.save_array(np.stack(rows), prefix="native")
    return name, scales


def render_epochs(signals, derivations, scored, progress) -> list[tuple[str, str]]:
    """Render and store the model image of every scored epoch: [(storage name, sha256)]."""
    images = []
    total = len(scored)
    starts = [round(epoch.onset * TARGET_SFREQ) for epoch in scored]
    pngs = render_model_images((signals[:, start : start + EPOCH_SAMPLES] for start in starts), derivations)
    for i, png in enumerate(pngs):
        name, sha, _ = storage.save_content_addressed(png, "epochs", "png")
        images.append((name, sha))
        if i % 20 == 0 or i == total - 1:
            progress(0.3 + 0.65 * (i + 1) / total, i + 1, total, "rendering epochs")
    return images


@transaction.atomic
def _save(request, name, sha, header, raw, plan, hypnogram, scored, numbers, signal_name, images, notes,
          user, *, findings: list[str], original: str, native: tuple[str, list[float]], guard=None) -> Recording:
    if guard is not None:
        guard()
    cohort, _ = Cohort.objects.get_or_create(name=request.cohort)
    cohort = Cohort.objects.select_for_update().get(pk=cohort.pk)
    measured = raw.info.get("meas_date")
    born = identity.birthdate(header.patient)
    recording = Recording.objects.create(
        cohort=cohort,
        name=pseudonyms.subject_id_for(cohort, given=request.subject_id, file_name=name),
        sha256=sha,
        source_filename=name,
        edf_patient=header.patient,
        edf_recording=header.recording,
        measured_at=measured,
        subject_age=identity.capped_age(born, measured.date()) if born and measured else None,
        identity_findings=findings,
        original_file=original,
        file_format=header.file_format,
        start_time=pseudonyms.stored_start(cohort, measured),
        duration_s=raw.n_times / raw.info["sfreq"],
        mains_hz=request.mains_hz,
        preparation_profile=request.profile,
        channels_found=[{"name": s.label, "sfreq": s.sfreq, "unit": s.unit} for s in header.signals],
        channel_plan={
            d: {"positive": s.positive, "negative": s.negative, "kind": s.kind, "note": s.note}
            for d, s in plan.sources.items()
        },
        derivations=list(plan.derivations),
        substitutions=list(plan.substitutions),
        processing_notes=request.notes + notes,
        hypnogram_format=hypnogram.format if hypnogram else "",
        hypnogram_source=hypnogram.source if hypnogram else "",
        hypnogram_notes=list(hypnogram.notes) if hypnogram else [],
        massex_contiguous=request.massex_contiguous,
        epoch_offset_s=scored[0].onset,
        signal_file=signal_name,
        native_signal_file=native[0],
        native_sfreq=raw.info["sfreq"],
        native_scale_uv=native[1],
        epoch_count=len(scored),
        created_by=user,
    )
    epochs = Epoch.objects.bulk_create(
        [
            Epoch(
                recording=recording,
                index=i,
                onset_s=e.onset,
                stage=e.stage,
                massex_n=n,
                reference_rules=list(e.rule_ids),
                reference_rationale=e.rationale,
            )
            for i, (e, n) in enumerate(zip(scored, numbers))
        ],
        batch_size=500,
    )
    width, height = MODEL_IMAGE_SIZE
    EpochImage.objects.bulk_create(
        [
            EpochImage(epoch=epoch, kind=EpochImage.MODEL, sha256=sha256, storage_name=image_name, width=width, height=height)
            for epoch, (image_name, sha256) in zip(epochs, images)
        ],
        batch_size=500,
    )
    audit.record(ChangeRecord.IMPORT, recording, actor=user, after=audit.snapshot(recording))
    return recording
