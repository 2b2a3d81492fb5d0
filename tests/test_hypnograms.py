"""Hypnogram readers: stage maps per format, interval expansion, grid checks, errors."""

import mne
import numpy as np
import pytest

from datasets.exceptions import InputError
from datasets.services.hypnograms import (
    FORMATS,
    RULE_IDS,
    Hypnogram,
    ScoredEpoch,
    MassExRow,
    hypnogram_from_annotations,
    read_hypnogram,
    read_mass_ex_rows,
)
from datasets.services.massex import apply_rows, ranks

U = "unscored"

# Expected maps written out from spec/stage-codes.md (not derived from the module's tables).
EDF_LABELS = [
    ("Sleep stage W", "W"),
    ("Sleep stage 1", "N1"),
    ("Sleep stage 2", "N2"),
    ("Sleep stage 3", "N3"),
    ("Sleep stage 4", "N3"),
    ("Sleep stage R", "R"),
    ("Sleep stage ?", U),
    ("Movement time", U),
]
NSRR_CONCEPTS = [
    ("Wake|0", "W"),
    ("Stage 1 sleep|1", "N1"),
    ("Stage 2 sleep|2", "N2"),
    ("Stage 3 sleep|3", "N3"),
    ("Stage 4 sleep|4", "N3"),
    ("REM sleep|5", "R"),
    ("Movement|6", U),
    ("Unscored|9", U),
]
TEXT_LABELS = [
    ("W", "W"), ("wake", "W"), ("0", "W"),
    ("N1", "N1"), ("1", "N1"),
    ("n2", "N2"), ("2", "N2"),
    ("N3", "N3"), ("3", "N3"),
    ("R", "R"), ("REM", "R"), ("4", "R"),
    ("-1", U), ("-2", U), ("Art", U), ("Uns", U), ("?", U),
]


def annotations(*rows):
    onsets, durations, labels = zip(*rows)
    return mne.Annotations(onsets, durations, labels)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def nsrr_xml(*events):
    body = "".join(
        f"<ScoredEvent><EventType>{etype}</EventType><EventConcept>{concept}</EventConcept>"
        f"<Start>{start}</Start><Duration>{duration}</Duration></ScoredEvent>\n"
        for etype, concept, start, duration in events
    )
    return f'<?xml version="1.0"?>\n<PSGAnnotation>\n<ScoredEvents>\n{body}</ScoredEvents>\n</PSGAnnotation>\n'


# --- EDF+ annotations -------------------------------------------------------------------------


def test_edf_stage_map_covers_every_sleep_edf_and_mass_label():
    rows = [(30.0 * i, 30.0, label) for i, (label, _) in enumerate(EDF_LABELS)]
    hyp = hypnogram_from_annotations(annotations(*rows), "night.edf")
    assert hyp.stages == [stage for _, stage in EDF_LABELS]
    assert hyp.format == "edf-annotations"
    assert hyp.source == "night.edf"


def test_edf_intervals_expand_to_30s_epochs_and_other_annotations_are_ignored():
    ann = annotations(
        (0.0, 90.0, "Sleep stage W"),
        (45.0, 0.0, "Lights off"),
        (90.0, 60.0, "Sleep stage 2"),
        (100.0, 5.0, "EEG arousal"),
    )
    hyp = hypnogram_from_annotations(ann, "psg.edf")
    assert [e.onset for e in hyp.epochs] == [0.0, 30.0, 60.0, 90.0, 120.0]
    assert hyp.stages == ["W", "W", "W", "N2", "N2"]
    assert (hyp.onset, hyp.end, len(hyp)) == (0.0, 150.0, 5)


def test_edf_gap_between_intervals_is_filled_with_unscored_and_noted():
    ann = annotations((300.0, 30.0, "Sleep stage W"), (390.0, 30.0, "Sleep stage R"))
    hyp = hypnogram_from_annotations(ann, "psg.edf")
    assert hyp.stages == ["W", U, U, "R"]
    assert [e.onset for e in hyp.epochs] == [300.0, 330.0, 360.0, 390.0]
    assert len(hyp.notes) == 1 and "330-390" in hyp.notes[0] and "2 unscored" in hyp.notes[0]


def test_edf_without_stage_annotations_gives_empty_hypnogram():
    hyp = hypnogram_from_annotations(annotations((10.0, 0.0, "Lights off")), "psg.edf")
    assert hyp.epochs == [] and hyp.stages == []


