"""Hypnogram exports (EDF+ annotations, NSRR XML) of the reference, a campaign's consensus and one rater's labels:
read back by the platform's readers and by MNE to the same stages and onsets, per-role access, no identity."""
import datetime
import uuid
import xml.etree.ElementTree as ET

import mne
import pytest
from django.core.exceptions import PermissionDenied

from annotation.models import Adjudication, Label
from annotation.services.campaigns import create_campaign
from core.access import pseudonym
from core.roles import CURATOR, RATER, RESEARCHER
from datasets.constants import UNSCORED
from datasets.exceptions import InputError
from datasets.models import Cohort, Epoch, Recording
from datasets.services.hypnogram_export import export_hypnogram
from datasets.services.hypnograms import EDF_STAGE_MAP, read_hypnogram

OFFSET_S = 15.0  # epoch 0 starts 15 s into the recording
REFERENCE = ["W", "W", UNSCORED, "N1", "N2", "N2", UNSCORED, "N3", "R", "R"]
IDENTITY = ("Doe", "Jane", "MCH-0234567", "1962", "14-MAR", "2024", "Doe_Jane_1962-03-14")


@pytest.fixture
def night(db, make_user):
    """A 10-epoch recording (epoch offset, unscored epochs, a named patient in its restricted fields) in a campaign
    of three raters: the first two agree except on epochs 1 (a tie, adjudicated N1) and 5 (a tie, none)."""
    cohort = Cohort.objects.create(name="Export")
    recording = Recording.objects.create(
        cohort=cohort, name="EX-0001", sha256="e" * 64, source_filename="Doe_Jane_1962-03-14.edf", file_format="EDF+",
        edf_patient="MCH-0234567 F 14-MAR-1962 Doe_Jane", edf_recording="Startdate 02-FEB-2024 PSG-7 tech equipment",
        measured_at=datetime.datetime(2024, 2, 2, 22, 30, tzinfo=datetime.timezone.utc),
        duration_s=OFFSET_S + 30.0 * len(REFERENCE) + 20, mains_hz=50, signal_file="none.npy",
        epoch_count=len(REFERENCE), epoch_offset_s=OFFSET_S, derivations=["C4-M1"])
    Epoch.objects.bulk_create([Epoch(recording=recording, index=i, onset_s=OFFSET_S + 30.0 * i, stage=stage)
                               for i, stage in enumerate(REFERENCE)])
    raters = [make_user(RATER, f"export-rater-{n}") for n in (1, 2, 3)]
    campaign = create_campaign("Export campaign", recordings=[recording], overlap=2, raters=raters)
    items = {item.epoch.index: item for item in campaign.items.select_related("epoch")}
    first = {0: "W", 1: "W", 3: "N1", 4: "N2", 5: "N2", 7: "N3", 8: "R"}
    second = {0: "W", 1: "N1", 3: "N1", 4: "N2", 5: "N3", 7: "N3", 8: "R"}
    for rater, labels in zip(raters, (first, second)):
        for index, stage in labels.items():
            Label.objects.create(item=items[index], rater=rater, stage=stage, client_id=uuid.uuid4())
    curator = make_user(CURATOR, "export-curator")
    Adjudication.objects.create(item=items[1], stage="N1", reason="alpha gone", adjudicator=curator)
    consensus = [first.get(i) if first.get(i) == second.get(i) else None for i in range(len(REFERENCE))]
    consensus[1] = "N1"
    return {"recording": recording, "campaign": campaign, "raters": raters, "curator": curator,
            "researcher": make_user(RESEARCHER, "export-researcher"),
            "expected": {
                "reference": REFERENCE,
                "consensus": [stage or UNSCORED for stage in consensus],
                "rater": [first.get(i, UNSCORED) for i in range(len(REFERENCE))],
            }}


def _options(night, source, output, **extra):
    options = {"source": source, "output": output, **extra}
    if source != "reference":
        options["campaign"] = str(night["campaign"].pk)
    return options


def _read_back(export, tmp_path, fmt):
    path = tmp_path / export.filename
    path.write_bytes(export.body)
    return read_hypnogram(path, fmt)


@pytest.mark.parametrize("output, fmt", [("edf", "edf-annotations"), ("xml", "nsrr-xml")])
@pytest.mark.parametrize("source", ["reference", "consensus", "rater"])
def test_an_export_reads_back_to_the_same_stages_and_onsets(night, tmp_path, source, output, fmt):
    rater = night["raters"][0]
    extra = {"rater": str(rater.pk)} if source == "rater" else {}
    export = export_hypnogram(night["recording"], night["curator"], _options(night, source, output, **extra))
    hypnogram = _read_back(export, tmp_path, fmt)
    expected = night["expected"][source]
    assert hypnogram.format == fmt and hypnogram.notes == []
    assert hypnogram.stages == expected
    assert [epoch.onset for epoch in hypnogram.epochs] == [OFFSET_S + 30.0 * i for i in range(len(expected))]


