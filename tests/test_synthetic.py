"""Synthetic PSG generator: determinism, EDF+ round trip, per-stage physiology, cycle structure,
and realism judged by YASA's pretrained stager (no database needed)."""

import io
import logging
import time

import mne
import numpy as np
import pytest
from scipy import signal
from sklearn.metrics import cohen_kappa_score

from datasets.constants import STAGES
from datasets.services.synthetic import (
    CHANNELS,
    SLEEP_EDF_LABELS,
    hypnogram_intervals,
    make_hypnogram,
    synthesize_night,
    write_synthetic_edf,
)

F4, C4, O2, LOC, ROC, CHIN = CHANNELS
SEED = 0


@pytest.fixture(scope="module")
def night8(tmp_path_factory):
    """A full 8-hour night written to EDF+; returns (path, night, seconds to synthesize+write)."""
    path = tmp_path_factory.mktemp("synthetic") / "night-8h.edf"
    t0 = time.perf_counter()
    night = write_synthetic_edf(path, hours=8.0, seed=SEED)
    return path, night, time.perf_counter() - t0


@pytest.fixture(scope="module")
def raw8(night8):
    return mne.io.read_raw_edf(night8[0], preload=True, verbose="error")


@pytest.fixture(scope="module")
def epochs8(night8):
    """Per-channel (n_epochs, samples) views and the stage array."""
    night = night8[1]
    spe = int(30 * night.sfreq)
    return {ch: x.reshape(-1, spe) for ch, x in night.signals.items()}, np.array(night.stages)


@pytest.fixture(scope="module")
def psd8(night8, epochs8):
    """Welch PSD (4-s windows) per 30-s epoch for the EEG channels."""
    eps, _ = epochs8
    sf = night8[1].sfreq
    out = {}
    for ch in (F4, C4, O2):
        freqs, p = signal.welch(eps[ch], sf, nperseg=int(4 * sf), axis=-1)
        out[ch] = p
    return freqs, out


def _band(freqs, p, lo, hi):
    return p[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)


def _median_by_stage(values, stages):
    return {s: float(np.median(values[stages == s])) for s in STAGES}


def _slow_wave_fraction(x, sf):
    """Share of each 30-s epoch covered by 0.5-2 Hz waves of > 75 uV peak-to-peak (AASM N3)."""
    sos = signal.butter(2, [0.5, 2.0], "bandpass", fs=sf, output="sos")
    y = signal.sosfiltfilt(sos, x)
    zc = np.flatnonzero((y[:-1] >= 0) & (y[1:] < 0)) + 1  # one wave between down-crossings
    ptp = (np.maximum.reduceat(y, zc) - np.minimum.reduceat(y, zc))[:-1]
    period = np.diff(zc) / sf
    ok = (ptp > 75) & (period >= 0.5) & (period <= 2.0)
    edges = np.zeros(len(y) + 1)
    np.add.at(edges, zc[:-1][ok], 1)
    np.add.at(edges, zc[1:][ok], -1)
    covered = np.cumsum(edges)[:-1] > 0
    return covered.reshape(-1, int(30 * sf)).mean(axis=1)


# ------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_night_and_file(tmp_path):
    a, b = synthesize_night(hours=0.5, seed=3), synthesize_night(hours=0.5, seed=3)
    assert a.stages == b.stages
    assert list(a.signals) == list(CHANNELS)
    for ch in CHANNELS:
        assert np.array_equal(a.signals[ch], b.signals[ch]), ch
    write_synthetic_edf(tmp_path / "a.edf", hours=0.5, seed=3)
    write_synthetic_edf(tmp_path / "b.edf", hours=0.5, seed=3)
    assert (tmp_path / "a.edf").read_bytes() == (tmp_path / "b.edf").read_bytes()


def test_different_seed_gives_different_night():
    a, b = synthesize_night(hours=0.5, seed=3), synthesize_night(hours=0.5, seed=4)
    for ch in CHANNELS:
        assert not np.allclose(a.signals[ch], b.signals[ch]), ch
    assert make_hypnogram(8, 3) != make_hypnogram(8, 4)


