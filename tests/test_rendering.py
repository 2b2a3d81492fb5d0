"""Pixel tests of the epoch renderer (datasets/services/rendering.py, spec/rendering.md). No database."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from datasets.constants import (
    DERIVATION_COLOURS,
    DERIVATIONS,
    EEG_DERIVATIONS,
    EPOCH_SAMPLES,
    MODEL_IMAGE_SIZE,
    TARGET_SFREQ,
)
from datasets.services import rendering
from datasets.services.model_image import grid_layer
from datasets.services.rendering import render_model_image, render_viewer_image, uv_to_y

W, H = MODEL_IMAGE_SIZE
T = np.arange(EPOCH_SAMPLES) / TARGET_SFREQ
GRID = (0x40, 0x40, 0x40)
QUARTER = 64  # "lit" = the trace colour reaches a quarter of full intensity


def rgb(hex_colour):
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def decode(png):
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def epoch(waves=None, derivations=DERIVATIONS):
    """Flat zero signals (n, 3000), with waves = {derivation: samples} for some derivations."""
    signals = np.zeros((len(derivations), EPOCH_SAMPLES))
    for name, wave in (waves or {}).items():
        signals[list(derivations).index(name)] = wave
    return signals


def sine(peak_to_peak, hz=1.0):
    return peak_to_peak / 2 * np.sin(2 * np.pi * hz * T)


def lit(img, derivation, threshold=1):
    """Pixels showing the derivation's colour: its on-components exceed its off-components by threshold."""
    colour = rgb(DERIVATION_COLOURS[derivation])
    on = [k for k in range(3) if colour[k]]
    off = [k for k in range(3) if not colour[k]]
    return img[..., on].min(axis=-1) - img[..., off].max(axis=-1) >= threshold


def lit_rows(img, derivation, threshold=1, columns=slice(None)):
    return np.flatnonzero(lit(img[:, columns], derivation, threshold).any(axis=1))


def grid_alpha(n_bands=6):
    """Per-pixel opacity of the authors' grid layer (0 where no grid line reaches)."""
    keep, _ = grid_layer(n_bands)
    return 1.0 - keep[..., 0]


def free_columns(n_bands=6):
    """Model-image columns no vertical grid line touches."""
    away_from_separators = [r for r in range(H) if grid_alpha(n_bands)[r].min() == 0]
    return [c for c in range(W) if (grid_alpha(n_bands)[away_from_separators, c] == 0).all()]


def separator_rows(n_bands=6):
    return [r for r in range(H) if grid_alpha(n_bands)[r, free_columns(n_bands)].min() > 0]


# --- model image ---------------------------------------------------------------------------------


def test_model_image_is_a_448x224_rgb_png():
    png = render_model_image(epoch(), DERIVATIONS)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.size == (448, 224)
    assert image.mode == "RGB"


def test_uv_to_pixel_mapping_is_exact():
    h = H / 6
    assert uv_to_y(50, 0, "F4-M1", 6) == 0
    assert uv_to_y(-50, 0, "F4-M1", 6) == pytest.approx(h)
    assert uv_to_y(0, 2, "O2-M1", 6) == pytest.approx(2.5 * h)
    assert uv_to_y(40, 5, "Chin EMG", 6) == pytest.approx(5 * h)
    assert uv_to_y(-40, 5, "Chin EMG", 6) == pytest.approx(H)
    assert uv_to_y(25, 1, "C4-M1", 5) == pytest.approx(1.5 * H / 5 - H / 5 / 4)


