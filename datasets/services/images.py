"""Epoch images: the model image made at import, viewer images rendered on first request."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from datasets.constants import EPOCH_SAMPLES, TARGET_SFREQ
from datasets.models import Epoch, EpochImage
from datasets.services import storage
from datasets.services.rendering import render_viewer_image

POSITIONS = ("preceding", "current", "subsequent")


def viewer_variant(context: bool, guides: bool) -> str:
    return ",".join(name for name, on in (("context", context), ("guides", guides)) if on) or "plain"


def epoch_segments(epoch: Epoch, *, context: bool) -> tuple[list[int], dict[int, float], list[np.ndarray]]:
    """The epoch's prepared signals, with its neighbours when `context`: (indices, onset per index, segments)."""
    recording = epoch.recording
    signals = storage.load_array(recording.signal_file)
    indices = [epoch.index]
    if context:
        indices = [i for i in (epoch.index - 1, epoch.index, epoch.index + 1) if 0 <= i < recording.epoch_count]
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
    titles = [f"Epoch {i} · {POSITIONS[i - epoch.index + 1] if context else 'current'}" for i in indices]
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


SIGNAL_SCALE_UV = 0.05  # int16 step of the signal endpoint: ±1638 µV, beyond which samples are clipped


def epoch_signals(epoch: Epoch, *, context: bool = True) -> tuple[bytes, dict]:
    """The prepared signals (what the model image was drawn from) of an epoch and, with `context`,
    its neighbours: little-endian int16, derivation-major, SIGNAL_SCALE_UV µV per step; and the
    metadata the browser's signal view needs."""
    recording = epoch.recording
    indices, _, segments = epoch_segments(epoch, context=context)
    block = np.concatenate(segments, axis=1)
    scaled = np.clip(np.rint(block / SIGNAL_SCALE_UV), -32767, 32767).astype("<i2")
    meta = {
        "derivations": list(recording.derivations),
        "sfreq": TARGET_SFREQ,
        "epoch_samples": EPOCH_SAMPLES,
        "indices": indices,
        "current": indices.index(epoch.index),
        "scale_uv": SIGNAL_SCALE_UV,
        "clipped": int((np.abs(block) > 32767 * SIGNAL_SCALE_UV).sum()),
    }
    return scaled.tobytes(), meta