def test_shape_units_and_sampling(night8):
    _, night, _ = night8
    assert night.sfreq == 256.0
    assert list(night.signals) == list(CHANNELS)
    assert set(night.stages) <= set(STAGES)
    assert night.n_epochs == 960
    for ch, x in night.signals.items():
        assert x.shape == (960 * 30 * 256,), ch
        assert np.all(np.isfinite(x)), ch
    # microvolt scale: EEG background of tens of uV, never volts or nanovolts
    sd = np.std(night.signals[C4])
    assert 8 < sd < 60


def test_writes_an_eight_hour_file_quickly(night8):
    path, _, seconds = night8
    assert path.stat().st_size > 80e6  # 6 x 7.4 M int16 samples
    assert seconds < 30, f"8-h synthesis + EDF write took {seconds:.1f} s"


# ------------------------------------------------------------------------------ EDF+ round trip


def test_edf_round_trip_channels_rate_and_microvolts(night8, raw8):
    _, night, _ = night8
    assert raw8.ch_names == list(CHANNELS)
    assert raw8.info["sfreq"] == 256.0
    assert set(raw8._orig_units.values()) == {"µV"}
    data = raw8.get_data() * 1e6  # MNE returns volts
    assert data.shape == (6, len(night.signals[C4]))
    for i, ch in enumerate(CHANNELS):
        x = night.signals[ch]
        resolution = (x.max() - x.min() + 2) / 65535
        assert np.max(np.abs(data[i] - x)) <= resolution + 1e-3, ch