def test_edf_unknown_stage_like_label_names_source_label_and_onset():
    ann = annotations((0.0, 30.0, "Sleep stage W"), (30.0, 30.0, "Sleep stage X"))
    with pytest.raises(InputError) as info:
        hypnogram_from_annotations(ann, "SC4001E0-PSG.edf")
    message = str(info.value)
    assert "SC4001E0-PSG.edf" in message and "'Sleep stage X'" in message and "30 s" in message


def test_edf_20s_epochs_are_rejected():
    ann = annotations((0.0, 20.0, "Sleep stage W"), (20.0, 20.0, "Sleep stage 2"))
    with pytest.raises(InputError, match=r"mass-ss2\.edf: .*20-s epochs.*30-s epochs"):
        hypnogram_from_annotations(ann, "mass-ss2.edf")


def test_edf_onset_off_the_30s_grid_is_rejected():
    ann = annotations((0.0, 30.0, "Sleep stage W"), (45.0, 30.0, "Sleep stage 1"))
    with pytest.raises(InputError, match=r"psg\.edf: .*onset 45 s is not on the 30-s epoch grid"):
        hypnogram_from_annotations(ann, "psg.edf")


def test_edf_overlapping_intervals_are_rejected():
    ann = annotations((0.0, 90.0, "Sleep stage W"), (60.0, 30.0, "Sleep stage 1"))
    with pytest.raises(InputError, match=r"psg\.edf: .*60 s overlaps the previous one, which ends at 90 s"):
        hypnogram_from_annotations(ann, "psg.edf")


def test_edf_duration_not_multiple_of_30_is_rejected():
    ann = annotations((0.0, 45.0, "Sleep stage W"),)
    with pytest.raises(InputError, match=r"duration 45 s is not a positive multiple of 30 s"):
        hypnogram_from_annotations(ann, "psg.edf")


def test_separate_edf_hypnogram_file_round_trip(tmp_path):
    raw = mne.io.RawArray(np.zeros((1, 100 * 300)), mne.create_info(["EEG Fpz-Cz"], 100.0, "eeg"), verbose=False)
    raw.set_annotations(
        annotations(
            (0.0, 60.0, "Sleep stage W"),
            (60.0, 90.0, "Sleep stage 4"),
            (150.0, 30.0, "Sleep stage R"),
            (180.0, 30.0, "Movement time"),
        )
    )
    path = tmp_path / "SC4001EC-Hypnogram.edf"
    mne.export.export_raw(path, raw, fmt="edf", verbose=False)
    hyp = read_hypnogram(path)
    assert hyp.format == "edf-annotations"
    assert hyp.source == str(path)
    assert hyp.stages == ["W", "W", "N3", "N3", "N3", "R", U]
    assert [e.onset for e in hyp.epochs] == [0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0]


def test_edf_file_without_stages_is_an_error(tmp_path):
    raw = mne.io.RawArray(np.zeros((1, 100 * 60)), mne.create_info(["EEG"], 100.0, "eeg"), verbose=False)
    raw.set_annotations(annotations((5.0, 0.0, "Lights off")))
    path = tmp_path / "psg.edf"
    mne.export.export_raw(path, raw, fmt="edf", verbose=False)
    with pytest.raises(InputError, match=r"psg\.edf: no sleep stages found"):
        read_hypnogram(path)


def test_unreadable_edf_is_an_input_error(tmp_path):
    path = write(tmp_path, "broken.edf", "not an edf file at all")
    with pytest.raises(InputError, match=r"broken\.edf: not an EDF\+/BDF\+ file"):
        read_hypnogram(path)


# --- NSRR XML ---------------------------------------------------------------------------------


def test_nsrr_stage_map_covers_every_concept(tmp_path):
    events = [("Stages|Stages", concept, 30.0 * i, 30.0) for i, (concept, _) in enumerate(NSRR_CONCEPTS)]
    events.append(("Arousals|Arousals", "Arousal|Arousal ()", 45.0, 5.0))
    path = write(tmp_path, "shhs1-200001-nsrr.xml", nsrr_xml(*events))
    hyp = read_hypnogram(path)
    assert hyp.format == "nsrr-xml"
    assert hyp.stages == [stage for _, stage in NSRR_CONCEPTS]


