"""The project's model-image path against the SleepVLM authors' pipeline, restated from their release.

Reference (rendering.md, "Exactly as the authors' released pipeline does it"): raw multichannel µV at
256 Hz → their preparation (Butterworth (b, a) with edges clamped to [1e-3, 0.999] of Nyquist and
filtfilt; iirnotch 50 Hz Q = 20 and filtfilt on every channel; linear interpolation to 100 Hz) →
epochs cut at each annotation's onset → their matplotlib drawing, one figure per epoch, saved with
bbox_inches="tight", pad_inches=0 on black. Project: datasets.services.signals.prepare (current
profile) and datasets.services.rendering.render_model_image, through prepare_all and render_model_images
as the import calls them (threads), the whole path timed the same way.

Signals are dense and realistic: 1/f EEG with alpha, spindles, K-complexes and slow waves; EOG with
slow and rapid eye movements and blinks; broadband chin EMG with most power above 50 Hz; 50 Hz
mains hum; a few movement artefacts. Images are compared decoded, as RGB, with SSIM (skimage,
channel_axis=-1, data_range=255) over the whole image and per band. Last line: one JSON object.

    .venv/bin/python bench/render.py [--epochs 500] [--agg-reuse]
"""
import argparse
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import interpolate, signal  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from datasets.constants import DERIVATIONS, EMG_DERIVATIONS, EPOCH_SAMPLES  # noqa: E402
from datasets.services.rendering import render_model_image, render_model_images  # noqa: E402
from datasets.services.signals import CURRENT_PROFILE, prepare, prepare_all  # noqa: E402

FS = 256.0
MAINS = 50.0
SEED = 20261201
COLOURS = {"F4-M1": "#FFFF00", "C4-M1": "#00FF00", "O2-M1": "#FF0000", "LOC": "#00FFFF", "ROC": "#FF00FF",
           "Chin EMG": "#0000FF"}
STAGE_CYCLE = ["W"] * 20 + ["N1"] * 10 + ["N2"] * 40 + ["N3"] * 30 + ["N2"] * 20 + ["R"] * 25


# --- realistic raw signals at 256 Hz ----------------------------------------------------------------

def _one_over_f(rng, n, exponent, rms, low=0.2, high=None):
    f = np.fft.rfftfreq(n, 1 / FS)
    spectrum = (rng.normal(size=f.size) + 1j * rng.normal(size=f.size)) / np.maximum(f, low) ** (exponent / 2)
    spectrum[f < low / 2] = 0
    if high:
        spectrum[f > high] = 0
    x = np.fft.irfft(spectrum, n)
    return x * (rms / x.std())


def _bursts(rng, n, per_epoch, freq, amp, dur):
    out, t = np.zeros(n), np.arange(n) / FS
    for _ in range(rng.poisson(per_epoch * n / (30 * FS))):
        centre, length, f = rng.uniform(0, t[-1]), rng.uniform(*dur), rng.uniform(*freq)
        inside = np.abs(t - centre) < length / 2
        window = 0.5 + 0.5 * np.cos(2 * np.pi * (t[inside] - centre) / length)
        out[inside] += rng.uniform(*amp) * window * np.sin(2 * np.pi * f * (t[inside] - centre))
    return out


