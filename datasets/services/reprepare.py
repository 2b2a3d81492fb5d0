"""Re-prepare and re-render an imported recording under a preparation profile (signals.py).

The PSG file is read again (it must be the file the recording was imported from: same SHA-256),
with the channel plan stored on the recording; new files are written first (content-addressed),
then the recording, its model images and notes change in one transaction, and its viewer images
are dropped (they are rendered again on demand from the new signals). Idempotent: a recording
already prepared under the profile is left as it is.
"""
from __future__ import annotations

from pathlib import Path

from django.db import transaction

from datasets.constants import EPOCH_SAMPLES
from datasets.exceptions import InputError
from datasets.models import EpochImage, Recording
from datasets.services import storage
from datasets.services.channels import ChannelPlan, DerivationSource
from datasets.services.ingest import Progress, _no_progress, derivation_sources, prepared_signals, render_epochs
from datasets.services.hypnograms import ScoredEpoch
from datasets.services.psg import read_psg
from datasets.services.signals import CURRENT_PROFILE, PROFILES


def stored_plan(recording: Recording) -> ChannelPlan:
    sources = {
        d: DerivationSource(d, s["positive"], s.get("negative"), s.get("kind", "direct"), s.get("note", ""))
        for d, s in recording.channel_plan.items()
    }
    return ChannelPlan(sources={d: sources[d] for d in recording.derivations}, missing=[], available=[])


def reprepare(recording: Recording, path: Path, *, profile: str = CURRENT_PROFILE,
              progress: Progress = _no_progress) -> bool:
    """Prepare `recording` from its PSG file `path` under `profile`; False when it already was."""
    if profile not in PROFILES:
        raise InputError(f"unknown preparation profile {profile!r}; known: {', '.join(PROFILES)}")
    if recording.preparation_profile == profile:
        return False
    if storage.file_sha256(path) != recording.sha256:
        raise InputError(f"{path.name}: not the file recording #{recording.pk} was imported from (SHA-256 differs)")
    raw, _ = read_psg(path)
    epochs = list(recording.epochs.order_by("index").values_list("pk", "onset_s"))
    scored = [ScoredEpoch(onset=onset, stage="") for _, onset in epochs]
    signals, notes = prepared_signals(derivation_sources(raw, stored_plan(recording)), raw.info["sfreq"],
                                      recording.derivations, recording.mains_hz, profile, progress, len(scored))
    last = round(scored[-1].onset * 100) + EPOCH_SAMPLES
    if signals.shape[1] < last:
        raise InputError(f"{path.name}: the prepared signal ends before the recording's last epoch")
    signal_name, _, _ = storage.save_array(signals)
    images = render_epochs(signals, recording.derivations, scored, progress)
    kept = [n for n in recording.processing_notes if not n.startswith(("preparation profile ", "band-pass "))
            and not n.startswith(tuple(f"{d}: " for d in recording.derivations))]
    with transaction.atomic():
        locked = Recording.objects.select_for_update().get(pk=recording.pk)
        if locked.preparation_profile == profile:
            return False
        EpochImage.objects.filter(epoch__recording=locked, kind=EpochImage.VIEWER).delete()
        by_epoch = {pk: image for (pk, _), image in zip(epochs, images)}
        rows = list(EpochImage.objects.filter(epoch__recording=locked, kind=EpochImage.MODEL))
        for row in rows:
            row.storage_name, row.sha256 = by_epoch[row.epoch_id]
        EpochImage.objects.bulk_update(rows, ["storage_name", "sha256"], batch_size=500)
        Recording.objects.filter(pk=locked.pk).update(
            signal_file=signal_name, preparation_profile=profile,
            processing_notes=kept + notes + [f"re-prepared under {profile}"],
        )
    storage.load_array.cache_clear()
    recording.refresh_from_db()
    progress(1.0, len(scored), len(scored), "done")
    return True
