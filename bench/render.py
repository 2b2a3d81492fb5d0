"""Benchmark the epoch renderer against a plain matplotlib rendering of the same spec (rendering.md).

Builds a synthetic night (fixed seed, µV, 100 Hz, six derivations), renders every epoch with
datasets.services.rendering.render_model_image and with the matplotlib reference below, times both
(PNG bytes out, like the platform stores), and compares the decoded images: mean SSIM on the RGB
images (skimage structural_similarity, channel_axis=-1, data_range=255) and mean absolute pixel
difference. Last line of output: one JSON object.

    .venv/bin/python bench/render.py [--epochs N]
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
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from datasets.constants import (  # noqa: E402
    DERIVATION_COLOURS,
    DERIVATION_HALF_RANGE_UV,
    DERIVATIONS,
    EPOCH_SAMPLES,
    EPOCH_SECONDS,
    GRID_COLOUR,
    TARGET_SFREQ,
)
from datasets.services.rendering import render_model_image  # noqa: E402

SEED = 20240611
STAGE_CYCLE = ["W"] * 20 + ["N1"] * 10 + ["N2"] * 40 + ["N3"] * 30 + ["N2"] * 20 + ["R"] * 25


def _coloured_noise(rng, n, exponent, rms):
    """Noise with a 1/f^exponent power spectrum, scaled to rms µV."""
    spectrum = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / TARGET_SFREQ)
    spectrum *= np.where(f > 0.3, 1 / np.maximum(f, 0.3) ** (exponent / 2), 0)
    spectrum[f > 35] = 0
    x = np.fft.irfft(spectrum, n)
    return x * (rms / x.std())


def _bursts(rng, n, rate_per_epoch, freq, amp, dur):
    """Sum of Hann-windowed sinusoid bursts (spindles, alpha, slow waves) at random times."""
    out = np.zeros(n)
    t = np.arange(n) / TARGET_SFREQ
    for _ in range(rng.poisson(rate_per_epoch * n / EPOCH_SAMPLES)):
        centre, length, f = rng.uniform(0, t[-1]), rng.uniform(*dur), rng.uniform(*freq)
        inside = np.abs(t - centre) < length / 2
        window = 0.5 + 0.5 * np.cos(2 * np.pi * (t[inside] - centre) / length)
        out[inside] += rng.uniform(*amp) * window * np.sin(2 * np.pi * f * (t[inside] - centre))
    return out


def synthetic_night(n_epochs, seed=SEED):
    """(6, n_epochs * 3000) µV: EEG background with alpha, spindles, K-complex-like and slow waves,
    EOG eye movements, chin EMG tone falling with depth, and a few large movement artefacts."""
    rng = np.random.default_rng(seed)
    stages = [STAGE_CYCLE[i % len(STAGE_CYCLE)] for i in range(n_epochs)]
    signals = np.zeros((6, n_epochs * EPOCH_SAMPLES))
    for e, stage in enumerate(stages):
        sl = slice(e * EPOCH_SAMPLES, (e + 1) * EPOCH_SAMPLES)
        n = EPOCH_SAMPLES
        deep = {"W": 0.0, "N1": 0.2, "R": 0.1, "N2": 0.5, "N3": 1.0}[stage]
        slow = _bursts(rng, n, 25 * deep, (0.6, 1.8), (60, 180), (0.6, 2.0))
        spindles = _bursts(rng, n, 4 if stage == "N2" else 0.5, (11.5, 14.5), (15, 35), (0.6, 1.6))
        alpha = _bursts(rng, n, 6 if stage == "W" else 0.3, (8.5, 11.5), (20, 45), (1.0, 4.0))
        for ch, weight in enumerate((1.0, 0.85, 0.7)):
            background = _coloured_noise(rng, n, 1.6, 12 + 6 * deep)
            signals[ch, sl] = background + weight * (slow + spindles) + (ch == 2) * alpha + (ch == 0) * 0.4 * alpha
        eye = _bursts(rng, n, {"W": 4, "R": 10}.get(stage, 0.5), (0.3, 0.9), (60, 160), (0.4, 1.2))
        signals[3, sl] = _coloured_noise(rng, n, 1.8, 8) + eye + 0.4 * slow
        signals[4, sl] = _coloured_noise(rng, n, 1.8, 8) - eye + 0.4 * slow
        tone = {"W": 12.0, "N1": 7.0, "N2": 5.0, "N3": 4.0, "R": 1.5}[stage]
        signals[5, sl] = rng.normal(size=n) * tone * (1 + 0.5 * np.sin(np.arange(n) / 700))
        if rng.uniform() < 0.03:  # movement artefact across channels
            at = rng.integers(0, n - 150)
            signals[:, sl][:, at : at + 150] += rng.uniform(200, 400) * np.hanning(150)
    return signals.astype(np.float32), stages


def reference_png(epoch, derivations):
    """A plain matplotlib rendering of rendering.md: 100 dpi, 4.48 x 2.24 in, axes filling the figure."""
    n = len(derivations)
    fig = Figure(figsize=(4.48, 2.24), dpi=100, facecolor="black")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, EPOCH_SECONDS)
    ax.set_ylim(0, n)
    px = 72 / 100  # one pixel, in points
    for s in range(1, EPOCH_SECONDS):
        ax.axvline(s, color=GRID_COLOUR, linewidth=(2 if s % 5 == 0 else 1) * px, zorder=1)
    for i in range(1, n):
        ax.axhline(i, color=GRID_COLOUR, linewidth=px, zorder=1)
    t = np.arange(EPOCH_SAMPLES) / TARGET_SFREQ
    for i, d in enumerate(derivations):
        y = n - i - 0.5 + epoch[i] / (2 * DERIVATION_HALF_RANGE_UV[d])
        ax.plot(t, y, color=DERIVATION_COLOURS[d], linewidth=0.6, zorder=2, clip_on=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, facecolor="black")
    return buffer.getvalue()


def _decode(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=600)
    args = parser.parse_args()
    signals, _ = synthetic_night(args.epochs)
    epochs = [signals[:, e * EPOCH_SAMPLES : (e + 1) * EPOCH_SAMPLES] for e in range(args.epochs)]

    render_model_image(epochs[0], DERIVATIONS)  # warm caches, as a long-running worker would be
    start = time.perf_counter()
    ours = [render_model_image(epoch, DERIVATIONS) for epoch in epochs]
    ours_s = time.perf_counter() - start

    reference_png(epochs[0], DERIVATIONS)
    start = time.perf_counter()
    reference = [reference_png(epoch, DERIVATIONS) for epoch in epochs]
    reference_s = time.perf_counter() - start

    ssim, abs_diff = [], []
    for a, b in zip(ours, reference):
        a, b = _decode(a), _decode(b)
        assert a.shape == b.shape == (224, 448, 3), (a.shape, b.shape)
        ssim.append(structural_similarity(a, b, channel_axis=-1, data_range=255))
        abs_diff.append(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
    deterministic = render_model_image(epochs[-1], DERIVATIONS) == ours[-1]

    print(f"renderer:   {args.epochs / ours_s:8.1f} epochs/s  ({1000 * ours_s / args.epochs:.2f} ms/epoch)")
    print(f"matplotlib: {args.epochs / reference_s:8.1f} epochs/s  ({1000 * reference_s / args.epochs:.2f} ms/epoch)")
    print(f"SSIM (RGB) mean {np.mean(ssim):.4f}, min {np.min(ssim):.4f}; mean |diff| {np.mean(abs_diff):.3f} / 255")
    result = {
        "epochs_per_s": round(args.epochs / ours_s, 1),
        "reference_epochs_per_s": round(args.epochs / reference_s, 1),
        "speedup": round(reference_s / ours_s, 2),
        "ssim_vs_reference": round(float(np.mean(ssim)), 4),
        "ssim_min": round(float(np.min(ssim)), 4),
        "mean_abs_diff": round(float(np.mean(abs_diff)), 3),
        "ms_per_epoch": round(1000 * ours_s / args.epochs, 3),
        "epochs": args.epochs,
        "ssim_mode": "rgb",
        "deterministic": deterministic,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