def _authors_grid_png(n_bands=6) -> np.ndarray:
    """The authors' figure with flat traces outside the image, saved as they save it (rendering.md)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4.48, 2.24), dpi=100)
    fig.patch.set_facecolor("black")
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_facecolor("black")
    for s in range(1, 30):
        ax.axvline(s, color="#404040", alpha=0.8 if s % 5 == 0 else 0.6, linewidth=0.8 if s % 5 == 0 else 0.5)
    for k in range(1, n_bands):
        ax.axhline(k / n_bands, color="#404040", alpha=0.8, linewidth=0.8)
    ax.set_xlim(0, 30), ax.set_ylim(0, 1), ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="black", bbox_inches="tight", pad_inches=0)
    plt.close(fig)
    return np.asarray(Image.open(buffer).convert("RGB")).astype(int)


def test_grid_is_the_authors_matplotlib_grid_pixel_for_pixel():
    reference = _authors_grid_png()
    assert reference.shape == (H, W, 3)  # bbox_inches="tight", pad_inches=0 keeps 448 x 224
    img = decode(render_model_image(epoch({d: np.full(EPOCH_SAMPLES, 500.0) for d in DERIVATIONS}), DERIVATIONS))
    # traces pushed out of the image: what remains is the grid on black
    assert np.abs(img - reference).max() <= 1


def test_grid_is_dimmer_than_full_404040_and_five_second_lines_stronger():
    img = decode(render_model_image(epoch(), DERIVATIONS))
    row = img[5]  # no trace, no separator
    grey = row[:, 0]
    assert (row[:, 0] == row[:, 1]).all() and (row[:, 1] == row[:, 2]).all()  # neutral grey only
    assert grey.max() < GRID[0]  # never a full-strength #404040 line
    peaks = {s: grey[round(s * W / 30) - 1: round(s * W / 30) + 2].max() for s in range(1, 30)}
    assert all(peaks[s] > 0 for s in peaks)
    assert min(peaks[s] for s in (5, 10, 15, 20, 25)) > max(peaks[s] for s in peaks if s % 5)
    assert max(peaks[s] for s in peaks if s % 5) <= 0.6 * GRID[0] + 1  # alpha 0.6
    lit_columns = np.flatnonzero(grey)
    assert {c for c in lit_columns} <= {c for s in range(1, 30) for c in range(round(s * W / 30) - 2, round(s * W / 30) + 2)}


def test_band_separators_lie_on_the_band_boundaries():
    rows = separator_rows()
    assert sorted({round(r / (H / 6)) for r in rows}) == [1, 2, 3, 4, 5]
    assert all(abs(r - round(r / (H / 6)) * H / 6) <= 1.5 for r in rows)
    img = decode(render_model_image(epoch(), DERIVATIONS))
    assert (img[rows][:, free_columns()] > 0).all() and (img[rows][:, free_columns()] <= 0.8 * GRID[0] + 1).all()


def test_grid_is_drawn_over_the_traces():
    dense = np.where(np.arange(EPOCH_SAMPLES) % 2, 30.0, -30.0)  # fills +-30 uV in every column
    img = decode(render_model_image(epoch({"F4-M1": dense}), DERIVATIONS))
    centre = int(uv_to_y(0, 0, "F4-M1", 6))
    five = round(5 * W / 30)
    assert (img[centre, free_columns()] == rgb(DERIVATION_COLOURS["F4-M1"])).all()  # pure yellow off the grid
    crossing = img[centre, five - 1: five + 2]
    assert crossing[:, 0].min() < 255 and (crossing[:, 2] > 0).any()  # yellow mixed with the grey line on top


@pytest.mark.parametrize("n_bands", [6, 4])
def test_the_grid_composited_where_it_shows_is_the_whole_layer_composited(n_bands):
    """canvas * keep + paint over the whole image, byte for byte, though computed only where the grid shows."""
    derivations = DERIVATIONS[:n_bands]
    rng = np.random.default_rng(n_bands)
    for scale in (5.0, 40.0, 300.0):
        signals = rng.standard_normal((n_bands, EPOCH_SAMPLES)) * scale
        canvas = np.zeros((H, W, 3), np.uint8)
        rendering._draw_traces(canvas, (0, 0), (H, W), signals, derivations, rendering.MODEL_PEN_PX,
                               rendering.MODEL_SUBCOLUMNS)
        keep, paint = grid_layer(n_bands)
        whole = (canvas * keep + paint + 0.5).astype(np.uint8)
        assert (decode(render_model_image(signals, derivations)) == whole).all()


def test_traces_match_the_authors_matplotlib_drawing_on_dense_signals():
    """Trace width, coverage and antialiasing against the authors' drawing (bench/render.py's restatement)."""
    from skimage.metrics import structural_similarity

    from bench.render import authors_draw, raw_night
    from datasets.services.signals import prepare

    raw = raw_night(8, seed=5)
    prepared = np.stack([prepare(raw[i], 256.0, d, 50.0)[0] for i, d in enumerate(DERIVATIONS)])
    whole, bands = [], {d: [] for d in DERIVATIONS}
    for e in range(8):
        epoch = prepared[:, e * EPOCH_SAMPLES: (e + 1) * EPOCH_SAMPLES]
        ours = np.asarray(Image.open(io.BytesIO(render_model_image(epoch, DERIVATIONS))).convert("RGB"))
        theirs = np.asarray(Image.open(io.BytesIO(authors_draw(epoch, DERIVATIONS))).convert("RGB"))
        assert ours.shape == theirs.shape == (H, W, 3)
        whole.append(structural_similarity(ours, theirs, channel_axis=-1, data_range=255))
        for i, d in enumerate(DERIVATIONS):
            rows = slice(round(i * H / 6), round((i + 1) * H / 6))
            bands[d].append(structural_similarity(ours[rows], theirs[rows], channel_axis=-1, data_range=255))
    assert np.mean(whole) >= 0.97 and min(whole) >= 0.95
    assert {d: round(float(np.mean(v)), 3) for d, v in bands.items() if np.mean(v) < 0.95} == {}


@pytest.mark.parametrize("band, derivation", list(enumerate(DERIVATIONS)))
def test_full_scale_sine_spans_exactly_one_band(band, derivation):
    peak_to_peak = 80 if derivation == "Chin EMG" else 100
    img = decode(render_model_image(epoch({derivation: sine(peak_to_peak)}), DERIVATIONS))
    rows = lit_rows(img, derivation, QUARTER)
    top, bottom = band * H / 6, (band + 1) * H / 6
    assert abs(rows.min() - top) <= 1
    assert abs(rows.max() + 1 - bottom) <= 1


def test_smaller_chin_range_makes_the_same_voltage_taller():
    signals = epoch({"C4-M1": sine(80), "Chin EMG": sine(80)})
    img = decode(render_model_image(signals, DERIVATIONS))
    eeg = lit_rows(img, "C4-M1", QUARTER)
    chin = lit_rows(img, "Chin EMG", QUARTER)
    assert eeg.max() - eeg.min() == pytest.approx(0.8 * H / 6, abs=1.5)
    assert chin.max() - chin.min() == pytest.approx(H / 6, abs=1.5)


def test_large_slow_wave_spills_into_neighbouring_bands():
    img = decode(render_model_image(epoch({"C4-M1": sine(300, hz=0.8)}), DERIVATIONS))
    rows = lit_rows(img, "C4-M1", QUARTER)
    h = H / 6
    assert rows.min() == 0  # 56 px above the band centre: through band 1 to the image edge
    assert abs(rows.max() + 1 - uv_to_y(-150, 1, "C4-M1", 6)) <= 1  # 112: bottom of band 2
    assert rows.min() < h - h / 2 and rows.max() > 2 * h + h / 2


def test_trace_colours_match_the_spec():
    dense = np.where(np.arange(EPOCH_SAMPLES) % 2, 30.0, -30.0)  # fills +-30 uV in every column
    signals = epoch({d: dense for d in DERIVATIONS})
    img = decode(render_model_image(signals, DERIVATIONS))
    cols = free_columns()
    for i, d in enumerate(DERIVATIONS):
        centre = int(uv_to_y(0, i, d, 6))
        assert (img[centre, cols] == rgb(DERIVATION_COLOURS[d])).all(), d


def test_later_bands_are_drawn_over_earlier_ones():
    dense = np.where(np.arange(EPOCH_SAMPLES) % 2, 1.0, -1.0)
    signals = epoch({"F4-M1": 150 * dense, "C4-M1": 30 * dense})  # F4-M1 spills over the C4-M1 band
    img = decode(render_model_image(signals, DERIVATIONS))
    centre = int(uv_to_y(0, 1, "C4-M1", 6))
    assert (img[centre, free_columns()] == rgb(DERIVATION_COLOURS["C4-M1"])).all()
    assert (img[int(uv_to_y(35, 1, "C4-M1", 6)) - 2, free_columns()] == rgb(DERIVATION_COLOURS["F4-M1"])).all()


def test_flat_zero_signal_lights_only_the_centre_line_of_its_band():
    img = decode(render_model_image(epoch(), DERIVATIONS))
    for i, d in enumerate(DERIVATIONS):
        centre = uv_to_y(0, i, d, 6)
        rows = lit_rows(img, d)
        assert set(rows) <= {int(centre) - 1, int(centre), int(centre) + 1}, d
        assert int(centre) in rows
        assert lit(img[int(centre)], d).all()  # across the whole width


def test_missing_derivation_gives_n_equal_bands():
    five = tuple(d for d in DERIVATIONS if d != "LOC")
    assert sorted({round(r / (H / 5)) for r in separator_rows(5)}) == [1, 2, 3, 4]  # at i * 224 / 5
    flat = decode(render_model_image(epoch(derivations=five), five))
    for row in separator_rows(5):
        assert (flat[row, free_columns(5)] > 0).all()
    for i, d in enumerate(five):
        assert int(uv_to_y(0, i, d, 5)) in lit_rows(flat, d)  # centre of band i of 5 (44.8 px each)
    img = decode(render_model_image(epoch({"ROC": sine(100)}, five), five))
    rows = lit_rows(img, "ROC", QUARTER)
    assert abs(rows.min() - 3 * H / 5) <= 1 and abs(rows.max() + 1 - 4 * H / 5) <= 1
    assert not lit(img, "LOC").any()


def test_model_image_is_deterministic():
    rng = np.random.default_rng(7)
    signals = rng.normal(scale=30, size=(6, EPOCH_SAMPLES))
    first = render_model_image(signals, DERIVATIONS)
    assert render_model_image(signals.copy(), DERIVATIONS) == first
    single = signals.astype(np.float32)
    assert render_model_image(single, DERIVATIONS) == render_model_image(single.astype(np.float64), DERIVATIONS)
    assert render_model_image(signals + 5, DERIVATIONS) != first


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        render_model_image(np.zeros((5, EPOCH_SAMPLES)), DERIVATIONS)
    with pytest.raises(ValueError):
        render_model_image(np.zeros((6, 2999)), DERIVATIONS)
    with pytest.raises(ValueError):
        render_model_image(np.zeros((1, EPOCH_SAMPLES)), ["Fpz-Cz"])
    signals = epoch()
    signals[0, 10] = np.nan
    with pytest.raises(ValueError):
        render_model_image(signals, DERIVATIONS)


def test_png_encoder_round_trips_small_and_threaded_images():
    rng = np.random.default_rng(3)
    for shape in [(224, 448, 3), (692, 900, 3), (3, 5, 3)]:  # 692 x 900 x 3 > 1 MiB: two threads
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        png = rendering._png(pixels)
        assert (decode(png) == pixels).all()
        length = struct.unpack(">I", png[33:37])[0]
        assert png[37:41] == b"IDAT"
        assert len(zlib.decompress(png[41 : 41 + length])) == shape[0] * (shape[1] * 3 + 1)  # Adler-32 checked


# --- viewer image --------------------------------------------------------------------------------


def viewer(n=1, **kwargs):
    return decode(render_viewer_image([epoch()] * n, DERIVATIONS, **kwargs))


def panel_x(e):
    return rendering.VIEW_LEFT + e * (rendering.VIEW_PANEL_WIDTH + rendering.VIEW_GAP)


def test_viewer_is_larger_and_three_epochs_are_about_three_times_wider():
    one, three = viewer(1), viewer(3)
    assert one.shape[0] > 2 * H and one.shape[1] > 1.5 * W
    assert 850 <= one.shape[1] <= 1000
    assert one.shape[0] == three.shape[0]
    assert 2.6 < three.shape[1] / one.shape[1] < 3.1
    top, bottom = rendering.VIEW_TOP, rendering.VIEW_TOP + rendering.VIEW_PLOT_HEIGHT
    for e in range(3):  # the gap right of each plot (and the right margin) is plain chrome
        gap = three[top:bottom, panel_x(e) + rendering.VIEW_PANEL_WIDTH : panel_x(e + 1) if e < 2 else None]
        assert gap.size and (gap == rendering.VIEW_CHROME).all()


def test_viewer_has_channel_labels_on_the_left():
    top, height = rendering.VIEW_TOP, rendering.VIEW_PLOT_HEIGHT
    labels = viewer(1)[top : top + height, : rendering.VIEW_LEFT]
    assert (labels != rendering.VIEW_CHROME).any(axis=-1).sum() > 500
    five = tuple(d for d in DERIVATIONS if d != "LOC")
    other = decode(render_viewer_image([epoch(derivations=five)], five))[top : top + height, : rendering.VIEW_LEFT]
    assert (labels != other).any()


def test_viewer_uses_the_model_scales():
    x0, top = panel_x(0), rendering.VIEW_TOP
    img = decode(render_viewer_image([epoch({"C4-M1": sine(100)})], DERIVATIONS, guides=False))
    plot = img[top : top + rendering.VIEW_PLOT_HEIGHT, x0 : x0 + 590]  # left of the mid-epoch marker
    rows = lit_rows(plot, "C4-M1", QUARTER)
    band = rendering.VIEW_PLOT_HEIGHT / 6
    assert abs(rows.min() - band) <= 1 and abs(rows.max() + 1 - 2 * band) <= 1


def test_viewer_guides_toggle_draws_the_375_uv_lines_on_eeg_bands_only():
    with_guides, without = viewer(1, guides=True), viewer(1, guides=False)
    top, height = rendering.VIEW_TOP, rendering.VIEW_PLOT_HEIGHT
    changed = np.flatnonzero((with_guides != without).any(axis=-1)[top : top + height].any(axis=1))
    eeg = [(i, d) for i, d in enumerate(DERIVATIONS) if d in EEG_DERIVATIONS]
    expected = sorted(int(uv_to_y(uv, i, d, 6, height)) for i, d in eeg for uv in (37.5, -37.5))
    assert changed.tolist() == expected
    assert len(expected) == 6


def test_viewer_marks_mid_epoch_and_highlights_the_current_epoch():
    img = viewer(3, current=1, titles=["Epoch 40 · preceding", "Epoch 41 · current", "Epoch 42 · subsequent"])
    top = rendering.VIEW_TOP
    for e in range(3):
        mid = panel_x(e) + rendering.VIEW_PANEL_WIDTH // 2
        assert (img[top + 2 : top + 20, mid] == rendering.VIEW_MARKER).any()
        background = tuple(img[top + 5, panel_x(e) + 7])
        assert background == (rendering.VIEW_CURRENT_TINT if e == 1 else (0, 0, 0))
        frame = tuple(img[top - 1, panel_x(e) + 100])
        assert (frame == rendering.VIEW_ACCENT) == (e == 1)


def test_viewer_titles_and_seconds_axis_change_only_their_strips():
    plain = viewer(3)
    titled = viewer(3, titles=["a", "b", "c"])
    later = viewer(3, start_seconds=1230)
    top, bottom = rendering.VIEW_TOP, rendering.VIEW_TOP + rendering.VIEW_PLOT_HEIGHT
    assert (plain[:top] != titled[:top]).any() and (plain[top:] == titled[top:]).all()
    assert (plain[bottom:] != later[bottom:]).any() and (plain[:bottom] == later[:bottom]).all()


def test_viewer_is_deterministic_and_refuses_bad_arguments():
    rng = np.random.default_rng(11)
    epochs = [rng.normal(scale=25, size=(6, EPOCH_SAMPLES)) for _ in range(3)]
    kwargs = dict(titles=["p", "c", "s"], current=1, start_seconds=1200)
    first = render_viewer_image(epochs, DERIVATIONS, **kwargs)
    assert render_viewer_image([e.copy() for e in epochs], DERIVATIONS, **kwargs) == first
    assert render_viewer_image(epochs, DERIVATIONS, **{**kwargs, "current": 0}) != first
    with pytest.raises(ValueError):
        render_viewer_image([], DERIVATIONS)
    with pytest.raises(ValueError):
        render_viewer_image(epochs, DERIVATIONS, titles=["only one"])
    with pytest.raises(ValueError):
        render_viewer_image(epochs, DERIVATIONS, current=3)


def test_threaded_rendering_gives_each_epoch_its_own_image_in_order():
    rng = np.random.default_rng(2)
    epochs = [rng.normal(scale=30, size=(6, EPOCH_SAMPLES)) for _ in range(12)]
    assert list(rendering.render_model_images(epochs, DERIVATIONS)) == [render_model_image(e, DERIVATIONS) for e in epochs]
