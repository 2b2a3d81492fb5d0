"""Hypnogram exports in formats the platform reads back: EDF+ annotations and NSRR XML.

A source gives the stages: the recording's reference here; the consensus of a scoring campaign and one
rater's labels are registered by the annotation app (`HYPNOGRAM_SOURCES`; datasets never imports it). Each
source checks what the user may export (PermissionDenied) and its options (InputError). Every epoch of the
recording is written, from its own onset, with "unscored" where the source has no stage, so reading a file
back (`hypnograms.read_hypnogram`) gives the same stages and onsets. Files carry no identity: the EDF+
header names the subject as the user sees it (subject id or pseudonym) with `X` for every other field
and no date; the XML holds stages only.
"""
from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable, Mapping

from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from edfio import Edf, EdfAnnotation, Patient
from edfio import Recording as EdfRecording

from core.access import policy_for
from datasets.constants import UNSCORED
from datasets.exceptions import InputError
from datasets.services.hypnograms import EDF_EXPORT_LABELS, NSRR_EXPORT_CONCEPTS, NSRR_STAGE_EVENT_TYPE, ScoredEpoch
from datasets.services.synthetic import hypnogram_intervals

OUTPUTS = {"edf": ("application/octet-stream", "edf"), "xml": ("application/xml", "xml")}


@dataclass(frozen=True)
class HypnogramSource:
    """`stages(recording, user, options)`: epoch id -> stage, for what the user may export; `choices(recording,
    user)`: the exports the user may download, as (label, options); `options`: the option names it reads."""

    stages: Callable[[object, object, Mapping[str, str]], dict[int, str]]
    choices: Callable[[object, object], list[tuple[str, dict[str, str]]]]
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class HypnogramExport:
    filename: str
    content_type: str
    body: bytes

    def response(self) -> FileResponse:
        """The file as a download (page and API)."""
        return FileResponse(io.BytesIO(self.body), as_attachment=True, filename=self.filename,
                            content_type=self.content_type)


def option_id(options: Mapping[str, str], name: str, *, required: bool = True) -> int | None:
    """An integer option (campaign=ID, rater=ID); InputError when it is missing (if required) or not an integer."""
    value = str(options.get(name) or "").strip()
    if not value:
        if required:
            raise InputError(f"{name}: give {name}=ID")
        return None
    if not value.isdigit():
        raise InputError(f"{name}: an integer id, not {value!r}")
    return int(value)


def reference_stages(recording, user, options) -> dict[int, str]:
    if not policy_for(user).can_see_reference:
        raise PermissionDenied("reference stages are not shown to this role")
    return dict(recording.epochs.values_list("pk", "stage"))


def reference_choices(recording, user) -> list[tuple[str, dict[str, str]]]:
    return [("Reference", {})] if policy_for(user).can_see_reference else []


HYPNOGRAM_SOURCES: dict[str, HypnogramSource] = {"reference": HypnogramSource(reference_stages, reference_choices)}


def export_choices(recording, user) -> list[tuple[str, dict[str, str]]]:
    """Every export the user may download of the recording: (label, query options including the source)."""
    return [(label, {"source": name, **options}) for name, source in HYPNOGRAM_SOURCES.items()
            for label, options in source.choices(recording, user)]


def export_hypnogram(recording, user, options: Mapping[str, str]) -> HypnogramExport:
    """The recording's hypnogram from `options["source"]` (default reference) as `options["output"]` (edf, xml)."""
    name, output = options.get("source") or "reference", options.get("output") or "edf"
    source = HYPNOGRAM_SOURCES.get(name)
    if source is None:
        raise InputError(f"source: unknown {name!r}; expected one of {', '.join(HYPNOGRAM_SOURCES)}")
    if output not in OUTPUTS:
        raise InputError(f"output: unknown {output!r}; expected one of {', '.join(OUTPUTS)}")
    stages = source.stages(recording, user, options)
    epochs = [ScoredEpoch(onset, stages.get(pk) or UNSCORED)
              for pk, onset in recording.epochs.order_by("index").values_list("pk", "onset_s")]
    subject = policy_for(user).recording_label(recording)
    body = write_edf_annotations(epochs, subject) if output == "edf" else write_nsrr_xml(epochs, recording.duration_s)
    content_type, extension = OUTPUTS[output]
    parts = [subject, name, *(f"{option}-{options[option]}" for option in source.options if options.get(option))]
    filename = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)) + f".{extension}"
    return HypnogramExport(filename, content_type, body)


def _intervals(epochs: list[ScoredEpoch]) -> list[tuple[float, float, str]]:
    """Runs of one stage over consecutive epochs as (onset s, duration s, stage), from the first epoch's onset."""
    start = epochs[0].onset if epochs else 0.0
    runs = hypnogram_intervals([epoch.stage for epoch in epochs])
    return [(start + onset, duration, stage) for onset, duration, stage in runs]


def write_edf_annotations(epochs: list[ScoredEpoch], subject: str) -> bytes:
    """An EDF+ file with only an "EDF Annotations" signal (one data record of duration 0, as Sleep-EDF's hypnogram
    files): one "Sleep stage ..." annotation per run. Patient field "<subject> X X X", recording field "Startdate X
    X X X", start 01.01.85 00.00.00 (EDF+'s unknown date)."""
    annotations = [EdfAnnotation(onset, duration, EDF_EXPORT_LABELS[stage])
                   for onset, duration, stage in _intervals(epochs)]
    edf = Edf([], patient=Patient(code=re.sub(r"\s+", "_", subject)), recording=EdfRecording(),
              annotations=annotations)
    buffer = io.BytesIO()
    edf.write(buffer)
    return buffer.getvalue()


def write_nsrr_xml(epochs: list[ScoredEpoch], duration_s: float) -> bytes:
    """NSRR XML: PSGAnnotation/ScoredEvents, a "Recording Start Time" event (no clock time), then one "Stages|Stages"
    event per run with its EventConcept, Start and Duration in seconds from the recording start."""
    root = ET.Element("PSGAnnotation")
    ET.SubElement(root, "SoftwareVersion").text = "SleepReview"
    ET.SubElement(root, "EpochLength").text = "30"
    events = ET.SubElement(root, "ScoredEvents")
    rows = [("", "Recording Start Time", 0.0, duration_s)]
    rows += [(NSRR_STAGE_EVENT_TYPE, NSRR_EXPORT_CONCEPTS[stage], onset, duration)
             for onset, duration, stage in _intervals(epochs)]
    for event_type, concept, start, duration in rows:
        event = ET.SubElement(events, "ScoredEvent")
        ET.SubElement(event, "EventType").text = event_type
        ET.SubElement(event, "EventConcept").text = concept
        ET.SubElement(event, "Start").text = str(float(start))
        ET.SubElement(event, "Duration").text = str(float(duration))
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"
