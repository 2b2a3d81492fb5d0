"""Property-based tests (hypothesis): whatever the input, the readers raise nothing but the project's InputError.

Each reader gets random bytes and text, and near-valid input (a valid header or frame with random rows), so the
fuzzing reaches past the first check. The model-output parser never raises at all."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.exceptions import InputError
from datasets.services.hypnograms import (
    CSV_COLUMNS, EDF_STAGE_MAP, MASS_EX_COLUMNS, NSRR_STAGE_MAP, TEXT_STAGE_MAP, read_hypnogram, read_mass_ex_rows,
)

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DB_FUZZ = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

numbers = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["0", "30", "30.0", "20", "-30", "1e400", "nan", "", " ", "3e9"]),
                    st.text(max_size=8))
stage_words = st.one_of(st.sampled_from(list(TEXT_STAGE_MAP) + ["S9", "N4", "?", "", "R&K"]), st.text(max_size=6))
cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def _read(content: bytes, suffix: str, fmt: str | None, reader=read_hypnogram):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"hypnogram{suffix}"
        path.write_bytes(content)
        try:
            return reader(path, fmt) if reader is read_hypnogram else reader(path)
        except InputError:
            return None


@st.composite
def csv_files(draw):
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    header = draw(st.permutations(list(CSV_COLUMNS) + draw(st.lists(cells, max_size=2))))
    rows = draw(st.lists(st.lists(st.one_of(numbers, stage_words, cells), min_size=0, max_size=5), max_size=12))
    valid = [[str(30 * i), "30", draw(stage_words)] for i in range(draw(st.integers(0, 6)))]
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in valid + rows]
    return ("\n".join(lines)).encode(draw(st.sampled_from(["utf-8", "utf-8-sig"])))


@st.composite
def nsrr_files(draw):
    events = []
    for _ in range(draw(st.integers(0, 8))):
        concept = draw(st.one_of(st.sampled_from(list(NSRR_STAGE_MAP)), cells))
        kind = draw(st.sampled_from(["Stages|Stages", "Arousals|Arousals", ""]))
        events.append(f"<ScoredEvent><EventType>{kind}</EventType><EventConcept>{_xml(concept)}</EventConcept>"
                      f"<Start>{_xml(draw(numbers))}</Start><Duration>{_xml(draw(numbers))}</Duration></ScoredEvent>")
    body = "<PSGAnnotation><ScoredEvents>" + "".join(events) + "</ScoredEvents></PSGAnnotation>"
    cut = draw(st.integers(0, len(body)))
    return (body if draw(st.booleans()) else body[:cut] + draw(cells)).encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


@st.composite
def per_line_files(draw):
    lines = draw(st.lists(st.one_of(stage_words, numbers, st.just("")), min_size=1, max_size=40))
    return "\n".join(lines).encode()


@st.composite
def mass_ex_files(draw):
    header = draw(st.permutations(list(MASS_EX_COLUMNS) + draw(st.sampled_from([[], ["reasoning_text"]]))))
    if draw(st.booleans()):
        header = header[: draw(st.integers(0, len(header)))]
    rows = []
    for n in range(draw(st.integers(0, 10))):
        row = {"custom_id": draw(st.one_of(st.just(f"s#{n}"), cells)), "Subject": draw(st.sampled_from(["s", "t"])),
               "N": draw(st.one_of(st.just(str(n)), numbers, st.sampled_from(["²", "٣", "00", "+1"]))),
               "Stage": draw(st.one_of(st.sampled_from(["W", "N1", "N2", "N3", "R"]), stage_words)),
               "applicable_rules": draw(st.one_of(st.sampled_from(["N2.1", "W.1,W.2", "", "FOO"]), cells)),
               "reasoning_text": draw(st.one_of(cells, st.just('a "quoted"\nline')))}
        values = [row.get(name, "") for name in header]
        values = values[: draw(st.integers(0, len(values)))] if draw(st.integers(0, 9)) == 0 else values
        rows.append(",".join('"' + v.replace('"', '""') + '"' for v in values))
    return "\n".join([",".join(header)] + rows).encode()


@st.composite
def edf_annotation_files(draw):
    from edfio import Edf, EdfAnnotation

    labels = st.one_of(st.sampled_from(list(EDF_STAGE_MAP) + ["Sleep stage 5", "Lights off"]),
                       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20))
    annotations = [EdfAnnotation(draw(st.floats(0, 4000).map(lambda x: round(x, 3))),
                                 draw(st.one_of(st.none(), st.sampled_from([0.0, 30.0, 60.0, 20.0, 45.5]))),
                                 draw(labels))
                   for _ in range(draw(st.integers(0, 12)))]
    import io

    buffer = io.BytesIO()
    try:
        Edf([], annotations=annotations).write(buffer)
    except Exception:  # edfio refuses what cannot be written (a text too long for a record, ...)
        buffer = io.BytesIO(b"0       " + bytes(248))
    data = buffer.getvalue()
    if draw(st.integers(0, 4)) == 0:  # damage it
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=16)) + data[at + draw(st.integers(0, 16)):]
    return data


@FUZZ
@given(st.one_of(st.binary(max_size=400), csv_files()))
def test_csv_reader_raises_only_input_error(content):
    _read(content, ".csv", "csv")


@FUZZ
@given(st.one_of(st.binary(max_size=400), nsrr_files()))
def test_nsrr_xml_reader_raises_only_input_error(content):
    _read(content, ".xml", "nsrr-xml")


@FUZZ
@given(st.one_of(st.binary(max_size=200), per_line_files()))
def test_per_line_reader_raises_only_input_error(content):
    _read(content, ".txt", "per-line")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600).map(lambda b: b"0       " + b), edf_annotation_files()))
def test_edf_annotation_reader_raises_only_input_error(content):
    _read(content, ".edf", "edf-annotations")


@FUZZ
@given(st.one_of(st.binary(max_size=300), mass_ex_files()), st.sampled_from([".csv", ".txt", ".tsv", ".xml", ".edf"]))
def test_mass_ex_reader_and_format_detection_raise_only_input_error(content, suffix):
    _read(content, ".csv", None, read_mass_ex_rows)
    _read(content, suffix, None)  # detection, then whichever reader it picks


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


@st.composite
def model_outputs(draw):
    obj = {"sleep_stage": draw(st.one_of(st.sampled_from(["W", "N1", "N2", "N3", "R", "wake", "N4", "S2"]), json_values)),
           "applicable_rules": draw(st.one_of(st.lists(st.sampled_from(["N2.1", "W.1", "FOO", ""])), json_values)),
           "reasoning_text": draw(st.one_of(st.text(max_size=50), json_values))}
    text = json.dumps({k: v for k, v in obj.items() if draw(st.integers(0, 5))})
    wrap = draw(st.sampled_from(["{}", "```json\n{}\n```", "Answer: {} thanks", "{}"]))
    text = wrap.replace("{}", text)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text.replace('"', draw(st.sampled_from(['"', "'", "\u201c"])))


@FUZZ
@given(st.one_of(st.text(max_size=300), model_outputs()))
def test_model_output_parser_never_raises(text):
    from inference.services.parsing import FAILED, OK, REPAIRED, parse_output

    parsed = parse_output(text)
    assert parsed.status in (OK, REPAIRED, FAILED)
    assert parsed.stage in ("", "W", "N1", "N2", "N3", "R")
    assert all(isinstance(rule, str) for rule in parsed.rule_ids)


SCORING_FIELDS = ["name", "description", "recordings", "cohort", "sample", "sample_size", "seed", "overlap", "raters",
                  "unit", "rescore_share", "rationale_mode", "key_dwell_ms", "signal_view", "review_model"]
RATING_FIELDS = ["name", "cohorts", "model_versions", "expert_sources", "sample_size", "seed", "overlap", "raters",
                 "fast_floor_s", "key_dwell_ms", "signal_view", "item_list", "rubric"]
plausible = {
    "name": st.sampled_from(["Fuzz", "World campaign", "World rating", ""]), "cohort": st.sampled_from(["World", "Nope"]),
    "cohorts": st.sampled_from([["World"], ["Nope"], []]), "raters": st.sampled_from([["world-rater-1"],
                                                                                     ["world-rater-1", "world-rater-2"]]),
    "recordings": st.lists(st.integers(-5, 2**40), max_size=3), "model_versions": st.just(["secret-model-v7"]),
    "overlap": st.integers(-2, 4), "seed": st.integers(-1, 2**40), "sample_size": st.integers(-1, 10),
    "key_dwell_ms": st.integers(-1, 10**7), "item_list": st.sampled_from(["items.csv", "../items.csv", "\x00"]),
}


VALID_SPECS = {
    "scoring": {"name": "Fuzz", "cohort": "World", "raters": ["world-rater-1", "world-rater-2"], "overlap": 1},
    "rating": {"name": "Fuzz", "cohorts": ["World"], "model_versions": ["secret-model-v7"],
               "raters": ["world-rater-1", "world-rater-2"], "overlap": 1, "item_list": "items.csv"},
}


@st.composite
def spec_files(draw, fields, kind):
    """A valid spec with up to three fields changed (a plausible value or any JSON) or dropped."""
    spec = dict(VALID_SPECS[kind])
    for name in draw(st.lists(st.sampled_from(fields), unique=True, max_size=3)):
        choice = draw(st.integers(0, 4))
        if choice == 0:
            spec.pop(name, None)
        else:
            spec[name] = draw(plausible.get(name, json_values) if choice < 3 else json_values)
    text = json.dumps(spec, allow_nan=True)
    return text if draw(st.integers(0, 9)) else text[: draw(st.integers(0, len(text)))]


@pytest.fixture
def spec_world(db):
    from core.testing import build_world

    return build_world()


def _run_command(command: str, text: str, item_list: str | None = None):
    """The command on a spec file, rolled back: only CommandError may come out."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "campaign.json"
        path.write_text(text, encoding="utf-8")
        if item_list is not None:
            (Path(folder) / "items.csv").write_text(item_list, encoding="utf-8")
        with transaction.atomic():
            try:
                call_command(command, str(path), verbosity=0)
            except CommandError:
                pass
            finally:
                transaction.set_rollback(True)


@DB_FUZZ
@given(text=spec_files(SCORING_FIELDS, "scoring"))
def test_scoring_campaign_spec_raises_only_input_errors(spec_world, text):
    _run_command("create_campaign", text)


item_rows = st.lists(st.tuples(st.sampled_from(["SC4001E0", "1", "999999999999", "", "²", "Empty"]),
                               st.one_of(st.sampled_from(["0", "1", "2", "-1", "", "٣"]), numbers),
                               st.sampled_from(["", "secret-model-v7", "massex", "x"])), max_size=5)


@DB_FUZZ
@given(text=spec_files(RATING_FIELDS, "rating"), rows=item_rows, header=st.sampled_from(["recording,epoch,source", "recording,epoch",
                                                                               "epoch", "\ufeffrecording,epoch", ""]),
       short=st.booleans())
def test_rating_campaign_spec_and_item_list_raise_only_input_errors(spec_world, text, rows, header, short):
    lines = [header] + [",".join(row[: 1 if short and i == 0 else 3]) for i, row in enumerate(rows)]
    _run_command("create_rating_campaign", text, "\n".join(lines) + "\n")