def test_the_edf_file_is_an_annotations_only_edf_plus_that_mne_reads(night, tmp_path):
    export = export_hypnogram(night["recording"], night["curator"], _options(night, "reference", "edf"))
    header = export.body[:256 * 2]
    assert header[192:197] == b"EDF+C" and header[236:244].strip() == b"1" and header[252:256].strip() == b"1"
    assert header[256:256 + 16].strip() == b"EDF Annotations"
    path = tmp_path / export.filename
    path.write_bytes(export.body)
    annotations = mne.read_annotations(path)
    # runs of one stage, as Sleep-EDF writes them: W W | ? | N1 | N2 N2 | ? | N3 | R R
    assert list(annotations.description) == ["Sleep stage W", "Sleep stage ?", "Sleep stage 1", "Sleep stage 2",
                                             "Sleep stage ?", "Sleep stage 3", "Sleep stage R"]
    assert list(annotations.onset) == [OFFSET_S + 30.0 * i for i in (0, 2, 3, 4, 6, 7, 8)]
    assert list(annotations.duration) == [60.0, 30.0, 30.0, 60.0, 30.0, 30.0, 60.0]
    assert set(annotations.description) <= set(EDF_STAGE_MAP)


def test_the_xml_is_nsrr_scored_events(night):
    body = export_hypnogram(night["recording"], night["curator"], _options(night, "reference", "xml")).body
    root = ET.fromstring(body)
    assert root.tag == "PSGAnnotation" and root.findtext("EpochLength") == "30"
    events = [{field: event.findtext(field) for field in ("EventType", "EventConcept", "Start", "Duration")}
              for event in root.find("ScoredEvents")]
    assert events[0] == {"EventType": "", "EventConcept": "Recording Start Time", "Start": "0.0",
                         "Duration": str(night["recording"].duration_s)}
    assert {event["EventType"] for event in events[1:]} == {"Stages|Stages"}
    assert [(event["EventConcept"], float(event["Start"]), float(event["Duration"])) for event in events[1:]] == [
        ("Wake|0", OFFSET_S, 60.0), ("Unscored|9", OFFSET_S + 60, 30.0), ("Stage 1 sleep|1", OFFSET_S + 90, 30.0),
        ("Stage 2 sleep|2", OFFSET_S + 120, 60.0), ("Unscored|9", OFFSET_S + 180, 30.0),
        ("Stage 3 sleep|3", OFFSET_S + 210, 30.0), ("REM sleep|5", OFFSET_S + 240, 60.0)]


@pytest.mark.parametrize("output", ["edf", "xml"])
def test_exports_carry_no_identity(night, output):
    recording, rater = night["recording"], night["raters"][0]
    for user, options, subject in (
        (night["curator"], _options(night, "reference", output), "EX-0001"),
        (rater, _options(night, "rater", output), pseudonym(recording.pk).replace(" ", "_")),
    ):
        export = export_hypnogram(recording, user, options)
        text = export.body.decode("latin-1") + export.filename
        assert not [token for token in IDENTITY if token.lower() in text.lower()]
        if output == "edf":
            assert export.body[8:88].decode().rstrip() == f"{subject} X X X"
            assert export.body[88:168].decode().rstrip() == "Startdate X X X X"
            assert export.body[168:184] == b"01.01.8500.00.00"  # EDF+'s unknown date, no clock time
    assert "EX-0001" not in export.filename  # the rater's file names the recording by its pseudonym


def test_a_rater_exports_only_their_own_labels(night, tmp_path):
    recording, (own, other, _) = night["recording"], night["raters"]
    export = export_hypnogram(recording, own, {"source": "rater", "campaign": str(night["campaign"].pk)})
    assert _read_back(export, tmp_path, "edf-annotations").stages == night["expected"]["rater"]
    assert export_hypnogram(recording, own, _options(night, "rater", "xml", rater=str(own.pk))).body == \
        export_hypnogram(recording, night["researcher"], _options(night, "rater", "xml", rater=str(own.pk))).body
    for options in (_options(night, "rater", "edf", rater=str(other.pk)), _options(night, "consensus", "edf"),
                    _options(night, "reference", "edf")):
        with pytest.raises(PermissionDenied):
            export_hypnogram(recording, own, options)


def test_bad_options_are_refused_with_what_is_wrong(night, make_user):
    recording, curator = night["recording"], night["curator"]
    for options, message in (
        ({"source": "psg"}, "source: unknown 'psg'"),
        ({"source": "reference", "output": "csv"}, "output: unknown 'csv'"),
        ({"source": "consensus"}, "campaign: give campaign=ID"),
        ({"source": "consensus", "campaign": "x"}, "campaign: an integer id"),
        ({"source": "consensus", "campaign": "999999"}, "no scoring campaign 999999"),
        ({"source": "rater", "campaign": str(night["campaign"].pk)}, "is not a rater of campaign"),
    ):
        with pytest.raises(InputError, match=message):
            export_hypnogram(recording, curator, options)
    outsider = make_user(RATER, "export-outsider")
    with pytest.raises(InputError, match="no scoring campaign"):  # a campaign the rater is not in stays unnamed
        export_hypnogram(recording, outsider, _options(night, "rater", "edf"))


def test_the_recording_page_links_the_exports_each_role_may_download(night, client):
    recording, campaign = night["recording"], night["campaign"]
    client.force_login(night["curator"])
    page = client.get(f"/recordings/{recording.pk}/").content.decode()
    assert 'id="hypnogram-exports"' in page and "Consensus of Export campaign" in page
    assert "Labels of export-rater-1 in Export campaign" in page
    assert f"/recordings/{recording.pk}/hypnogram/?source=reference&amp;output=xml" in page
    client.force_login(night["raters"][0])
    page = client.get(f"/recordings/{recording.pk}/").content.decode()
    assert "My labels in Export campaign" in page
    assert "source=reference" not in page and "Consensus of" not in page and "export-rater-2" not in page
    link = f"/recordings/{recording.pk}/hypnogram/?source=rater&campaign={campaign.pk}&output=edf"
    response = client.get(link)
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment; filename=")
