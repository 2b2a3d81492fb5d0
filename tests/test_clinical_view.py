"""The clinical signal view: the native-rate signal kept at import, filtered per channel kind on request."""
import hashlib
import json

import mne
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from scipy import signal

from core.roles import RATER, RESEARCHER
from datasets.services import storage
from tests.factories import assign_rater


def _raw_derivations(path, recording) -> tuple[np.ndarray, float]:
    """The recording's derivations (µV) straight from the EDF file read with MNE, independently of the import."""
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    rows = []
    for derivation in recording.derivations:
        plan = recording.channel_plan[derivation]
        x = raw.get_data(picks=[plan["positive"]], units="uV")[0]
        if plan["negative"]:
            x = x - raw.get_data(picks=[plan["negative"]], units="uV")[0]
        rows.append(x)
    return np.stack(rows), raw.info["sfreq"]


def _scipy_filtered(x, sfreq, high_pass, low_pass, notch):
    """An independent restatement: 4th-order Butterworth band-pass (sosfiltfilt), then a Q = 30 notch (filtfilt)."""
    y = signal.sosfiltfilt(signal.butter(4, [high_pass, low_pass], btype="bandpass", fs=sfreq, output="sos"), x)
    if notch:
        b, a = signal.iirnotch(notch, 30.0, fs=sfreq)
        y = signal.filtfilt(b, a, y)
    return y


def _get(client, recording, index, query=""):
    response = client.get(reverse("datasets:epoch-clinical-signals", args=[recording.pk, index]) + query)
    assert response.status_code == 200, response.content
    meta = json.loads(response["X-Signal-Meta"])
    values = np.frombuffer(response.content, "<i2").reshape(len(meta["derivations"]), -1) * meta["scale_uv"]
    return values, meta, response


def test_the_native_rate_signal_is_stored_at_import_as_content_addressed_int16(imported, night_edf):
    raw, sfreq = _raw_derivations(night_edf, imported)
    assert imported.native_sfreq == sfreq == 256
    name = imported.native_signal_file
    with default_storage.open(name, "rb") as fh:
        assert name == storage.content_name("native", hashlib.sha256(fh.read()).hexdigest(), "npy")
    native = storage.load_array(name)
    assert native.dtype == np.int16 and native.shape == raw.shape
    scales = np.asarray(imported.native_scale_uv)[:, None]
    assert np.abs(native * scales - raw).max() <= scales.max() / 2 + 1e-6  # unfiltered: only the int16 rounding


def test_the_clinical_view_is_scipys_filtering_of_the_raw_channels_at_their_own_rate(role_client, imported, night_edf):
    raw, sfreq = _raw_derivations(night_edf, imported)
    values, meta, _ = _get(role_client(RESEARCHER), imported, 10)
    assert meta["view"] == "clinical" and meta["sfreq"] == 256 and meta["epoch_samples"] == 7680
    assert meta["indices"] == [9, 10, 11] and meta["current"] == 1
    assert meta["filters"] == {"EEG": {"high_pass": 0.3, "low_pass": 35.0, "notch": 50.0},
                               "EOG": {"high_pass": 0.3, "low_pass": 35.0, "notch": 50.0},
                               "EMG": {"high_pass": 10.0, "low_pass": 100.0, "notch": 50.0}}
    start = round(imported.epochs.get(index=9).onset_s * sfreq)
    for i, derivation in enumerate(imported.derivations):
        kind = "EMG" if derivation == "Chin EMG" else "EEG"
        expected = _scipy_filtered(raw[i], sfreq, *meta["filters"][kind].values())[start:start + 3 * 7680]
        assert values[i].shape == expected.shape
        # the window is filtered with 30 s on each side, the file in one go: they agree to a fraction of a µV
        assert np.abs(values[i] - expected).max() < 0.5, derivation
        assert np.std(expected) > 5  # a real trace, not two flat lines


def test_the_technologists_filters_are_per_channel_kind_and_can_be_turned_off(role_client, imported, night_edf):
    raw, sfreq = _raw_derivations(night_edf, imported)
    client = role_client(RESEARCHER)
    values, meta, _ = _get(client, imported, 20, "?context=0&hp_eeg=1&lp_eeg=15&notch_eeg=0")
    assert meta["filters"]["EEG"] == {"high_pass": 1.0, "low_pass": 15.0, "notch": 0.0}
    assert meta["filters"]["EOG"]["low_pass"] == 35.0  # the other kinds keep the AASM settings
    start = round(imported.epochs.get(index=20).onset_s * sfreq)
    expected = _scipy_filtered(raw[0], sfreq, 1.0, 15.0, 0)[start:start + 7680]
    assert np.abs(values[0] - expected).max() < 0.5
    default, _, _ = _get(client, imported, 20, "?context=0")
    assert np.abs(values[0] - default[0]).max() > 5  # the settings change the trace


def test_the_clinical_endpoint_is_checked_like_the_signals_endpoint(role_client, imported):
    url = reverse("datasets:epoch-clinical-signals", args=[imported.pk, 3])
    rater = role_client(RATER)
    assert rater.get(url).status_code == 404  # not in any of the rater's campaigns
    assign_rater(imported, f"{RATER}-user")
    _, _, response = _get(rater, imported, 3)
    assert rater.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    assert rater.get(url + "?hp_eeg=1", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 200
    assert rater.get(url + "?lp_emg=fast").status_code == 400
    assert rater.get(url + "?notch_eeg=-50").status_code == 400
    assert rater.get(url + "?hp_emg=120&lp_emg=100").status_code == 400
    rater.logout()
    assert rater.get(url).status_code == 302


def test_a_recording_imported_without_its_native_signal_has_no_clinical_view(role_client, imported):
    type(imported).objects.filter(pk=imported.pk).update(native_signal_file="")
    client = role_client(RESEARCHER)
    assert client.get(reverse("datasets:epoch-clinical-signals", args=[imported.pk, 3])).status_code == 404
    assert client.get(reverse("datasets:epoch-signals", args=[imported.pk, 3])).status_code == 200


@pytest.mark.parametrize("sfreq", [200.0])
def test_filters_at_or_above_nyquist_are_left_out(sfreq):
    from datasets.services.signals import clinical_filter

    x = np.random.default_rng(0).standard_normal(6000)
    y, applied = clinical_filter(x, sfreq, 10.0, 100.0, 100.0)
    assert applied == {"high_pass": 10.0, "low_pass": 0.0, "notch": 0.0}
    assert np.allclose(y, signal.sosfiltfilt(signal.butter(4, 10.0, btype="highpass", fs=sfreq, output="sos"), x))


def test_the_signal_view_is_a_campaign_setting(imported, make_user):
    from annotation.services.campaigns import create_campaign, update_campaign
    from datasets.exceptions import InputError

    rater = make_user(RATER)
    campaign = create_campaign("Views", recordings=[imported], raters=[rater], overlap=1)
    assert (campaign.signal_view, campaign.signal_view_switchable) == ("clinical", True)
    campaign = update_campaign(campaign, signal_view="model", signal_view_switchable=False)
    assert (campaign.signal_view, campaign.signal_view_switchable) == ("model", False)
    with pytest.raises(InputError, match="unknown signal view 'eeg'"):
        create_campaign("Bad view", recordings=[imported], raters=[rater], overlap=1, signal_view="eeg")
