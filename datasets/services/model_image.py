"""The authors' grid of the SleepVLM model image, drawn by matplotlib's Agg once per montage.

Their drawing (rendering.md): a 4.48 × 2.24 in figure at 100 dpi, axes filling it, x 0–30 s, y 0–1;
vertical lines at every whole second 1..29 (#404040, alpha 0.6, linewidth 0.5; alpha 0.8,
linewidth 0.8 at multiples of 5 s) and band separators (#404040, alpha 0.8, linewidth 0.8), drawn
after the traces, so on top of them; saved with bbox_inches="tight", pad_inches=0 on black, which
keeps the full 448 × 224 px. The grid is identical for every epoch: Agg draws it here once on a
transparent figure, and the renderer composites that layer over its traces (source-over, what Agg
does when it draws the lines last), so the grid's widths, alphas and antialiasing are Agg's own.
"""
from __future__ import annotations

import functools

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from datasets.constants import EPOCH_SECONDS, GRID_COLOUR, MODEL_IMAGE_SIZE

FIGSIZE_IN = (4.48, 2.24)
DPI = 100
SECOND_LINE = {"alpha": 0.6, "linewidth": 0.5}
FIVE_SECOND_LINE = {"alpha": 0.8, "linewidth": 0.8}
BAND_SEPARATOR = {"alpha": 0.8, "linewidth": 0.8}


@functools.lru_cache(maxsize=8)
def grid_layer(n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep, paint): composite a canvas as canvas * keep + paint, both (224, 448, 1|3) float32, read-only."""
    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI, facecolor="none")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_facecolor("none")
    axes.set_xlim(0, EPOCH_SECONDS)
    axes.set_ylim(0, 1)
    axes.axis("off")
    for second in range(1, EPOCH_SECONDS):
        axes.axvline(second, color=GRID_COLOUR, **(FIVE_SECOND_LINE if second % 5 == 0 else SECOND_LINE))
    for k in range(1, n_bands):
        axes.axhline(k / n_bands, color=GRID_COLOUR, **BAND_SEPARATOR)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba(), dtype=np.float32)
    assert rgba.shape[:2] == MODEL_IMAGE_SIZE[::-1], rgba.shape
    alpha = rgba[..., 3:] / 255.0
    keep, paint = 1.0 - alpha, rgba[..., :3] * alpha
    keep.flags.writeable = paint.flags.writeable = False
    return keep, paint


@functools.lru_cache(maxsize=8)
def grid_pixels(n_bands: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid layer where it shows, for compositing only there: (flat pixel indices, keep (k, 1), paint (k, 3)).
    Elsewhere keep is exactly 1 and paint 0, so a canvas pixel composites to itself."""
    keep, paint = grid_layer(n_bands)
    shown = np.flatnonzero((keep[..., 0] != 1.0) | (paint != 0).any(axis=-1))
    layer = shown, keep.reshape(-1, 1)[shown], paint.reshape(-1, 3)[shown]
    for array in layer:
        array.flags.writeable = False
    return layer