def test_nsrr_intervals_expand(tmp_path):
    path = write(
        tmp_path,
        "night.xml",
        nsrr_xml(("Stages|Stages", "Wake|0", "0.0", "60.0"), ("Stages|Stages", "Stage 2 sleep|2", "60.0", "90.0")),
    )
    hyp = read_hypnogram(path, "nsrr-xml", onset=30.0)
    assert hyp.stages == ["W", "W", "N2", "N2", "N2"]
    assert hyp.onset == 30.0 and hyp.end == 180.0


def test_nsrr_malformed_xml_names_the_line(tmp_path):
    text = '<?xml version="1.0"?>\n<PSGAnnotation>\n<ScoredEvents>\n<ScoredEvent></Scored>\n</PSGAnnotation>\n'
    path = write(tmp_path, "bad.xml", text)
    with pytest.raises(InputError, match=r"bad\.xml: line 4, column \d+: malformed XML"):
        read_hypnogram(path)


def test_nsrr_unknown_concept_names_the_line(tmp_path):
    text = nsrr_xml(("Stages|Stages", "Wake|0", 0, 30), ("Stages|Stages", "Stage 7 sleep|7", 30, 30))
    path = write(tmp_path, "night.xml", text)
    with pytest.raises(InputError, match=r"night\.xml: line 5: unknown stage EventConcept 'Stage 7 sleep\|7'"):
        read_hypnogram(path)


def test_nsrr_bad_start_names_the_line(tmp_path):
    path = write(tmp_path, "night.xml", nsrr_xml(("Stages|Stages", "Wake|0", "soon", 30)))
    with pytest.raises(InputError, match=r"night\.xml: line 4: Start must be a number"):
        read_hypnogram(path)


# --- CSV / TSV --------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", "\t", ";"])
def test_csv_stage_map_and_sniffed_delimiter(tmp_path, delimiter):
    rows = [delimiter.join(["Onset", "Duration", "Stage"])]
    rows += [delimiter.join([str(30 * i), "30", label]) for i, (label, _) in enumerate(TEXT_LABELS)]
    path = write(tmp_path, "hyp.csv", "\n".join(rows) + "\n")
    hyp = read_hypnogram(path)
    assert hyp.format == "csv"
    assert hyp.stages == [stage for _, stage in TEXT_LABELS]


def test_csv_rows_are_sorted_expanded_and_gaps_filled(tmp_path):
    path = write(tmp_path, "hyp.tsv", "stage\tonset\tduration\nN2\t120\t60\nW\t0\t60\n")
    hyp = read_hypnogram(path)
    assert hyp.stages == ["W", "W", U, U, "N2", "N2"]
    assert hyp.notes and "60-120" in hyp.notes[0]


def test_csv_unknown_label_names_file_and_line(tmp_path):
    path = write(tmp_path, "hyp.csv", "onset,duration,stage\n0,30,W\n30,30,S5\n")
    with pytest.raises(InputError, match=r"hyp\.csv: line 3: unknown stage 'S5'"):
        read_hypnogram(path)


def test_csv_malformed_header_is_rejected(tmp_path):
    path = write(tmp_path, "hyp.csv", "start,length,stage\n0,30,W\n")
    with pytest.raises(InputError, match=r"hyp\.csv: line 1: header must name the columns onset, duration and stage"):
        read_hypnogram(path, "csv")


def test_csv_bad_number_names_line(tmp_path):
    path = write(tmp_path, "hyp.csv", "onset,duration,stage\n0,30,W\nabc,30,N1\n")
    with pytest.raises(InputError, match=r"hyp\.csv: line 3: onset must be a number"):
        read_hypnogram(path)


def test_csv_overlap_is_rejected(tmp_path):
    path = write(tmp_path, "hyp.csv", "onset,duration,stage\n0,60,W\n30,30,N1\n")
    with pytest.raises(InputError, match=r"hyp\.csv: line 3: .*overlaps"):
        read_hypnogram(path)


# --- one stage per line -----------------------------------------------------------------------


def test_per_line_stage_map_yasa_integers_and_labels(tmp_path):
    text = "\n".join(label for label, _ in TEXT_LABELS) + "\n\n\n"
    path = write(tmp_path, "hypno.txt", text)
    hyp = read_hypnogram(path)
    assert hyp.format == "per-line"
    assert hyp.stages == [stage for _, stage in TEXT_LABELS]
    assert [e.onset for e in hyp.epochs[:3]] == [0.0, 30.0, 60.0]


