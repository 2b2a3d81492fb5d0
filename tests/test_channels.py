"""Channel plans: direct, computed and substituted derivations, explicit maps, errors."""

import json

import pytest

from datasets.exceptions import InputError
from datasets.services.channels import DerivationSource, parse_channel_map, plan_channels

MASS = ["EEG F4-CLE", "EEG C4-CLE", "EEG O2-CLE", "EOG Left Horiz", "EOG Right Horiz", "EMG Chin1", "EMG Chin2", "ECG I"]
AASM_REFERENTIAL = ["F4", "C4", "O2", "M1", "M2", "E1", "E2", "Chin1", "Chin2", "ChinZ"]
SLEEP_EDF = ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "Resp oro-nasal", "EMG submental", "Temp rectal", "Event marker"]


def test_mass_names_are_direct_with_linked_ear_noted_and_chin_computed():
    plan = plan_channels(MASS)
    assert plan.missing == []
    assert plan.derivations == ["F4-M1", "C4-M1", "O2-M1", "LOC", "ROC", "Chin EMG"]
    f4 = plan.sources["F4-M1"]
    assert (f4.positive, f4.negative, f4.kind) == ("EEG F4-CLE", None, "direct")
    assert "linked-ear" in f4.note and "M1" in f4.note
    assert plan.sources["LOC"].positive == "EOG Left Horiz" and plan.sources["ROC"].positive == "EOG Right Horiz"
    chin = plan.sources["Chin EMG"]
    assert (chin.positive, chin.negative, chin.kind) == ("EMG Chin1", "EMG Chin2", "computed")
    assert plan.substitutions == []
    assert plan.available == MASS


def test_mass_ler_reference_and_single_chin():
    plan = plan_channels(["EEG C4-LER", "EMG Chin"])
    assert plan.sources["C4-M1"].kind == "direct" and "LER" in plan.sources["C4-M1"].note
    assert plan.sources["Chin EMG"] == DerivationSource(
        "Chin EMG", "EMG Chin", None, "direct", "Chin EMG: EMG Chin as recorded (single chin EMG channel)"
    )
    assert plan.missing == ["F4-M1", "O2-M1", "LOC", "ROC"]


def test_aasm_referential_channels_are_computed():
    plan = plan_channels(AASM_REFERENTIAL)
    expected = {
        "F4-M1": ("F4", "M1"),
        "C4-M1": ("C4", "M1"),
        "O2-M1": ("O2", "M1"),
        "LOC": ("E1", "M2"),
        "ROC": ("E2", "M2"),
        "Chin EMG": ("Chin1", "Chin2"),
    }
    assert {d: (s.positive, s.negative) for d, s in plan.sources.items()} == expected
    assert {s.kind for s in plan.sources.values()} == {"computed"}
    assert plan.sources["F4-M1"].note == "F4-M1: computed F4 - M1"


def test_chin_falls_back_to_chinz_reference():
    plan = plan_channels(["C4", "A1", "Chin2", "ChinZ"])
    assert (plan.sources["Chin EMG"].positive, plan.sources["Chin EMG"].negative) == ("Chin2", "ChinZ")
    c4 = plan.sources["C4-M1"]
    assert (c4.positive, c4.negative, c4.kind) == ("C4", "A1", "computed") and "A1 taken as M1" in c4.note


def test_aasm_and_vendor_bipolar_names_are_direct():
    names = ["F4-M1", "c4:m1", "EEG O2-A1", "E1-M2", "ROC-A1", "EMG Chin1-Chin2"]
    plan = plan_channels(names)
    assert {d: s.positive for d, s in plan.sources.items()} == {
        "F4-M1": "F4-M1", "C4-M1": "c4:m1", "O2-M1": "EEG O2-A1",
        "LOC": "E1-M2", "ROC": "ROC-A1", "Chin EMG": "EMG Chin1-Chin2",
    }
    assert {s.kind for s in plan.sources.values()} == {"direct"}
    assert "A1 taken as M1" in plan.sources["O2-M1"].note


def test_shhs_names():
    plan = plan_channels(["SaO2", "EEG(sec)", "ECG", "EMG", "EOG(L)", "EOG(R)", "EEG"])
    assert plan.sources["C4-M1"].positive == "EEG" and plan.sources["C4-M1"].kind == "direct"
    assert (plan.sources["LOC"].positive, plan.sources["ROC"].positive) == ("EOG(L)", "EOG(R)")
    assert plan.sources["Chin EMG"].positive == "EMG"
    assert plan.missing == ["F4-M1", "O2-M1"]
    secondary_only = plan_channels(["EEG(sec)", "EMG"])
    assert secondary_only.sources["C4-M1"].kind == "substituted"
    assert "C3-A2" in secondary_only.substitutions[0]


