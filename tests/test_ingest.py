"""PSG import end to end: epochs, images, idempotency, atomicity and clear errors for bad input."""
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from datasets.constants import DERIVATIONS, EPOCH_SAMPLES
from datasets.exceptions import InputError
from datasets.models import Epoch, EpochImage, ImportJob, Recording
from datasets.services import ingest, storage
from datasets.services.ingest import ImportRequest, import_psg
from datasets.services.synthetic import synthesize_night
from tests.factories import assign_rater
from core.roles import RATER
from core.services.sweeps import sweep_storage
from tests.conftest import stored_files
from tests.edf_factory import noise_channels, stage_annotations, write_bdf, write_edf

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


def run_import(path, **options):
    return import_psg(ImportRequest(path=Path(path), cohort=options.pop("cohort", "test"), **options))


def test_synthetic_night_imports_with_its_hypnogram(night_edf, media_root):
    recording, created = run_import(night_edf)
    assert created
    assert recording.file_format == "EDF+"
    assert recording.derivations == list(DERIVATIONS)
    assert recording.substitutions == []
    assert recording.epoch_count == 120 == recording.epochs.count()
    expected = synthesize_night(hours=1.0, seed=7).stages
    assert list(recording.epochs.values_list("stage", flat=True)) == expected
    assert recording.hypnogram_format == "edf-annotations"
    # one model image per epoch, stored under its content hash
    images = EpochImage.objects.filter(epoch__recording=recording, kind=EpochImage.MODEL)
    assert images.count() == 120
    image = images.first()
    assert image.storage_name.endswith(f"{image.sha256}.png")
    assert (media_root / image.storage_name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    signals = storage.load_array(recording.signal_file)
    assert signals.shape == (6, 120 * EPOCH_SAMPLES)
    assert signals.dtype == np.float32


def test_same_file_twice_creates_nothing_new(night_edf, media_root):
    first, created = run_import(night_edf)
    files = stored_files(media_root)
    copy = media_root.parent / "renamed-copy.edf"
    shutil.copy(night_edf, copy)
    second, created_again = run_import(copy)
    assert created and not created_again
    assert second.pk == first.pk
    assert Recording.objects.count() == 1 and Epoch.objects.count() == 120
    assert stored_files(media_root) == files


def test_rendering_is_deterministic_across_imports(night_edf, media_root):
    recording, _ = run_import(night_edf)
    shas = list(EpochImage.objects.filter(epoch__recording=recording).order_by("epoch__index").values_list("sha256", flat=True))
    recording.delete()
    again, created = run_import(night_edf)
    assert created
    assert list(EpochImage.objects.filter(epoch__recording=again).order_by("epoch__index").values_list("sha256", flat=True)) == shas


def test_failure_while_rendering_leaves_no_rows_and_no_files(night_edf, media_root, monkeypatch):
    from datasets.services import rendering

    real = rendering.render_model_image
    calls, lock = {"n": 0}, threading.Lock()

    def flaky(signals, derivations):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 50:
            raise RuntimeError("disk full")
        return real(signals, derivations)

    monkeypatch.setattr(rendering, "render_model_image", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        run_import(night_edf)
    assert calls["n"] >= 50
    assert Recording.objects.count() == 0 and Epoch.objects.count() == 0 and EpochImage.objects.count() == 0
    # Files written before the failure stay until the sweep: content-addressed, another import may use them.
    assert stored_files(media_root)
    sweep_storage(grace_s=0)
    assert stored_files(media_root) == []


def test_failed_job_keeps_its_error_and_no_recording(tmp_path, media_root):
    bad = tmp_path / "notes.edf"
    bad.write_text("these are not signals\n" * 20)
    from datasets.services.imports import create_job, run_job

    job = run_job(create_job(source_path=str(bad), source_name=bad.name, cohort="c").pk)
    assert job.state == ImportJob.FAILED
    assert "not an EDF or BDF file" in job.error
    assert Recording.objects.count() == 0
    assert stored_files(media_root) == []


def test_sleep_edf_montage_records_substitutions(tmp_path):
    stages = ["W", "N1", "N2", "N2", "N3", "R"]
    channels = noise_channels(["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "EMG submental"], 180, 100.0)
    path = write_edf(tmp_path / "SC4001E0-PSG.edf", channels, 100.0, stage_annotations(stages))
    recording, _ = run_import(path)
    assert recording.channel_plan["F4-M1"]["positive"] == "EEG Fpz-Cz"
    assert recording.channel_plan["F4-M1"]["kind"] == "substituted"
    assert any("Fpz-Cz" in note for note in recording.substitutions)
    assert "C4-M1" not in recording.derivations
    assert list(recording.epochs.values_list("stage", flat=True)) == stages


def test_derivations_computed_from_referential_channels(tmp_path):
    n = 90 * 256
    t = np.arange(n) / 256
    f4 = 30 * np.sin(2 * np.pi * 10 * t)
    m1 = 10 * np.sin(2 * np.pi * 3 * t)
    channels = {"F4": f4 + m1, "C4": f4 + m1, "O2": f4 + m1, "M1": m1, "M2": m1, "E1": f4, "E2": -f4, "Chin1": f4, "Chin2": m1}
    path = write_edf(tmp_path / "referential.edf", channels, 256.0)
    recording, _ = run_import(path)
    assert recording.channel_plan["F4-M1"] == {"positive": "F4", "negative": "M1", "kind": "computed",
                                               "note": recording.channel_plan["F4-M1"]["note"]}
    assert recording.channel_plan["Chin EMG"]["negative"] == "Chin2"
    signals = storage.load_array(recording.signal_file)
    frontal = signals[0, 1000:8000]
    # F4 - M1 leaves the 10 Hz wave (30 µV amplitude) without the 3 Hz reference wave
    spectrum = np.abs(np.fft.rfft(frontal))
    freqs = np.fft.rfftfreq(frontal.size, 1 / 100)
    assert spectrum[np.argmin(abs(freqs - 10))] > 20 * spectrum[np.argmin(abs(freqs - 3))]
    assert 25 < np.percentile(np.abs(frontal), 99.5) < 33


def test_mains_notch_and_band_pass(tmp_path):
    n = 120 * 256
    t = np.arange(n) / 256
    alpha = 20 * np.sin(2 * np.pi * 10 * t)
    mains = 40 * np.sin(2 * np.pi * 50 * t)
    drift = 200 * np.sin(2 * np.pi * 0.02 * t)
    channels = {"F4-M1": alpha + mains + drift, "C4-M1": alpha, "O2-M1": alpha}
    recording, _ = run_import(write_edf(tmp_path / "mains.edf", channels, 256.0), mains_hz=50.0)
    frontal = storage.load_array(recording.signal_file)[0, 2000:10000]
    assert abs(frontal.std() - alpha.std()) < 0.1 * alpha.std()


def test_explicit_channel_map_overrides_aliases(tmp_path):
    channels = noise_channels(["EEG F4-CLE", "EEG C4-CLE", "EEG O2-CLE", "Fp2"], 90, 256.0)
    path = write_edf(tmp_path / "mapped.edf", channels, 256.0)
    recording, _ = run_import(path, channel_map={"F4-M1": "Fp2"})
    assert recording.channel_plan["F4-M1"]["positive"] == "Fp2"
    assert recording.channel_plan["F4-M1"]["kind"] == "explicit"
    assert recording.channel_plan["C4-M1"]["positive"] == "EEG C4-CLE"


def test_separate_csv_hypnogram_is_aligned(tmp_path):
    path = write_edf(tmp_path / "night.edf", noise_channels(["F4-M1", "C4-M1"], 150, 128.0), 128.0)
    hypnogram = tmp_path / "night.csv"
    hypnogram.write_text("onset,duration,stage\n30,60,N2\n90,30,R\n120,30,W\n")
    recording, _ = run_import(path, hypnogram=hypnogram)
    assert recording.epoch_offset_s == 30
    assert list(recording.epochs.values_list("onset_s", "stage")) == [(30, "N2"), (60, "N2"), (90, "R"), (120, "W")]


# --- bad input: clear messages, a non-zero exit, nothing written ------------------------------


def header_patched(source: Path, target: Path, offset: int, value: str) -> Path:
    data = bytearray(source.read_bytes())
    data[offset : offset + len(value)] = value.encode()
    target.write_bytes(bytes(data))
    return target


def bad_inputs(tmp_path: Path, night_edf: Path) -> dict[str, tuple[list[str], str]]:
    not_edf = tmp_path / "report.edf"
    not_edf.write_text("Patient report\n" * 40)
    short_header = tmp_path / "short.edf"
    short_header.write_bytes(night_edf.read_bytes()[:300])
    truncated = tmp_path / "truncated.edf"
    truncated.write_bytes(night_edf.read_bytes()[: night_edf.stat().st_size // 2])
    absurd = header_patched(night_edf, tmp_path / "absurd.edf", 244, "0       ")
    no_eeg = write_edf(tmp_path / "no-eeg.edf", noise_channels(["Pleth", "Thor", "SaO2"], 60, 128.0), 128.0)
    slow = write_edf(tmp_path / "slow.edf", noise_channels(["C4-M1", "F4-M1"], 120, 50.0), 50.0)
    short = write_edf(tmp_path / "short-hyp.edf", noise_channels(["C4-M1"], 600, 128.0), 128.0,
                      stage_annotations(["W", "N1", "N2"]))
    ok = write_edf(tmp_path / "ok.edf", noise_channels(["C4-M1"], 90, 128.0), 128.0)
    long = tmp_path / "long.csv"
    long.write_text("onset,duration,stage\n0,60,W\n60,90,N2\n")
    unknown = tmp_path / "stages.csv"
    unknown.write_text("onset,duration,stage\n0,30,W\n30,30,N2\n60,30,Stage X\n")
    return {
        "not an EDF": ([str(not_edf)], "report.edf: not an EDF or BDF file"),
        "truncated header": ([str(short_header)], "short.edf: truncated header"),
        "truncated data": ([str(truncated)], "truncated.edf: truncated data: the header promises"),
        "absurd header": ([str(absurd)], "absurd.edf: absurd header: data record duration 0"),
        "no EEG": ([str(no_eeg)], "no usable EEG channel; channels found: Pleth, Thor, SaO2"),
        "rate too low": ([str(slow)], "sampled at 50 Hz, too low for the 0.3–35 Hz band"),
        "hypnogram shorter": ([str(short)], "the hypnogram is 510 s shorter than the signal"),
        "hypnogram longer": ([str(ok), "--hypnogram", str(long)], "long.csv: the hypnogram is 60 s longer than the signal"),
        "unknown stage": ([str(ok), "--hypnogram", str(unknown)], "stages.csv: line 4"),
    }


@pytest.mark.parametrize(
    "case",
    ["not an EDF", "truncated header", "truncated data", "absurd header", "no EEG", "rate too low",
     "hypnogram shorter", "hypnogram longer", "unknown stage"],
)
def test_bad_input_is_refused_with_a_clear_message(case, tmp_path, night_edf, media_root):
    args, expected = bad_inputs(tmp_path, night_edf)[case]
    with pytest.raises(CommandError) as error:
        call_command("import_psg", *args, verbosity=0)
    assert expected in str(error.value)
    assert Recording.objects.count() == 0 and Epoch.objects.count() == 0 and EpochImage.objects.count() == 0
    assert stored_files(media_root) == []


def test_trim_option_accepts_a_shorter_hypnogram_and_records_it(tmp_path):
    path = write_edf(tmp_path / "long-signal.edf", noise_channels(["C4-M1"], 600, 128.0), 128.0, stage_annotations(["W", "N1", "N2"]))
    recording, _ = run_import(path, trim_to_hypnogram=True)
    assert recording.epoch_count == 3
    assert any("trimmed to the hypnogram: 510 s" in note for note in recording.processing_notes)


def test_unknown_stage_label_in_psg_annotations_names_it(tmp_path):
    path = write_edf(tmp_path / "odd.edf", noise_channels(["C4-M1"], 90, 128.0), 128.0,
                     [(0, 30, "Sleep stage W"), (30, 30, "Sleep stage X"), (60, 30, "Sleep stage 2")])
    with pytest.raises(InputError, match="Sleep stage X"):
        run_import(path)


def test_cli_exits_non_zero_without_traceback(tmp_path):
    bad = tmp_path / "scan.edf"
    bad.write_bytes(b"%PDF-1.4 not a recording" * 20)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"SLEEPREVIEW_VAR": str(tmp_path / "var")}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    result = subprocess.run([sys.executable, "manage.py", "import_psg", str(bad)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "scan.edf: not an EDF or BDF file" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bdf_files_are_read_in_microvolts(tmp_path):
    n = 90 * 256
    t = np.arange(n) / 256
    alpha = 40 * np.sin(2 * np.pi * 10 * t)
    path = write_bdf(tmp_path / "night.bdf", {"C4-M1": alpha, "F4-M1": alpha, "EMG Chin": alpha}, 256)
    recording, _ = run_import(path)
    assert recording.file_format == "BDF"
    assert recording.epoch_count == 3
    central = storage.load_array(recording.signal_file)[1, 500:8000]
    assert 38 < np.abs(central).max() < 42  # 40 µV survives reading, filtering and resampling


def test_mass_ex_hypnogram_keeps_rules_and_rationale_when_stated_contiguous(tmp_path, role_client):
    path = write_edf(tmp_path / "01-03-0006 PSG.edf", noise_channels(["EEG C4-CLE", "EEG F4-CLE"], 90, 256.0), 256.0)
    annotations = tmp_path / "01-03-0006.csv"
    annotations.write_text(
        "custom_id,Subject,N,Stage,reasoning_text,applicable_rules\n"
        '01-03-0006#0_W,01-03-0006,0,W,"Alpha over O2-M1 for 20 s.","W.1, W.2"\n'
        "01-03-0006#1_N1,01-03-0006,1,N1,Theta replaces alpha.,N1.1\n"
        "01-03-0006#2_N2,01-03-0006,2,N2,Spindle at 4 s on C4-M1.,N2.1\n"
    )
    with pytest.raises(InputError, match=r"01-03-0006\.csv: a MASS-EX CSV numbers only the scored epochs.*"
                                         r"recording's own scored hypnogram, e\.g\. its MASS Base annotations"):
        run_import(path, hypnogram=annotations)
    assert Recording.objects.count() == 0
    recording, _ = run_import(path, hypnogram=annotations, massex_contiguous=True)
    rows = list(recording.epochs.values_list("stage", "massex_n", "reference_rules", "reference_rationale"))
    assert rows == [("W", 0, ["W.1", "W.2"], "Alpha over O2-M1 for 20 s."), ("N1", 1, ["N1.1"], "Theta replaces alpha."),
                    ("N2", 2, ["N2.1"], "Spindle at 4 s on C4-M1.")]
    assert recording.hypnogram_format == "mass-ex"
    assert recording.massex_contiguous


# --- MASS-EX CSV read onto a recording through its scored hypnogram (spec/mass-ex.md) ---------

# Unscored epochs before and between scored ones: MASS-EX N is the rank among the scored epochs.
MASS_STAGES = ["?", "?", "W", "N1", "?", "N2", "N2", "MT", "R", "W"]
SCORED_INDICES = [2, 3, 5, 6, 8, 9]  # epoch index of N = 0 .. 5
MASS_CHANNELS = ["EEG C4-CLE", "EEG F4-CLE"]


def massex_csv(path: Path, rows, subject="01-03-0006") -> Path:
    """rows: (N, Stage, rules, rationale) of a fine MASS-EX CSV."""
    lines = ["custom_id,Subject,N,Stage,reasoning_text,applicable_rules"]
    lines += [f'{subject}#{n}_{stage},{subject},{n},{stage},"{text}","{rules}"' for n, stage, rules, text in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def mass_rows():
    stages = [s for s in MASS_STAGES if s not in ("?", "MT")]
    return [(n, stage, f"{stage}.1", f"rationale of N={n}") for n, stage in enumerate(stages)]


def test_mass_ex_rows_land_on_their_scored_epochs(tmp_path):
    psg = write_edf(tmp_path / "01-03-0006 PSG.edf", noise_channels(MASS_CHANNELS, 300, 256.0), 256.0,
                    stage_annotations(MASS_STAGES))
    rows = [row for row in mass_rows() if row[0] != 3]  # a CSV may leave epochs out
    recording, _ = run_import(psg, massex=massex_csv(tmp_path / "01-03-0006.csv", rows))
    epochs = list(recording.epochs.values_list("index", "stage", "massex_n", "reference_rules", "reference_rationale"))
    assert [e[1] for e in epochs] == ["unscored", "unscored", "W", "N1", "unscored", "N2", "N2", "unscored", "R", "W"]
    assert [e[2] for e in epochs] == [None, None, 0, 1, None, 2, 3, None, 4, 5]
    with_rules = {index: (rules, text) for index, _, _, rules, text in epochs if rules}
    assert with_rules == {2: (["W.1"], "rationale of N=0"), 3: (["N1.1"], "rationale of N=1"),
                          5: (["N2.1"], "rationale of N=2"), 8: (["R.1"], "rationale of N=4"),
                          9: (["W.1"], "rationale of N=5")}
    assert recording.hypnogram_format == "edf-annotations" and not recording.massex_contiguous
    assert any("5 rows from" in note and "every Stage matched" in note for note in recording.hypnogram_notes)
    assert not any("subject" in note for note in recording.hypnogram_notes)


def test_mass_ex_with_a_separate_base_hypnogram_through_the_cli(tmp_path):
    psg = write_edf(tmp_path / "01-03-0006 PSG.edf", noise_channels(MASS_CHANNELS, 300, 256.0), 256.0)
    base = write_edf(tmp_path / "01-03-0006 Base.edf", noise_channels(["EEG C4-CLE"], 300, 256.0), 256.0,
                     stage_annotations(MASS_STAGES))
    csv = massex_csv(tmp_path / "01-03-0099.csv", mass_rows(), subject="01-03-0099")
    call_command("import_psg", str(psg), "--hypnogram", str(base), "--massex", str(csv), verbosity=0)
    recording = Recording.objects.get()
    assert list(recording.epochs.exclude(reference_rules=[]).values_list("index", flat=True)) == SCORED_INDICES
    assert list(recording.epochs.exclude(massex_n=None).values_list("index", "massex_n")) == list(
        zip(SCORED_INDICES, range(6)))
    assert any("names subject 01-03-0099" in note for note in recording.hypnogram_notes)


def test_mass_ex_shifted_by_one_epoch_is_refused_and_nothing_is_written(tmp_path, media_root):
    psg = write_edf(tmp_path / "01-03-0006 PSG.edf", noise_channels(MASS_CHANNELS, 300, 256.0), 256.0,
                    stage_annotations(MASS_STAGES))
    shifted = [(n + 1, stage, rules, text) for n, stage, rules, text in mass_rows()[:-1]]
    csv = massex_csv(tmp_path / "shifted.csv", shifted)
    with pytest.raises(CommandError) as error:
        call_command("import_psg", str(psg), "--massex", str(csv), verbosity=0)
    message = str(error.value)
    assert "shifted.csv: 4 of 5 rows disagree with the stage of their epoch" in message
    assert "line 2: N=1 Stage W, hypnogram N1 at epoch 3; line 3: N=2 Stage N1, hypnogram N2 at epoch 5; " \
           "line 5: N=4 Stage N2, hypnogram R at epoch 8" in message
    assert Recording.objects.count() == 0 and Epoch.objects.count() == 0 and EpochImage.objects.count() == 0
    assert stored_files(media_root) == []


def test_mass_ex_row_past_the_last_scored_epoch_is_refused(tmp_path):
    psg = write_edf(tmp_path / "01-03-0006 PSG.edf", noise_channels(MASS_CHANNELS, 300, 256.0), 256.0,
                    stage_annotations(MASS_STAGES))
    csv = massex_csv(tmp_path / "long.csv", mass_rows() + [(6, "W", "W.1", "one too many")])
    with pytest.raises(InputError, match=r"long\.csv: line 8: N=6, but the hypnogram .* has 6 scored epochs "
                                         r"within the signal \(N 0–5\); 1 row\(s\) have N past the last one"):
        run_import(psg, massex=csv)
    assert Recording.objects.count() == 0


def test_mass_ex_without_a_scored_hypnogram_needs_the_contiguous_flag(tmp_path, role_client):
    psg = write_edf(tmp_path / "01-03-0006 PSG.edf", noise_channels(MASS_CHANNELS, 120, 256.0), 256.0)
    csv = massex_csv(tmp_path / "01-03-0006.csv", [(0, "W", "W.1", "a"), (1, "N1", "N1.1", "b"), (3, "N2", "", "c")])
    with pytest.raises(CommandError, match=r"01-03-0006\.csv: a MASS-EX CSV numbers only the scored epochs .*"
                                           r"needs the recording's own scored hypnogram, e\.g\. its MASS Base annotations"
                                           r".*--massex-contiguous"):
        call_command("import_psg", str(psg), "--massex", str(csv), verbosity=0)
    assert Recording.objects.count() == 0
    call_command("import_psg", str(psg), "--massex", str(csv), "--massex-contiguous", verbosity=0)
    recording = Recording.objects.get()
    assert recording.massex_contiguous and recording.hypnogram_format == "mass-ex"
    assert list(recording.epochs.values_list("stage", "massex_n", "reference_rules")) == [
        ("W", 0, ["W.1"]), ("N1", 1, ["N1.1"]), ("unscored", None, []), ("N2", 3, [])]
    rater = role_client(RATER)
    assign_rater(recording, f"{RATER}-user")
    html = rater.get(reverse("datasets:recording", args=[recording.pk])).content.decode()
    assert 'id="massex-contiguous"' in html and "stated contiguous from the first epoch" in html


def test_contiguous_flag_with_a_scored_hypnogram_is_refused(tmp_path):
    psg = write_edf(tmp_path / "01-03-0006 PSG.edf", noise_channels(MASS_CHANNELS, 300, 256.0), 256.0,
                    stage_annotations(MASS_STAGES))
    csv = massex_csv(tmp_path / "01-03-0006.csv", mass_rows())
    with pytest.raises(InputError, match=r"--massex-contiguous .*01-03-0006 PSG\.edf is the recording's scored hypnogram"):
        run_import(psg, massex=csv, massex_contiguous=True)
    with pytest.raises(InputError, match=r"--massex-contiguous .*no MASS-EX CSV was given"):
        run_import(write_edf(tmp_path / "plain.edf", noise_channels(MASS_CHANNELS, 60, 256.0), 256.0),
                   massex_contiguous=True)
    assert Recording.objects.count() == 0


def test_the_sweep_removes_a_deleted_recordings_files(night_edf, media_root):
    recording, _ = run_import(night_edf)
    viewer_epoch = recording.epochs.get(index=3)
    from datasets.services.images import viewer_image

    viewer_image(viewer_epoch)
    files = stored_files(media_root)
    assert len(files) > 120
    assert sweep_storage(grace_s=0) == []  # everything is referenced
    recording.delete()
    assert sweep_storage(grace_s=3600) == []  # younger than the grace period: spared
    assert sorted(sweep_storage(grace_s=0)) == files
    assert stored_files(media_root) == []