def raw_night(n_epochs: int, seed: int = SEED) -> np.ndarray:
    """(6, n_epochs * 30 s * 256 Hz) raw µV derivations, one stage per epoch from a sleep-cycle pattern."""
    rng = np.random.default_rng(seed)
    n = int(30 * FS)
    out = np.zeros((6, n_epochs * n))
    t = np.arange(n_epochs * n) / FS
    for e in range(n_epochs):
        stage = STAGE_CYCLE[e % len(STAGE_CYCLE)]
        sl = slice(e * n, (e + 1) * n)
        deep = {"W": 0.0, "N1": 0.2, "R": 0.1, "N2": 0.5, "N3": 1.0}[stage]
        slow = _bursts(rng, n, 25 * deep, (0.5, 1.8), (60, 200), (0.6, 2.0))
        spindles = _bursts(rng, n, 5 if stage == "N2" else 0.5, (11.5, 14.5), (15, 40), (0.5, 1.5))
        k_complex = _bursts(rng, n, 2 if stage == "N2" else 0.1, (0.8, 1.2), (80, 150), (0.5, 0.9))
        alpha = _bursts(rng, n, 8 if stage == "W" else 0.4, (8.5, 11.5), (20, 50), (1.0, 5.0))
        theta = _bursts(rng, n, 6 if stage in ("N1", "R") else 1, (4.5, 7.5), (10, 25), (0.8, 2.0))
        for ch, weight in enumerate((1.0, 0.85, 0.7)):
            out[ch, sl] = (_one_over_f(rng, n, 1.8, 14 + 6 * deep) + _one_over_f(rng, n, 0.0, 2.0)  # white floor
                           + weight * (slow + spindles + k_complex) + theta + (ch == 2) * alpha + (ch == 0) * 0.4 * alpha)
        slow_eyes = _bursts(rng, n, 3 if stage == "N1" else 0.2, (0.1, 0.4), (60, 120), (2, 6))
        rems = _bursts(rng, n, 12 if stage == "R" else (3 if stage == "W" else 0.2), (1.0, 3.0), (80, 200), (0.2, 0.6))
        blinks = _bursts(rng, n, 6 if stage == "W" else 0, (1.5, 2.5), (100, 250), (0.2, 0.4))
        for ch, sign in ((3, 1.0), (4, -1.0)):
            out[ch, sl] = _one_over_f(rng, n, 1.8, 10) + sign * (slow_eyes + rems) + blinks + 0.4 * slow
        tone = {"W": 14.0, "N1": 8.0, "N2": 6.0, "N3": 5.0, "R": 2.0}[stage]
        emg = signal.sosfilt(signal.butter(4, 40, "highpass", fs=FS, output="sos"), rng.normal(size=n)) * tone * 2.2
        out[5, sl] = emg + _one_over_f(rng, n, 1.0, tone * 0.4)  # most power above 50 Hz
        if rng.uniform() < 0.03:
            at = rng.integers(0, n - 400)
            out[:, sl][:, at: at + 400] += rng.uniform(200, 500) * np.hanning(400)
    return out + 4.0 * np.sin(2 * np.pi * MAINS * t)  # mains hum on every channel


# --- the authors' pipeline, restated ----------------------------------------------------------------

def authors_prepare(x: np.ndarray, fs: float, derivation: str) -> np.ndarray:
    low, high = (10.0, 100.0) if derivation in EMG_DERIVATIONS else (0.3, 35.0)
    nyq = fs / 2
    b, a = signal.butter(4, [min(max(low / nyq, 1e-3), 0.999), min(max(high / nyq, 1e-3), 0.999)], btype="bandpass")
    x = signal.filtfilt(b, a, x)
    b, a = signal.iirnotch(MAINS, 20, fs=fs)
    x = signal.filtfilt(b, a, x)
    n = len(x)
    return interpolate.interp1d(np.linspace(0, n - 1, n), x)(np.linspace(0, n - 1, int(round(n * 100 / fs))))


def authors_draw(epoch: np.ndarray, derivations) -> bytes:
    n = len(derivations)
    fig = plt.figure(figsize=(4.48, 2.24), dpi=100)
    fig.patch.set_facecolor("black")
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_facecolor("black")
    t = np.linspace(0, 30, epoch.shape[1], endpoint=False)
    for i, d in enumerate(derivations):
        half = 40.0 if d in EMG_DERIVATIONS else 50.0
        ax.plot(t, (n - i - 0.5) / n + epoch[i] / (2 * half) / n, color=COLOURS[d], linewidth=0.6, antialiased=True)
    for s in range(1, 30):
        if s % 5 == 0:
            ax.axvline(s, color="#404040", alpha=0.8, linewidth=0.8)
        else:
            ax.axvline(s, color="#404040", alpha=0.6, linewidth=0.5)
    for k in range(1, n):
        ax.axhline(k / n, color="#404040", alpha=0.8, linewidth=0.8)
    ax.set_xlim(0, 30)
    ax.set_ylim(0, 1)
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, facecolor="black", bbox_inches="tight", pad_inches=0)
    plt.close(fig)
    return buffer.getvalue()


def reference_path(raw: np.ndarray, onsets) -> list[bytes]:
    prepared = np.stack([authors_prepare(raw[i], FS, d) for i, d in enumerate(DERIVATIONS)])
    return [authors_draw(prepared[:, round(o * 100): round(o * 100) + EPOCH_SAMPLES], DERIVATIONS) for o in onsets]