def test_sleep_edf_substitutions_are_recorded_and_gaps_listed():
    plan = plan_channels(SLEEP_EDF)
    assert plan.missing == ["C4-M1", "ROC"]
    assert {d: (s.positive, s.kind) for d, s in plan.sources.items()} == {
        "F4-M1": ("EEG Fpz-Cz", "substituted"),
        "O2-M1": ("EEG Pz-Oz", "substituted"),
        "LOC": ("EOG horizontal", "substituted"),
        "Chin EMG": ("EMG submental", "direct"),
    }
    assert len(plan.substitutions) == 3
    assert plan.substitutions[0].startswith("F4-M1: EEG Fpz-Cz stands in")
    assert plan.substitutions[1].startswith("O2-M1: EEG Pz-Oz stands in")
    assert plan.substitutions[2].startswith("LOC: EOG horizontal stands in")


def test_preference_direct_over_computed_over_substituted():
    plan = plan_channels(["F3-M2", "F4", "M1", "F4-M1", "C3-M2", "C4", "O1", "M2"])
    assert plan.sources["F4-M1"].positive == "F4-M1" and plan.sources["F4-M1"].kind == "direct"
    assert plan.sources["C4-M1"].kind == "computed" and plan.sources["C4-M1"].negative == "M1"
    o2 = plan.sources["O2-M1"]
    assert (o2.positive, o2.negative, o2.kind) == ("O1", "M2", "substituted")
    assert plan.substitutions == ["O2-M1: O1 - M2 stands in (AASM alternate O1-M2)"]


def test_explicit_map_overrides_and_is_shown():
    plan = plan_channels(SLEEP_EDF, {"c4-m1": "EEG Fpz-Cz", "ROC": ["eeg pz-oz", "EOG horizontal"]})
    c4 = plan.sources["C4-M1"]
    assert (c4.positive, c4.negative, c4.kind) == ("EEG Fpz-Cz", None, "explicit")
    assert c4.note == "C4-M1: set by channel map: EEG Fpz-Cz"
    roc = plan.sources["ROC"]
    assert (roc.positive, roc.negative, roc.kind) == ("EEG Pz-Oz", "EOG horizontal", "explicit")
    assert plan.missing == []
    assert "C4-M1: set by channel map: EEG Fpz-Cz" in plan.substitutions
    assert plan.sources["F4-M1"].kind == "substituted"


def test_explicit_map_naming_absent_channel_lists_channels_found():
    with pytest.raises(InputError) as info:
        plan_channels(MASS, {"F4-M1": "F4"}, source="01-03-0001 PSG.edf")
    message = str(info.value)
    assert message.startswith("01-03-0001 PSG.edf: ")
    assert "no channel 'F4'" in message and "channels found: EEG F4-CLE, EEG C4-CLE" in message


def test_explicit_map_unknown_derivation_or_bad_value():
    with pytest.raises(InputError, match=r"unknown derivation 'Fz-Cz'"):
        plan_channels(MASS, {"Fz-Cz": "EEG F4-CLE"})
    with pytest.raises(InputError, match=r"expected a channel name or \[positive, negative\]"):
        plan_channels(MASS, {"F4-M1": ["EEG F4-CLE"]})


def test_no_eeg_lists_channels_found():
    with pytest.raises(InputError, match=r"no usable EEG channel; channels found: ECG, EOG\(L\), EMG"):
        plan_channels(["ECG", "EOG(L)", "EMG"])


def test_explicit_map_can_supply_the_only_eeg():
    plan = plan_channels(["ECG", "Fz"], {"F4-M1": "Fz"})
    assert plan.derivations == ["F4-M1"] and plan.sources["F4-M1"].kind == "explicit"


def test_parse_channel_map_from_text_and_file(tmp_path):
    assert parse_channel_map('{"f4-m1": "EEG Fpz-Cz", "chin emg": ["Chin1", "Chin2"]}') == {
        "F4-M1": "EEG Fpz-Cz",
        "Chin EMG": ["Chin1", "Chin2"],
    }
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"LOC": "EOG horizontal"}))
    assert parse_channel_map(str(path)) == {"LOC": "EOG horizontal"}


def test_parse_channel_map_errors(tmp_path):
    with pytest.raises(InputError, match=r"--channel-map: invalid JSON at line 1, column \d+"):
        parse_channel_map('{"F4-M1": }')
    path = tmp_path / "map.json"
    path.write_text('{\n  "F4-M1": "F4",\n  "LOC" "E1"\n}\n')
    with pytest.raises(InputError, match=r"map\.json: invalid JSON at line 3, column 9"):
        parse_channel_map(str(path))
    with pytest.raises(InputError, match=r"neither a JSON object nor an existing file"):
        parse_channel_map(str(tmp_path / "absent.json"))
    list_path = tmp_path / "list.json"
    list_path.write_text('["F4"]')
    with pytest.raises(InputError, match=r"list\.json: channel map must be a JSON object"):
        parse_channel_map(str(list_path))
    with pytest.raises(InputError, match=r"'F4-M1': value must be a channel name or \[positive, negative\]"):
        parse_channel_map('{"F4-M1": 3}')
    with pytest.raises(InputError, match=r"unknown derivation 'EEG'"):
        parse_channel_map('{"EEG": "C4"}')