def test_per_line_numpy_savetxt_floats_and_onset(tmp_path):
    path = tmp_path / "hypno.txt"
    np.savetxt(path, np.array([0, 2, 4, -1]))
    hyp = read_hypnogram(path, onset=60.0)
    assert hyp.stages == ["W", "N2", "R", U]
    assert [e.onset for e in hyp.epochs] == [60.0, 90.0, 120.0, 150.0]


def test_per_line_unknown_label_names_file_and_line(tmp_path):
    path = write(tmp_path, "hypno.txt", "W\nN1\nN5\n")
    with pytest.raises(InputError, match=r"hypno\.txt: line 3: unknown stage 'N5'"):
        read_hypnogram(path, "per-line")


def test_per_line_blank_line_inside_is_rejected(tmp_path):
    path = write(tmp_path, "hypno.txt", "W\n\nN1\n")
    with pytest.raises(InputError, match=r"hypno\.txt: line 2: blank line"):
        read_hypnogram(path, "per-line")


# --- MASS-EX ----------------------------------------------------------------------------------

FINE_HEADER = "custom_id,Subject,N,Stage,reasoning_text,applicable_rules\n"
COARSE_HEADER = "custom_id,Subject,N,Stage,applicable_rules\n"


def test_mass_ex_fine_rows(tmp_path):
    text = FINE_HEADER + (
        '01-03-0006#0_W,01-03-0006,0,W,"Alpha, blinks.","W.1, W.2"\n'
        '01-03-0006#1_N1,01-03-0006,1,N1,"LAMF\nreplaces alpha.",N1.1\n'
        "01-03-0006#2_N2,01-03-0006,2,N2,Spindle.,N2.1\n"
        "01-03-0006#3_N3,01-03-0006,3,N3,Slow waves.,N3.1\n"
        "01-03-0006#4_R,01-03-0006,4,R,REMs.,\n"
    )
    hyp = read_hypnogram(write(tmp_path, "01-03-0006.csv", text), onset=30.0)
    assert hyp.format == "mass-ex"
    assert hyp.stages == ["W", "N1", "N2", "N3", "R"]
    assert [e.onset for e in hyp.epochs] == [30.0, 60.0, 90.0, 120.0, 150.0]
    assert hyp.epochs[0] == ScoredEpoch(30.0, "W", ("W.1", "W.2"), "Alpha, blinks.")
    assert hyp.epochs[1].rationale == "LAMF\nreplaces alpha."
    assert hyp.epochs[4].rule_ids == ()


def test_mass_ex_coarse_rows_and_gap(tmp_path):
    text = COARSE_HEADER + "s#0_W,s,0,W,W.1\ns#3_R,s,3,R,\"R.1, R.2\"\n"
    hyp = read_hypnogram(write(tmp_path, "s.csv", text))
    assert hyp.stages == ["W", U, U, "R"]
    assert hyp.epochs[3].rule_ids == ("R.1", "R.2") and hyp.epochs[3].rationale == ""
    assert "2 unscored" in hyp.notes[0]


def test_mass_ex_unknown_rule_id_names_file_line_and_id(tmp_path):
    text = FINE_HEADER + 's#0_W,s,0,W,"a\nb",W.1\ns#1_N2,s,1,N2,x,"N2.1, N2.9"\n'
    with pytest.raises(InputError, match=r"s\.csv: line 4: unknown rule id 'N2\.9'"):
        read_hypnogram(write(tmp_path, "s.csv", text))


@pytest.mark.parametrize(
    ("second_n", "problem"),
    [
        ("1", "epoch N=1 duplicates N=1"),
        ("0", "epoch N=0 comes before N=1"),
        ("-1", "N must be a non-negative integer"),
        ("x", "N must be a non-negative integer"),
    ],
)
def test_mass_ex_n_must_be_sorted_integers_without_duplicates(tmp_path, second_n, problem):
    text = COARSE_HEADER + f"s#1_W,s,1,W,\ns#{second_n}_W,s,{second_n},W,\n"
    with pytest.raises(InputError, match=rf"s\.csv: line 3: {problem}"):
        read_hypnogram(write(tmp_path, "s.csv", text), "mass-ex")


def test_mass_ex_unscored_stage_is_not_a_mass_ex_label(tmp_path):
    text = COARSE_HEADER + "s#0_W,s,0,W,\ns#1_?,s,1,?,\n"
    with pytest.raises(InputError, match=r"s\.csv: line 3: unknown stage '\?'"):
        read_hypnogram(write(tmp_path, "s.csv", text))