def test_edf_annotations_are_merged_sleep_edf_intervals(night8, raw8):
    _, night, _ = night8
    ann = raw8.annotations
    reverse = {v: k for k, v in SLEEP_EDF_LABELS.items()}
    assert set(ann.description) <= set(SLEEP_EDF_LABELS.values())
    assert set(ann.description) == {SLEEP_EDF_LABELS[s] for s in STAGES}
    # intervals tile the recording, consecutive labels differ (equal stages were merged)
    np.testing.assert_allclose(ann.onset[0], 0.0)
    np.testing.assert_allclose(ann.onset[1:], ann.onset[:-1] + ann.duration[:-1])
    assert np.sum(ann.duration) == pytest.approx(night.n_epochs * 30)
    assert all(a != b for a, b in zip(ann.description[:-1], ann.description[1:]))
    assert len(ann) == len(hypnogram_intervals(night.stages)) < night.n_epochs / 5
    # expanding the intervals gives back the epoch hypnogram
    expanded = []
    for d, desc in zip(ann.duration, ann.description):
        assert d % 30 == 0
        expanded += [reverse[desc]] * int(d // 30)
    assert expanded == night.stages


def test_hypnogram_intervals_merge_runs():
    assert hypnogram_intervals(["W", "W", "N1", "N2", "N2", "N2", "W"]) == [
        (0, 60, "W"),
        (60, 30, "N1"),
        (90, 90, "N2"),
        (180, 30, "W"),
    ]


# ------------------------------------------------------------------------------ physiology


def test_occipital_alpha_in_wake(psd8, epochs8):
    freqs, p = psd8
    _, stages = epochs8
    rel = {ch: _band(freqs, p[ch], 8, 13) / _band(freqs, p[ch], 0.5, 30) for ch in (F4, C4, O2)}
    o2 = _median_by_stage(rel[O2], stages)
    assert o2["W"] > 3 * o2["N2"] and o2["W"] > 3 * o2["N3"]
    assert o2["W"] > 2 * o2["N1"]  # alpha attenuated in N1
    # occipital maximum
    assert o2["W"] > _median_by_stage(rel[C4], stages)["W"] > _median_by_stage(rel[F4], stages)["W"]


def test_spindle_sigma_on_central_in_n2(psd8, epochs8):
    freqs, p = psd8
    _, stages = epochs8
    rel = {ch: _band(freqs, p[ch], 12, 14) / _band(freqs, p[ch], 0.5, 30) for ch in (F4, C4, O2)}
    c4 = _median_by_stage(rel[C4], stages)
    assert c4["N2"] > 1.5 * c4["W"] and c4["N2"] > 1.5 * c4["R"]
    # central maximum of absolute sigma power in N2
    absolute = {ch: _median_by_stage(_band(freqs, p[ch], 12, 14), stages)["N2"] for ch in (F4, C4, O2)}
    assert absolute[C4] > absolute[F4] > absolute[O2]


def test_frontal_slow_waves_in_n3(psd8, epochs8, night8):
    freqs, p = psd8
    _, stages = epochs8
    delta = {ch: _median_by_stage(_band(freqs, p[ch], 0.5, 2), stages) for ch in (F4, C4, O2)}
    f4 = delta[F4]
    assert f4["N3"] > 4 * f4["N2"] and f4["N3"] > 15 * max(f4["W"], f4["R"])
    assert delta[F4]["N3"] > delta[C4]["N3"] > delta[O2]["N3"]  # frontal maximum

    frac = _slow_wave_fraction(night8[1].signals[F4], night8[1].sfreq)
    n3, n2 = frac[stages == "N3"], frac[stages == "N2"]
    assert np.all(n3 >= 0.2), f"N3 epochs below the 20% criterion: {np.sum(n3 < 0.2)}"
    assert np.mean((n3 >= 0.3) & (n3 <= 0.6)) > 0.75  # most N3 epochs 30-60%
    assert np.mean(n2 < 0.2) > 0.97  # N2 does not meet N3
    assert np.all(frac[(stages == "W") | (stages == "R")] < 0.05)


def test_chin_emg_lowest_in_rem(epochs8, night8):
    sf = night8[1].sfreq
    sos = signal.butter(4, [10, 40], "bandpass", fs=sf, output="sos")
    emg = signal.sosfiltfilt(sos, night8[1].signals[CHIN]).reshape(-1, int(30 * sf))
    _, stages = epochs8
    rms = _median_by_stage(np.sqrt(np.mean(emg**2, axis=1)), stages)
    assert rms["R"] < 0.7 * min(rms["N1"], rms["N2"], rms["N3"])
    assert rms["W"] > 1.5 * max(rms["N1"], rms["N2"], rms["N3"], rms["R"])
    assert rms["N1"] > rms["N3"]


def test_eog_conjugate_movements_and_frontal_leak(epochs8, night8):
    sf = night8[1].sfreq
    sos = signal.butter(2, [0.3, 35], "bandpass", fs=sf, output="sos")
    spe = int(30 * sf)
    loc = signal.sosfiltfilt(sos, night8[1].signals[LOC]).reshape(-1, spe)
    roc = signal.sosfiltfilt(sos, night8[1].signals[ROC]).reshape(-1, spe)
    loc, roc = loc - loc.mean(1, keepdims=True), roc - roc.mean(1, keepdims=True)
    corr = np.sum(loc * roc, 1) / np.sqrt(np.sum(loc**2, 1) * np.sum(roc**2, 1))
    _, stages = epochs8
    c = _median_by_stage(corr, stages)
    assert c["R"] < -0.3 and c["W"] < -0.3  # REMs, blinks, saccades: opposite polarity
    assert c["N3"] > 0.5  # slow waves reach both EOG channels in phase
    # rapid eye movements make R epochs more active on EOG than N2
    act = _median_by_stage(np.std(loc, 1), stages)
    assert act["R"] > 1.3 * act["N2"]


def test_no_hard_steps_at_epoch_boundaries_and_artefacts_present(night8):
    night = night8[1]
    spe = int(30 * night.sfreq)
    bounds = np.arange(1, night.n_epochs) * spe
    for ch in CHANNELS:
        d = np.abs(np.diff(night.signals[ch]))
        assert d[bounds - 1].mean() < 1.5 * d.mean(), ch
    # 50 Hz mains and slow drift are there, so the pipeline's filtering matters
    freqs, p = signal.welch(night.signals[C4][: 3600 * 256], night.sfreq, nperseg=1024)
    at = lambda f: p[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert at(50) > 20 * max(at(46), at(54))
    epoch_means = night.signals[LOC].reshape(-1, spe).mean(axis=1)
    assert np.std(epoch_means) > 3


# ------------------------------------------------------------------------------ cycle structure


def test_night_uses_the_seeded_hypnogram(night8):
    assert night8[1].stages == make_hypnogram(8.0, SEED)


@pytest.mark.parametrize("seed", range(12))
def test_realistic_cycle_structure(seed):
    stages = np.array(make_hypnogram(8.0, seed))
    n = len(stages)
    prop = {s: 100 * np.mean(stages == s) for s in STAGES}
    assert 8 <= prop["W"] <= 16, prop
    assert 4 <= prop["N1"] <= 10, prop
    assert 42 <= prop["N2"] <= 56, prop
    assert 14 <= prop["N3"] <= 21, prop
    assert 18 <= prop["R"] <= 26, prop

    sleep = np.flatnonzero(stages != "W")
    assert 20 <= sleep[0] <= 40  # sleep latency 10-20 min
    assert n - 1 - sleep[-1] >= 20  # final awakening of >= 10 min
    first, second = stages[: n // 2], stages[n // 2 :]
    assert np.sum(first == "N3") > 3 * np.sum(second == "N3")
    assert np.sum(second == "R") > 1.5 * np.sum(first == "R")

    # R periods (R runs less than 5 min apart belong together): 4-6, lengthening across the night
    runs = [(o // 30, d // 30) for o, d, s in hypnogram_intervals(list(stages)) if s == "R"]
    periods = [list(runs[0])]
    for start, length in runs[1:]:
        if start - sum(periods[-1]) < 10:
            periods[-1][1] = start + length - periods[-1][0]
        else:
            periods.append([start, length])
    assert 4 <= len(periods) <= 6
    assert periods[-1][1] > 2 * periods[0][1]

    # brief awakenings inside the sleep period; awakenings fall asleep again through N1
    inside = hypnogram_intervals(list(stages[sleep[0] : sleep[-1] + 1]))
    assert sum(1 for _, _, s in inside if s == "W") >= 3
    for (_, _, a), (_, _, b) in zip(inside[:-1], inside[1:]):
        if a == "W":
            assert b == "N1"


def test_stage_proportions_on_average():
    props = np.array([[np.mean(np.array(make_hypnogram(8.0, s)) == st) for st in STAGES] for s in range(20)])
    mean = dict(zip(STAGES, 100 * props.mean(axis=0)))
    assert 10 <= mean["W"] <= 15 and 5 <= mean["N1"] <= 10 and 45 <= mean["N2"] <= 55
    assert 15 <= mean["N3"] <= 20 and 20 <= mean["R"] <= 25, mean


def test_short_recordings_still_start_awake_and_fall_asleep():
    for hours in (0.25, 0.5, 1.0):
        stages = make_hypnogram(hours, 7)
        assert len(stages) == int(hours * 120)
        assert stages[0] == "W" and "N2" in stages
    assert {"W", "N1", "N2", "N3", "R"} <= set(make_hypnogram(1.0, 7))


# ------------------------------------------------------------------------------ realism (YASA)


def test_yasa_pretrained_stager_agrees_with_generator(night8, raw8):
    """YASA's shipped LightGBM classifier, fed the EDF as read back (it resamples to 100 Hz and
    band-passes 0.4-30 Hz itself; it must not be given pre-filtered data), must recognise the
    generator's stages: Cohen's kappa >= 0.6 on the full night."""
    import yasa

    logging.getLogger("yasa").setLevel(logging.ERROR)
    raw = raw8.copy().pick([C4, LOC, CHIN])
    staging = yasa.SleepStaging(raw, eeg_name=C4, eog_name=LOC, emg_name=CHIN)
    predicted = np.asarray(staging.predict().hypno).astype(str)
    to_label = {"WAKE": "W", "W": "W", "N1": "N1", "N2": "N2", "N3": "N3", "REM": "R", "R": "R"}
    predicted = [to_label[s] for s in predicted]
    truth = night8[1].stages
    assert len(predicted) == len(truth)
    kappa = cohen_kappa_score(truth, predicted)
    assert kappa >= 0.6, f"YASA kappa {kappa:.3f}"
    # every stage is recognised at least sometimes, and the big three well
    recall = {s: np.mean([p == s for p, t in zip(predicted, truth) if t == s]) for s in STAGES}
    assert all(recall[s] > 0.8 for s in ("W", "N2", "N3", "R")), recall
    assert recall["N1"] > 0.2, recall


# ------------------------------------------------------------------------------ command


def test_make_synthetic_psg_command(tmp_path):
    from django.core.management import call_command

    out = io.StringIO()
    path = tmp_path / "sub" / "short.edf"
    call_command("make_synthetic_psg", str(path), "--hours", "0.5", "--seed", "2", stdout=out)
    text = out.getvalue()
    assert str(path) in text and "60 epochs" in text
    raw = mne.io.read_raw_edf(path, verbose="error")
    assert raw.ch_names == list(CHANNELS) and raw.n_times == 60 * 30 * 256
    counts = {s: make_hypnogram(0.5, 2).count(s) for s in STAGES}
    assert f"N2 {counts['N2']}" in text
