"""Signal preparation profiles (datasets/services/signals.py) and re-preparing a recording."""
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from scipy import signal

from datasets.models import EpochImage, Recording
from datasets.services import storage
from datasets.services.images import viewer_image
from datasets.services.ingest import ImportRequest, import_psg
from datasets.services.reprepare import reprepare
from datasets.services.signals import CURRENT_PROFILE, LEGACY_PROFILE, prepare


def authors(x, fs, low, high):
    """The authors' steps as the render bench restates them from their release (rendering.md)."""
    from bench.render import authors_prepare

    return authors_prepare(x, fs, "Chin EMG" if low == 10.0 else "C4-M1")


@pytest.mark.parametrize("fs, derivation, band", [(256.0, "C4-M1", (0.3, 35.0)), (256.0, "Chin EMG", (10.0, 100.0)),
                                                   (200.0, "Chin EMG", (10.0, 100.0)), (512.0, "LOC", (0.3, 35.0))])
def test_current_profile_is_the_authors_pipeline(fs, derivation, band):
    x = np.random.default_rng(3).normal(size=int(90 * fs)) * 30
    ours, notes = prepare(x, fs, derivation, 50.0)
    expected = authors(x, fs, *band)
    assert CURRENT_PROFILE == "sleepvlm-v1"
    assert ours.shape == expected.shape and ours.dtype == np.float32
    assert np.abs(ours - expected).max() < 1e-3
    assert any("clamped to 0.999" in n for n in notes) == (fs == 200.0)  # EMG upper edge at 200 Hz


def test_linear_resampling_keeps_the_aliased_chin_power_the_model_was_trained_on():
    fs = 256.0
    x = signal.sosfilt(signal.butter(4, 55, "highpass", fs=fs, output="sos"), np.random.default_rng(0).normal(size=int(120 * fs))) * 20
    current, _ = prepare(x, fs, "Chin EMG", 50.0)
    legacy, _ = prepare(x, fs, "Chin EMG", 50.0, LEGACY_PROFILE)
    assert current.std() > 1.5 * legacy.std()  # polyphase filtering gives a visibly calmer chin trace


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="unknown preparation profile 'v9'"):
        prepare(np.zeros(1000), 256.0, "C4-M1", 50.0, "v9")


@pytest.mark.django_db
def test_imports_record_their_profile(night_edf):
    recording, _ = import_psg(ImportRequest(path=night_edf, cohort="c"))
    assert recording.preparation_profile == CURRENT_PROFILE
    assert any(note.startswith("preparation profile sleepvlm-v1") for note in recording.processing_notes)


@pytest.mark.django_db
def test_reprepare_renders_a_recording_again_under_the_current_profile(night_edf, tmp_path, monkeypatch):
    recording, _ = import_psg(ImportRequest(path=night_edf, cohort="c", profile=LEGACY_PROFILE))
    old_signal = recording.signal_file
    old_images = dict(EpochImage.objects.filter(epoch__recording=recording).values_list("epoch_id", "sha256"))
    viewer_image(recording.epochs.get(index=4))

    from datasets.services import reprepare as module

    monkeypatch.setattr(module, "render_epochs", lambda *a: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        reprepare(recording, night_edf)
    recording.refresh_from_db()
    assert recording.preparation_profile == LEGACY_PROFILE and recording.signal_file == old_signal  # atomic
    monkeypatch.undo()

    call_command("reprepare", str(recording.pk), str(night_edf), verbosity=0)
    recording.refresh_from_db()
    assert recording.preparation_profile == CURRENT_PROFILE and recording.signal_file != old_signal
    models = EpochImage.objects.filter(epoch__recording=recording, kind=EpochImage.MODEL)
    assert models.count() == 120 and not EpochImage.objects.filter(kind=EpochImage.VIEWER).exists()
    new_images = dict(models.values_list("epoch_id", "sha256"))
    assert new_images.keys() == old_images.keys() and new_images != old_images
    assert storage.load_array(recording.signal_file).shape == storage.load_array(old_signal).shape
    assert [n for n in recording.processing_notes if n.startswith("preparation profile")][0].startswith(
        "preparation profile sleepvlm-v1")
    assert reprepare(recording, night_edf) is False  # idempotent

    copy = tmp_path / "other.edf"
    data = bytearray(night_edf.read_bytes())
    data[-1000] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="not the file recording"):
        call_command("reprepare", str(recording.pk), str(copy), "--profile", LEGACY_PROFILE, verbosity=0)
    assert Recording.objects.get().preparation_profile == CURRENT_PROFILE


def test_reprepare_shows_a_progress_bar_and_flags_outputs_made_from_the_old_signals(night_edf, role_client, capsys):
    """Outputs keep the profile they were made from; after re-preparing, pages and API say they predate it."""
    from inference.models import ModelVersion, Prediction
    from inference.services.jobs import start_job

    recording, _ = import_psg(ImportRequest(path=night_edf, cohort="c", profile=LEGACY_PROFILE))
    start_job(ModelVersion.objects.create(name="baseline", backend="baseline"), recording=recording, inline=True)
    assert set(Prediction.objects.values_list("preparation_profile", flat=True)) == {LEGACY_PROFILE}
    client = role_client("researcher")
    page = f"/recordings/{recording.pk}/epochs/5/"
    assert "predates" not in client.get(page).content.decode()

    call_command("reprepare", str(recording.pk), str(night_edf))
    captured = capsys.readouterr()
    assert "100%" in captured.err and f"prepared under {CURRENT_PROFILE}" in captured.out

    html = client.get(page).content.decode()
    assert f"Made from {LEGACY_PROFILE} signals" in html and f"now prepared under {CURRENT_PROFILE}" in html
    body = client.get(f"/api/predictions/?recording={recording.pk}", HTTP_ACCEPT="application/json").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert rows and {row["preparation_profile"] for row in rows} == {LEGACY_PROFILE}


def test_preparing_every_derivation_on_threads_equals_one_at_a_time():
    from datasets.constants import DERIVATIONS
    from datasets.services.signals import prepare_all

    rng = np.random.default_rng(4)
    raw = [rng.normal(scale=30, size=int(90 * 256) + k) for k in range(len(DERIVATIONS))]  # lengths differ
    done = []
    signals, notes = prepare_all([lambda x=x: x for x in raw], 256.0, DERIVATIONS, 50.0, prepared=done.append)
    one_by_one = [prepare(x, 256.0, d, 50.0)[0] for x, d in zip(raw, DERIVATIONS)]
    assert done == list(range(len(DERIVATIONS))) and signals.dtype == np.float32
    assert signals.shape == (len(DERIVATIONS), min(len(r) for r in one_by_one))
    assert all(np.array_equal(signals[i], r[: signals.shape[1]]) for i, r in enumerate(one_by_one))
    with pytest.raises(ValueError, match="unknown preparation profile"):
        prepare_all([lambda: raw[0]], 256.0, DERIVATIONS[:1], 50.0, "nope")
