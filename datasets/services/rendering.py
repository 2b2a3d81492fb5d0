"""Epoch images (spec/rendering.md): the 448x224 model-input PNG and the labelled expert viewer.

Numpy + Pillow, deterministic (same input, same bytes), no Django. Traces are rasterised by a
vectorised column-envelope scan: each pixel column is split into sub-columns, the polyline's vertical
extent in each (its samples plus the interpolated boundary crossings) is widened by a box pen, and the
exact fractional row overlaps, averaged over the sub-columns, are the antialiasing coverage. Traces are
alpha-composited in band order (later bands on top), as matplotlib/Agg draws them.

Coordinates are continuous pixels: row r covers r <= y < r + 1, column c covers c <= x < c + 1.
For a plot of width W and height H with n bands (band height h = H / n, band i = 0 at the top):

    x(k) = k * W / 3000                                  sample k of the epoch (100 Hz, 30 s)
    y(v) = (i + 0.5) * h - v * h / (2 * R)               v in µV, R = 50 (EEG, EOG) or 40 (chin EMG)

so +R µV falls on the band's top edge (y = i * h), -R µV on its bottom edge (y = (i + 1) * h), and
0 µV on its centre. Nothing is clipped except at the plot edges.

Model image: the traces, then the authors' grid drawn by Agg once and composited on top
(model_image.py). Viewer: its own full-strength grid (a line of width p px at position z occupies
the p pixels starting at round(z) - p // 2; 1-s lines and band separators 1 px, 5-s lines 2 px)
beneath the traces, with labels, guides and a mid-epoch marker.
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from datasets.services.model_image import grid_pixels
from datasets.constants import (
    DERIVATION_COLOURS,
    DERIVATION_HALF_RANGE_UV,
    EEG_DERIVATIONS,
    EPOCH_SAMPLES,
    EPOCH_SECONDS,
    GRID_COLOUR,
    MODEL_IMAGE_SIZE,
)

MODEL_PEN_PX = 0.6 * 100 / 72  # matplotlib linewidth 0.6 pt at 100 dpi
MODEL_SUBCOLUMNS = 3
GUIDE_UV = 37.5  # half of the 75 µV p-p slow-wave criterion

# Viewer geometry: 24 px per second, 80 px per band (same scales as the model image), so that three
# epochs side by side fit a screen at about half size with legible labels.
VIEW_PX_PER_SECOND = 24
VIEW_PANEL_WIDTH = VIEW_PX_PER_SECOND * EPOCH_SECONDS
VIEW_PLOT_HEIGHT = 480
VIEW_PEN_PX = 1.0
VIEW_SUBCOLUMNS = 3
VIEW_LEFT, VIEW_RIGHT, VIEW_TOP, VIEW_BOTTOM, VIEW_GAP = 150, 24, 46, 76, 16
VIEW_CHROME = (16, 18, 22)
VIEW_CURRENT_TINT = (10, 22, 38)
VIEW_ACCENT = (86, 156, 255)
VIEW_MARKER = (255, 166, 77)
VIEW_GUIDE = (150, 150, 150)
VIEW_TEXT = (214, 218, 224)
VIEW_MUTED = (130, 136, 146)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


GRID_RGB = _rgb(GRID_COLOUR)


def render_model_image(signals: np.ndarray, derivations: Sequence[str]) -> bytes:
    """The 448x224 model-input PNG of one epoch: signals (n, 3000) in µV, one band per derivation.

    Traces by the vectorised rasteriser on black, then the authors' grid on top (model_image.py).
    """
    signals = _checked(signals, derivations)
    width, height = MODEL_IMAGE_SIZE
    canvas = np.zeros((height, width, 3), np.uint8)
    _draw_traces(canvas, (0, 0), (height, width), signals, derivations, MODEL_PEN_PX, MODEL_SUBCOLUMNS)
    shown, keep, paint = grid_pixels(len(derivations))
    pixels = canvas.reshape(-1, 3)
    pixels[shown] = (pixels[shown] * keep + paint + 0.5).astype(np.uint8)  # canvas * keep + paint
    return _png(canvas)


def render_model_images(epochs: Iterable[np.ndarray], derivations: Sequence[str]) -> Iterator[bytes]:
    """render_model_image of each epoch, in order, on a few threads (numpy and zlib release the GIL).

    The grid is drawn first, here (matplotlib is not thread-safe); a consumer that stops early cancels
    the renders not yet started."""
    grid_pixels(len(derivations))
    pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
    try:
        yield from pool.map(lambda epoch: render_model_image(epoch, derivations), epochs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def render_viewer_image(
    epochs: Sequence[np.ndarray],
    derivations: Sequence[str],
    *,
    titles: Sequence[str] | None = None,
    current: int | None = None,
    guides: bool = True,
    start_seconds: float = 0.0,
) -> bytes:
    """The labelled expert view (PNG) of consecutive epochs side by side, same colours and scales as the model.

    ``start_seconds``: recording time of the first epoch's start (labels the seconds axis);
    ``current``: index of the highlighted epoch; ``guides``: ±37.5 µV dashed lines on EEG bands.
    """
    epochs = [_checked(e, derivations) for e in epochs]
    derivations = tuple(derivations)
    if not epochs:
        raise ValueError("no epochs to render")
    if titles is not None and len(titles) != len(epochs):
        raise ValueError("titles must match epochs")
    if current is not None and not 0 <= current < len(epochs):
        raise ValueError(f"current must index the epochs, got {current}")
    n_ep = len(epochs)
    width = _panel_x(n_ep) - VIEW_GAP + VIEW_RIGHT
    plot_rows = slice(VIEW_TOP, VIEW_TOP + VIEW_PLOT_HEIGHT)
    canvas = np.empty((VIEW_TOP + VIEW_PLOT_HEIGHT + VIEW_BOTTOM, width, 3), np.uint8)
    canvas[:VIEW_TOP] = _title_strip(width, n_ep, titles, current)
    canvas[plot_rows, :VIEW_LEFT] = _label_column(derivations)
    for e in range(n_ep):  # the gaps right of each plot, and the right margin
        canvas[plot_rows, _panel_x(e) + VIEW_PANEL_WIDTH : _panel_x(e + 1) if e < n_ep - 1 else width] = VIEW_CHROME
    canvas[VIEW_TOP + VIEW_PLOT_HEIGHT :] = _axis_strip(width, n_ep, float(start_seconds), guides)
    for e, signals in enumerate(epochs):
        x0 = _panel_x(e)
        canvas[plot_rows, x0 : x0 + VIEW_PANEL_WIDTH] = _viewer_panel(derivations, guides, e == current)
        plot_size = (VIEW_PLOT_HEIGHT, VIEW_PANEL_WIDTH)
        _draw_traces(canvas, (VIEW_TOP, x0), plot_size, signals, derivations, VIEW_PEN_PX, VIEW_SUBCOLUMNS)
    if current is not None:
        _frame(canvas, current)
    return _png(canvas)


def uv_to_y(uv, band: int, derivation: str, n_bands: int, height: int = MODEL_IMAGE_SIZE[1]):
    """Continuous pixel y (0 = top edge) of ``uv`` µV in band ``band`` (0 = top) of n_bands over height px."""
    h = height / n_bands
    return (band + 0.5) * h - np.asarray(uv, dtype=np.float64) * (h / (2 * DERIVATION_HALF_RANGE_UV[derivation]))


def band_rows(n_bands: int, height: int = MODEL_IMAGE_SIZE[1]) -> list[int]:
    """Pixel rows of the separators between n bands (n - 1 rows)."""
    return [_line_start(i * height / n_bands, 1) for i in range(1, n_bands)]


def second_columns(width: int = MODEL_IMAGE_SIZE[0]) -> dict[int, list[int]]:
    """Pixel columns of the vertical grid line at each whole second 1..29 (2 px every 5 s)."""
    lines = {}
    for s in range(1, EPOCH_SECONDS):
        p = 2 if s % 5 == 0 else 1
        first = _line_start(s * width / EPOCH_SECONDS, p)
        lines[s] = list(range(first, first + p))
    return lines


def _checked(signals: np.ndarray, derivations: Sequence[str]) -> np.ndarray:
    signals = np.asarray(signals, dtype=np.float64)
    if not len(derivations):
        raise ValueError("no derivations to render")
    if signals.shape != (len(derivations), EPOCH_SAMPLES):
        raise ValueError(f"expected signals of shape ({len(derivations)}, {EPOCH_SAMPLES}), got {signals.shape}")
    unknown = [d for d in derivations if d not in DERIVATION_COLOURS]
    if unknown:
        raise ValueError(f"unknown derivations: {unknown}")
    if not np.isfinite(signals).all():
        raise ValueError("signals contain NaN or infinite values")
    return signals


def _line_start(centre: float, thickness: int) -> int:
    return int(np.floor(centre + 0.5)) - thickness // 2


@functools.lru_cache(maxsize=16)
def _grid(width: int, height: int, n_bands: int, background=(0, 0, 0)) -> np.ndarray:
    """(H, W, 3) uint8 background with the 1-s / 5-s grid and band separators (cached, read-only)."""
    grid = np.empty((height, width, 3), np.uint8)
    grid[:] = background
    for cols in second_columns(width).values():
        grid[:, cols] = GRID_RGB
    grid[band_rows(n_bands, height)] = GRID_RGB
    grid.flags.writeable = False
    return grid


# --- trace rasteriser ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _column_plan(n_samples: int, width: int, sub: int, reach: int):
    """Index plan for the envelopes of a polyline of n_samples evenly spread over width pixels.

    Returns the sub-column boundary crossings' (left sample, fraction) and a (K, width * sub) index
    into [samples, crossings] listing, for sub-column j, the crossings at both ends of the window
    [j - reach, j + reach + 1) (in sub-columns) and every sample inside it (padded by repetition).
    """
    n_sub = width * sub
    per_sub = n_samples / n_sub
    pos = np.arange(n_sub + 1) * per_sub  # crossing positions, in samples
    left = np.minimum(np.floor(pos).astype(np.intp), n_samples - 2)
    frac = np.clip(pos - left, 0.0, 1.0)
    lo = np.clip(np.arange(n_sub) - reach, 0, n_sub)
    hi = np.clip(np.arange(n_sub) + reach + 1, 0, n_sub)
    first = np.ceil(lo * per_sub - 1e-9).astype(np.intp)
    stop = np.minimum(np.ceil(hi * per_sub - 1e-9).astype(np.intp), n_samples)
    inside = first + np.arange(int((stop - first).max()))[:, None]
    inside = np.where(inside < stop, inside, n_samples + lo)  # pad with the window's left crossing
    index = np.concatenate([inside, (n_samples + lo)[None], (n_samples + hi)[None]])
    return left, frac, index


def _envelopes(y: np.ndarray, width: int, sub: int, pen: float) -> tuple[np.ndarray, np.ndarray]:
    """Per sub-column [top, bottom] extent of the polylines y (n, samples), widened by the pen.

    The pen is a box: pen px tall and 2 * reach + 1 sub-columns (about pen px) wide.
    """
    reach = max(0, round((pen * sub - 1) / 2))
    left, frac, index = _column_plan(y.shape[1], width, sub, reach)
    crossings = y[:, left] * (1.0 - frac) + y[:, left + 1] * frac
    points = np.concatenate([y, crossings], axis=1)[:, index]
    return np.minimum.reduce(points, axis=1) - pen / 2, np.maximum.reduce(points, axis=1) + pen / 2


def _cells(top: np.ndarray, bottom: np.ndarray, height: int, width: int, sub: int):
    """Lit pixels of the traces: (pixel column over all traces, row, coverage), trace c's entries in
    [bounds[c], bounds[c + 1]).

    A span [top, bottom] covers clip(bottom - r, 0, 1) - clip(top - r, 0, 1) of row r; a pixel's
    coverage is the mean over its sub-columns. Only rows between a column's extremes are visited.
    """
    n = top.shape[0]
    top = np.clip(top, 0, height).astype(np.float32).reshape(n * width, sub)
    bottom = np.clip(bottom, 0, height).astype(np.float32).reshape(n * width, sub)
    highest, lowest = top[:, 0], bottom[:, 0]
    for s in range(1, sub):
        highest, lowest = np.minimum(highest, top[:, s]), np.maximum(lowest, bottom[:, s])
    first = np.floor(highest).astype(np.intp)
    counts = np.maximum(np.ceil(lowest).astype(np.intp) - first, 0)
    ends = np.cumsum(counts)
    column = np.repeat(np.arange(n * width), counts)
    row = np.arange(ends[-1]) + (first - ends + counts)[column]
    row_f = row.astype(np.float32)
    cover = np.zeros(row.size, np.float32)
    part = np.empty(row.size, np.float32)
    for edges, accumulate in ((bottom, np.add), (top, np.subtract)):
        for s in range(sub):
            np.take(edges[:, s], column, out=part)
            part -= row_f
            np.clip(part, 0, 1, out=part)
            accumulate(cover, part, out=cover)
    cover *= np.float32(1 / sub)
    return column, row, cover, np.concatenate([[0], ends[width - 1 :: width]])


def _draw_traces(canvas, origin, size, signals, derivations, pen: float, sub: int) -> None:
    """Draw the antialiased traces into the plot of (height, width) at origin (row, col) of canvas (uint8)."""
    (y0, x0), (height, width) = origin, size
    n = len(derivations)
    y = np.stack([uv_to_y(signals[i], i, d, n, height) for i, d in enumerate(derivations)])
    column, row, cover, bounds = _cells(*_envelopes(y, width, sub, pen), height, width, sub)
    stride = canvas.shape[1] * 3
    column_at = (y0 * stride + (x0 + np.tile(np.arange(width), n)) * 3)[column]
    at = row * stride + column_at
    flat = canvas.reshape(-1)
    for c, d in enumerate(derivations):
        part = slice(bounds[c], bounds[c + 1])
        _blend(flat, at[part], cover[part], _rgb(DERIVATION_COLOURS[d]))


def _blend(flat: np.ndarray, at: np.ndarray, alpha: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Source-over compositing of colour with per-pixel alpha at byte offsets ``at`` (R; G, B follow)."""
    keep = 1.0 - alpha
    for k, value in enumerate(colour):
        index = at + k
        mixed = flat[index] * keep
        if value:
            mixed += value * alpha
        flat[index] = mixed + 0.5