def project_path(raw: np.ndarray, onsets, render=None) -> list[bytes]:
    """The import's own path: prepare_all and render_model_images, as ingest calls them (or `render`, one
    epoch at a time)."""
    prepared, _ = prepare_all([lambda i=i: raw[i] for i in range(len(DERIVATIONS))], FS, DERIVATIONS, MAINS,
                              CURRENT_PROFILE)
    epochs = [prepared[:, round(o * 100): round(o * 100) + EPOCH_SAMPLES] for o in onsets]
    return list(render_model_images(epochs, DERIVATIONS)) if render is None else [render(e, DERIVATIONS) for e in epochs]


def agg_reuse_render(epoch, derivations) -> bytes:
    """The other road, for comparison: matplotlib's Agg with one reused figure (grid drawn each time)."""
    state = agg_reuse_render.__dict__
    if "canvas" not in state:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.48, 2.24), dpi=100, facecolor="black")
        state["canvas"] = FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_facecolor("black")
        t = np.linspace(0, 30, EPOCH_SAMPLES, endpoint=False)
        state["lines"] = [ax.plot(t, t * 0, color=COLOURS[d], linewidth=0.6)[0] for d in derivations]
        for s in range(1, 30):
            ax.axvline(s, color="#404040", alpha=0.8 if s % 5 == 0 else 0.6, linewidth=0.8 if s % 5 == 0 else 0.5)
        for k in range(1, len(derivations)):
            ax.axhline(k / len(derivations), color="#404040", alpha=0.8, linewidth=0.8)
        ax.set_xlim(0, 30), ax.set_ylim(0, 1), ax.axis("off")
    n = len(derivations)
    for i, (line, d) in enumerate(zip(state["lines"], derivations)):
        line.set_ydata((n - i - 0.5) / n + epoch[i] / (2 * (40.0 if d in EMG_DERIVATIONS else 50.0)) / n)
    state["canvas"].draw()
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(state["canvas"].buffer_rgba())[..., :3]).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _repeatable(raw: np.ndarray) -> bool:
    """The same prepared epoch renders to the same bytes twice."""
    epoch = np.stack([prepare(raw[i, : int(90 * FS)], FS, d, MAINS)[0] for i, d in enumerate(DERIVATIONS)])
    epoch = epoch[:, EPOCH_SAMPLES: 2 * EPOCH_SAMPLES]
    return render_model_image(epoch, DERIVATIONS) == render_model_image(epoch.copy(), DERIVATIONS)


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def compare(ours: list[bytes], reference: list[bytes]) -> dict:
    n = len(DERIVATIONS)
    whole, bands = [], {d: [] for d in DERIVATIONS}
    for a, b in zip(ours, reference):
        a, b = _decode(a), _decode(b)
        assert a.shape == b.shape == (224, 448, 3), (a.shape, b.shape)
        whole.append(structural_similarity(a, b, channel_axis=-1, data_range=255))
        for i, d in enumerate(DERIVATIONS):
            rows = slice(round(i * 224 / n), round((i + 1) * 224 / n))
            bands[d].append(structural_similarity(a[rows], b[rows], channel_axis=-1, data_range=255))
    return {"ssim_vs_reference": round(float(np.mean(whole)), 4), "ssim_min": round(float(np.min(whole)), 4),
            "band_ssim": {d: round(float(np.mean(v)), 4) for d, v in bands.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--agg-reuse", action="store_true", help="also measure matplotlib's Agg with one reused figure")
    args = parser.parse_args()
    raw = raw_night(args.epochs)
    onsets = [30.0 * e for e in range(args.epochs)]
    project_path(raw[:, : int(60 * FS)], onsets[:1])  # warm caches, as a long-running worker would be
    ours, ours_s = _timed(project_path, raw, onsets)
    reference, reference_s = _timed(reference_path, raw, onsets)
    result = {
        "epochs_per_s": round(args.epochs / ours_s, 1),
        "reference_epochs_per_s": round(args.epochs / reference_s, 1),
        "speedup": round(reference_s / ours_s, 2),
        **compare(ours, reference),
        "epochs": args.epochs,
        "profile": CURRENT_PROFILE,
        "deterministic": _repeatable(raw),
    }
    if args.agg_reuse:
        agg, agg_s = _timed(project_path, raw, onsets, agg_reuse_render)
        print(json.dumps({"agg_reuse": {"epochs_per_s": round(args.epochs / agg_s, 1),
                                        "speedup": round(reference_s / agg_s, 2), **compare(agg, reference)}}))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
