"""Epoch images: the model image made at import, viewer images rendered on first request."""
from __future__ import annotations

import io

from PIL import Image

from datasets.constants import EPOCH_SAMPLES, TARGET_SFREQ
from datasets.models import Epoch, EpochImage
from datasets.services import storage
from datasets.services.rendering import render_viewer_image

POSITIONS = ("preceding", "current", "subsequent")


def viewer_variant(context: bool, guides: bool) -> str:
    return ",".join(name for name, on in (("context", context), ("guides", guides)) if on) or "plain"


def viewer_image(epoch: Epoch, *, context: bool = True, guides: bool = True) -> EpochImage:
    """The expert viewer image of an epoch (with its neighbours when context), cached in storage."""
    variant = viewer_variant(context, guides)
    cached = EpochImage.objects.filter(epoch=epoch, kind=EpochImage.VIEWER, variant=variant).first()
    if cached is not None:
        return cached
    recording = epoch.recording
    signals = storage.load_array(recording.signal_file)
    indices = [epoch.index]
    if context:
        indices = [i for i in (epoch.index - 1, epoch.index, epoch.index + 1) if 0 <= i < recording.epoch_count]
    onsets = dict(recording.epochs.filter(index__in=indices).values_list("index", "onset_s"))
    segments, titles = [], []
    for i in indices:
        start = round(onsets[i] * TARGET_SFREQ)
        segments.append(signals[:, start : start + EPOCH_SAMPLES])
        position = POSITIONS[i - epoch.index + 1] if context else "current"
        titles.append(f"Epoch {i} · {position}")
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