def _png(pixels: np.ndarray) -> bytes:
    """Encode (H, W, 3) uint8 as an 8-bit RGB PNG: "Up" filter on every row, zlib level 1 with the
    run-length strategy (several times faster than Pillow's adaptive filter search, similar size).

    Over 1 MiB (viewer images) the two halves of the rows are filtered and deflated on two threads (zlib
    releases the GIL); the first half ends with a sync flush on a byte boundary, so the two raw deflate
    streams concatenate into one. The split depends only on the size, so the bytes are deterministic.
    """
    height, width, _ = pixels.shape
    rows = pixels.reshape(height, width * 3)
    cuts = [0, height // 2, height] if rows.nbytes > 1 << 20 and height > 1 else [0, height]

    def encode(k: int) -> tuple[bytes, int, int]:
        r0, r1 = cuts[k], cuts[k + 1]
        raw = np.empty((r1 - r0, width * 3 + 1), np.uint8)
        raw[:, 0] = 2
        if r0 == 0:
            raw[0, 1:] = rows[0]
        above = max(r0, 1)
        np.subtract(rows[above:r1], rows[above - 1 : r1 - 1], out=raw[above - r0 :, 1:])
        packer = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        flush = zlib.Z_FINISH if r1 == height else zlib.Z_SYNC_FLUSH
        return packer.compress(raw) + packer.flush(flush), zlib.adler32(raw), raw.nbytes

    if len(cuts) == 2:
        blocks = [encode(0)]
    else:
        with ThreadPoolExecutor(max_workers=2) as pool:
            blocks = list(pool.map(encode, range(2)))
    check = blocks[0][1]
    for _, adler, size in blocks[1:]:
        check = _adler32_combine(check, adler, size)
    data = b"\x78\x01" + b"".join(block for block, _, _ in blocks) + struct.pack(">I", check)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of two byte strings joined, from theirs (A = 1 + sum of bytes, B = sum of the A's)."""
    base = 65521
    a1, b1, a2, b2 = first & 0xFFFF, first >> 16, second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % base
    b = (b1 + b2 + second_length * (a1 - 1)) % base
    return b << 16 | a


# --- viewer chrome -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _panel_x(e: int) -> int:
    return VIEW_LEFT + e * (VIEW_PANEL_WIDTH + VIEW_GAP)


@functools.lru_cache(maxsize=8)
def _viewer_panel(derivations: tuple[str, ...], guides: bool, is_current: bool) -> np.ndarray:
    """One epoch's plot background: grid, tint, dashed EEG guides and the dotted mid-epoch marker."""
    height, width = VIEW_PLOT_HEIGHT, VIEW_PANEL_WIDTH
    panel = _grid(width, height, len(derivations), VIEW_CURRENT_TINT if is_current else (0, 0, 0)).copy()
    if guides:
        dashes = (np.arange(width) // 6) % 2 == 0
        for i, d in enumerate(derivations):
            if d in EEG_DERIVATIONS:
                for uv in (GUIDE_UV, -GUIDE_UV):
                    panel[int(uv_to_y(uv, i, d, len(derivations), height)), dashes] = VIEW_GUIDE
    panel[(np.arange(height) // 4) % 2 == 0, _line_start(width / 2, 1)] = VIEW_MARKER
    panel.flags.writeable = False
    return panel


@functools.lru_cache(maxsize=8)
def _label_column(derivations: tuple[str, ...]) -> np.ndarray:
    """Left margin beside the plots: colour swatch, channel name and scale of each band."""
    image = Image.new("RGB", (VIEW_LEFT, VIEW_PLOT_HEIGHT), VIEW_CHROME)
    draw = ImageDraw.Draw(image)
    h = VIEW_PLOT_HEIGHT / len(derivations)
    right = VIEW_LEFT - 16
    for i, d in enumerate(derivations):
        cy = (i + 0.5) * h
        draw.rectangle([right + 6, cy - 14, right + 10, cy + 14], fill=_rgb(DERIVATION_COLOURS[d]))
        draw.text((right, cy - 2), d, font=_font(22), fill=VIEW_TEXT, anchor="rs")
        scale = f"±{DERIVATION_HALF_RANGE_UV[d]:g} uV"  # the bundled font has no µ
        draw.text((right, cy + 5), scale, font=_font(16), fill=VIEW_MUTED, anchor="rt")
    column = np.asarray(image)
    column.flags.writeable = False
    return column


def _title_strip(width: int, n_ep: int, titles: Sequence[str] | None, current: int | None) -> np.ndarray:
    """Strip above the plots: per-epoch titles and the mid-epoch triangle."""
    image = Image.new("RGB", (width, VIEW_TOP), VIEW_CHROME)
    draw = ImageDraw.Draw(image)
    for e in range(n_ep):
        x0 = _panel_x(e)
        if titles:
            colour = VIEW_ACCENT if e == current else VIEW_TEXT
            draw.text((x0 + 2, VIEW_TOP - 14), titles[e], font=_font(22), fill=colour, anchor="ls")
        mid = x0 + VIEW_PANEL_WIDTH // 2
        draw.polygon([(mid - 8, VIEW_TOP - 20), (mid + 9, VIEW_TOP - 20), (mid, VIEW_TOP - 7)], fill=VIEW_MARKER)
    return np.asarray(image)


def _axis_strip(width: int, n_ep: int, start_seconds: float, guides: bool) -> np.ndarray:
    """Strip below the plots: seconds labels (recording time) every 5 s over the cached ticks and legend."""
    image = Image.fromarray(_axis_base(width, n_ep, guides))
    draw = ImageDraw.Draw(image)
    for e in range(n_ep):
        for s in range(0, EPOCH_SECONDS + 1, 5):
            if s < EPOCH_SECONDS or e == n_ep - 1:
                x = min(_panel_x(e) + s * VIEW_PX_PER_SECOND, _panel_x(e) + VIEW_PANEL_WIDTH - 1)
                label = f"{start_seconds + e * EPOCH_SECONDS + s:g}"
                draw.text((x, 10), label, font=_font(17), fill=VIEW_TEXT, anchor="mt")
    return np.asarray(image)


@functools.lru_cache(maxsize=8)
def _axis_base(width: int, n_ep: int, guides: bool) -> np.ndarray:
    """Seconds ticks (long every 5 s), axis caption and legend."""
    image = Image.new("RGB", (width, VIEW_BOTTOM), VIEW_CHROME)
    draw = ImageDraw.Draw(image)
    for e in range(n_ep):
        for s in range(EPOCH_SECONDS + 1):
            x = min(_panel_x(e) + s * VIEW_PX_PER_SECOND, _panel_x(e) + VIEW_PANEL_WIDTH - 1)
            draw.line([(x, 0), (x, 6 if s % 5 == 0 else 2)], fill=VIEW_MUTED)
    draw.text((12, 20), "time (s)", font=_font(17), fill=VIEW_MUTED, anchor="lm")
    legend_y = 58
    x = _legend_item(draw, width - VIEW_RIGHT, legend_y, "mid-epoch (N2 first-half rule)", VIEW_MARKER, 2)
    if guides:
        _legend_item(draw, x - 24, legend_y, "±37.5 uV guides on EEG (75 uV p-p)", VIEW_GUIDE, 6)
    base = np.asarray(image)
    base.flags.writeable = False
    return base


def _legend_item(draw: ImageDraw.ImageDraw, right: int, y: int, text: str, colour, dash: int) -> int:
    """Dashed sample line and text, right-aligned at ``right``; returns the item's left edge."""
    left = right - int(draw.textlength(text, font=_font(16)))
    draw.text((right, y), text, font=_font(16), fill=VIEW_MUTED, anchor="rm")
    for x in range(left - 30, left - 6, 2 * dash):
        draw.line([(x, y), (x + dash - 1, y)], fill=colour)
    return left - 30


def _frame(canvas: np.ndarray, e: int) -> None:
    """2-px accent frame just outside the plot of epoch e."""
    x0, x1 = _panel_x(e) - 2, _panel_x(e) + VIEW_PANEL_WIDTH + 2
    y0, y1 = VIEW_TOP - 2, VIEW_TOP + VIEW_PLOT_HEIGHT + 2
    canvas[y0 : y0 + 2, x0:x1] = canvas[y1 - 2 : y1, x0:x1] = VIEW_ACCENT
    canvas[y0:y1, x0 : x0 + 2] = canvas[y0:y1, x1 - 2 : x1] = VIEW_ACCENT