def test_mass_ex_header_lacking_columns(tmp_path):
    text = "custom_id,Subject,N,Stage\ns#0_W,s,0,W\n"
    with pytest.raises(InputError, match=r"s\.csv: line 1: MASS-EX header lacks applicable_rules"):
        read_hypnogram(write(tmp_path, "s.csv", text), "mass-ex")


def test_mass_ex_rows_keep_n_subject_and_line(tmp_path):
    text = FINE_HEADER + '01-03-0006#0_W,01-03-0006,0,W,"a\nb",W.1\n01-03-0006#4_R,01-03-0006,4,R,c,\n'
    assert read_mass_ex_rows(write(tmp_path, "s.csv", text)) == [
        MassExRow(0, "W", ("W.1",), "a\nb", "01-03-0006", "line 2"),
        MassExRow(4, "R", (), "c", "01-03-0006", "line 4"),
    ]


def test_mass_ex_n_is_the_rank_among_scored_epochs():
    epochs = [ScoredEpoch(30.0 * i, s) for i, s in enumerate([U, "W", U, U, "N2", "R", U, "N3"])]
    assert ranks(epochs) == [None, 0, None, None, 1, 2, None, 3]
    rows = [MassExRow(1, "N2", ("N2.1",), "spindle", "s", "line 2"), MassExRow(3, "N3", (), "slow", "s", "line 3")]
    applied = apply_rows(epochs, rows, "s.csv", "base.edf")
    assert [(e.rule_ids, e.rationale) for e in applied if e.rationale] == [(("N2.1",), "spindle"), ((), "slow")]
    assert [i for i, e in enumerate(applied) if e.rationale] == [4, 7]
    with pytest.raises(InputError, match=r"s\.csv: 1 of 1 rows disagree .* base\.edf .*line 2: N=0 Stage N2, "
                                         r"hypnogram W at epoch 1"):
        apply_rows(epochs, [MassExRow(0, "N2", (), "", "s", "line 2")], "s.csv", "base.edf")


# --- detection and general --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("a.csv", COARSE_HEADER + "s#0_W,s,0,W,\n", "mass-ex"),
        ("a.txt", "onset\tduration\tstage\n0\t30\tW\n", "csv"),
        ("a.tsv", "ONSET;Duration;Stage\n0;30;W\n", "csv"),
        ("a.txt", "W\nN1\n", "per-line"),
        ("a.csv", "0\n1\n", "per-line"),
        ("a.xml", nsrr_xml(("Stages|Stages", "Wake|0", 0, 30)), "nsrr-xml"),
    ],
)
def test_format_is_detected(tmp_path, name, text, fmt):
    assert read_hypnogram(write(tmp_path, name, text)).format == fmt


def test_undetectable_content_is_an_error(tmp_path):
    with pytest.raises(InputError, match=r"a\.csv: line 1: cannot tell the hypnogram format"):
        read_hypnogram(write(tmp_path, "a.csv", "time,label\n0,W\n"))


def test_unknown_extension_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"a\.json: cannot tell the hypnogram format"):
        read_hypnogram(write(tmp_path, "a.json", "{}"))
    with pytest.raises(InputError, match=r"unknown hypnogram format 'yasa'"):
        read_hypnogram(write(tmp_path, "a.txt", "W\n"), "yasa")
    with pytest.raises(InputError, match=r"nothing\.csv: no such file"):
        read_hypnogram(tmp_path / "nothing.csv")


def test_non_utf8_text_is_an_input_error(tmp_path):
    path = tmp_path / "hypno.txt"
    path.write_bytes(b"W\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"hypno\.txt: not UTF-8"):
        read_hypnogram(path, "per-line")


def test_formats_and_rule_ids():
    assert FORMATS == ("edf-annotations", "nsrr-xml", "csv", "per-line", "mass-ex")
    assert RULE_IDS == (
        "W.1", "W.2", "W.3", "N1.1", "N1.2", "N2.1", "N2.2", "N2.3", "N2.4", "N3.1",
        "R.1", "R.2", "R.3", "MBM.1", "MBM.2",
    )


def test_empty_hypnogram_helpers():
    hyp = Hypnogram([], "csv", "x.csv", [])
    assert (hyp.onset, hyp.end, hyp.stages, len(hyp)) == (0.0, 0.0, [], 0)
