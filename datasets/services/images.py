"""Epoch images: the model image made at import, viewer images rendered on first request."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from datasets.constants import EPOCH_SAMPLES, EPOCH_SECONDS, TARGET_SFREQ
from datasets.models import Epoch, EpochImage
from datasets.services import storage
from datasets.services.rendering import render_viewer_image
from datasets.services.signals import CHANNEL_KINDS, channel_kind, clinical_filter

POSITIONS = ("preceding", "current", "subsequent")


def viewer_variant(context: bool, guides: bool) -> str:
    return ",".join(name for name, on in (("context", context), ("guides", guides)) if on) or "plain"


def _context_indices(epoch: Epoch, context: bool) -> list[int]:
    if not context:
        return [epoch.index]
    return [i for i in (epoch.index - 1, epoch.index, epoch.index + 1) if 0 <= i < epoch.recording.epoch_count]


def epoch_segments(epoch: Epoch, *, context: bool) -> tuple[list[int], dict[int, float], list[np.ndarray]]:
    """The epoch's prepared signals, with its neighbours when `context`: (indices, onset per index, segments)."""
    recording = epoch.recording
    signals = storage.load_array(recording.signal_file)
    indices = _context_indices(epoch, context)
    onsets = dict(recording.epochs.filter(index__in=indices).values_list("index", "onset_s"))
    starts = [round(onsets[i] * TARGET_SFREQ) for i in indices]
    return indices, onsets, [signals[:, start : start + EPOCH_SAMPLES] for start in starts]


def viewer_image(epoch: Epoch, *, context: bool = True, guides: bool = True) -> EpochImage:
    """The expert viewer image of an epoch (with its neighbours when context), cached in storage."""
    variant = viewer_variant(context, guides)
    cached = EpochImage.objects.filter(epoch=epoch, kind=EpochImage.VIEWER, variant=variant).first()
    if cached is not None:
        return cached
    recording = epoch.recording
    indices, onsets, segments = epoch_segments(epoch, context=context)
    titles = [f"Epoch {i + 1} · {POSITIONS[i - epoch.index + 1] if context else 'current'}" for i in indices]  # Epoch.number
    png = render_viewer_image(
        segments, recording.derivations, titles=titles, current=indices.index(epoch.index), guides=guides,
        start_seconds=onsets[indices[0]],
    )
    name, sha, _ = storage.save_content_addressed(png, "viewer", "png")
    width, height = Image.open(io.BytesIO(png)).size
    image, _ = EpochImage.objects.get_or_create(
        epoch=epoch, kind=EpochImage.VIEWER, variant=variant,
        defaults={"sha256": sha, "storage_name": name, "width": width, "height": height},
    )
    return image


def model_image(epoch: Epoch) -> EpochImage:
    return EpochImage.objects.get(epoch=epoch, kind=EpochImage.MODEL)


SIGNAL_SCALE_UV = 0.05  # int16 step of the signal endpoints: ±1638 µV, beyond which samples are clipped
CLINICAL_PAD_S = 30.0  # signal filtered on each side of the window shown, so the filters have settled in it


def _encoded(block: np.ndarray, epoch: Epoch, indices: list[int], sfreq: float, epoch_samples: int,
             **extra) -> tuple[bytes, dict]:
    """µV rows as little-endian int16, derivation-major, SIGNAL_SCALE_UV µV per step, and the metadata the
    browser's signal view needs."""
    scaled = np.clip(np.rint(block / SIGNAL_SCALE_UV), -32767, 32767).astype("<i2")
    meta = {
        "derivations": list(epoch.recording.derivations),
        "sfreq": sfreq,
        "epoch_samples": epoch_samples,
        "indices": indices,
        "current": indices.index(epoch.index),
        "scale_uv": SIGNAL_SCALE_UV,
        "clipped": int((np.abs(block) > 32767 * SIGNAL_SCALE_UV).sum()),
        **extra,
    }
    return scaled.tobytes(), meta


def epoch_signals(epoch: Epoch, *, context: bool = True) -> tuple[bytes, dict]:
    """The prepared signals (what the model image was drawn from) of an epoch and, with `context`, its
    neighbours, encoded for the signal view (`_encoded`)."""
    indices, _, segments = epoch_segments(epoch, context=context)
    return _encoded(np.concatenate(segments, axis=1), epoch, indices, TARGET_SFREQ, EPOCH_SAMPLES, view="model")


def clinical_signals(epoch: Epoch, filters: dict[str, dict[str, float]], *, context: bool = True) -> tuple[bytes, dict]:
    """The clinical view of an epoch (and its neighbours with `context`): the derivations at the recording's own
    rate, filtered per channel kind (`filters`: kind -> high_pass, low_pass, notch in Hz, 0 for off; signals.
    clinical_filter) over the window shown plus CLINICAL_PAD_S on each side, encoded for the signal view."""
    recording = epoch.recording
    native = storage.load_array(recording.native_signal_file)
    sfreq = recording.native_sfreq
    epoch_samples = round(EPOCH_SECONDS * sfreq)
    indices = _context_indices(epoch, context)
    onsets = dict(recording.epochs.filter(index__in=indices).values_list("index", "onset_s"))
    starts = [round(onsets[i] * sfreq) for i in indices]
    pad = round(CLINICAL_PAD_S * sfreq)
    first, last = max(0, starts[0] - pad), min(native.shape[1], starts[-1] + epoch_samples + pad)
    window = native[:, first:last] * np.asarray(recording.native_scale_uv)[:, None]
    applied = {}
    for kind in CHANNEL_KINDS:
        rows = [i for i, d in enumerate(recording.derivations) if channel_kind(d) == kind]
        if rows:
            window[rows], applied[kind] = clinical_filter(window[rows], sfreq, **filters[kind])
    block = np.concatenate([window[:, s - first : s - first + epoch_samples] for s in starts], axis=1)
    return _encoded(block, epoch, indices, sfreq, epoch_samples, view="clinical", filters=applied)
