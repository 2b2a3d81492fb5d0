"""The one output parser: fenced JSON, bare JSON, repair; catalog validation; failures never guessed."""
import json

import pytest

from inference.services.parsing import parse_output

GOOD = '{"reasoning_text": "Spindle on C4-M1 at 4.1 s (13 Hz, 35 uV).", "applicable_rules": ["N2.1"], "sleep_stage": "N2"}'


@pytest.mark.parametrize("text", [
    f"```json\n{GOOD}\n```",
    f"Here is my answer:\n```\n{GOOD}\n```\nDone.",
    f"```JSON\n{GOOD}```",
])
def test_fenced_json(text):
    out = parse_output(text)
    assert (out.status, out.stage, out.rule_ids) == ("ok", "N2", ["N2.1"])
    assert out.rationale.startswith("Spindle on C4-M1")


def test_bare_json_holding_sleep_stage_after_other_objects():
    text = 'Measurements {"alpha": 0.1} then the answer ' + GOOD + " end"
    out = parse_output(text)
    assert (out.status, out.stage) == ("ok", "N2")


def test_first_fenced_block_without_sleep_stage_is_skipped():
    text = '```json\n{"note": "draft"}\n```\n```json\n' + GOOD + "\n```"
    assert parse_output(text).stage == "N2"


@pytest.mark.parametrize("text, repair", [
    ("```json\n{\"reasoning_text\": \"x\", \"applicable_rules\": [\"R.1\",], \"sleep_stage\": \"R\",}\n```", "trailing commas"),
    ("{'reasoning_text': 'x', 'applicable_rules': ['R.1'], 'sleep_stage': 'R'}", "single quotes"),
    ("{\u201creasoning_text\u201d: \u201cx\u201d, \u201capplicable_rules\u201d: [\u201cR.1\u201d], \u201csleep_stage\u201d: \u201cR\u201d}", "smart quotes"),
    ('```json\n{"applicable_rules": ["R.1"], "sleep_stage": "R", "reasoning_text": "REMs at 3 s', "unterminated"),
])
def test_repairs(text, repair):
    out = parse_output(text)
    assert (out.status, out.stage, out.rule_ids) == ("repaired", "R", ["R.1"])
    assert repair in out.detail


@pytest.mark.parametrize("stage, expected", [("rem", "R"), ("Wake", "W"), (" n3 ", "N3"), ("N4", "N3")])
def test_stage_spellings(stage, expected):
    """Another spelling of a stage is read, and shown as a repair: the output did not use the contract's code."""
    out = parse_output(f'{{"sleep_stage": "{stage}", "applicable_rules": [], "reasoning_text": "x"}}')
    assert (out.stage, out.status) == (expected, "repaired") and f"sleep_stage {stage!r} read as {expected}" in out.detail
    exact = parse_output(f'{{"sleep_stage": "{expected}", "applicable_rules": [], "reasoning_text": "x"}}')
    assert (exact.stage, exact.status, exact.detail) == (expected, "ok", "")


@pytest.mark.parametrize("text, reason", [
    ("", "no JSON object"),
    ("The epoch is N2.", "no JSON object"),
    ('{"reasoning_text": "x", "applicable_rules": []}', "no JSON object"),
    ('{"sleep_stage": "N5", "applicable_rules": []}', "invalid sleep_stage"),
    ('{"sleep_stage": 2, "applicable_rules": []}', "invalid sleep_stage"),
    ('{"sleep_stage": null, "applicable_rules": ["N2.1"], "reasoning_text": "Spindle at 3 s."}', "invalid sleep_stage"),
    ('{"sleep_stage": "", "applicable_rules": ["N2.1"]}', "invalid sleep_stage"),
    ("```json\n{sleep_stage: N2}\n```", "no JSON object"),
])
def test_failures_are_never_guessed(text, reason):
    out = parse_output(text)
    assert out.status == "failed" and out.stage == "" and reason in out.detail


def test_rule_ids_validated_against_the_catalog():
    out = parse_output('{"sleep_stage": "W", "applicable_rules": ["W.1", "X.9", "W.1"], "reasoning_text": "a"}')
    assert (out.status, out.rule_ids) == ("repaired", ["W.1"])
    assert "X.9" in out.detail
    edited_catalog = frozenset({"W.1"})
    assert parse_output('{"sleep_stage": "W", "applicable_rules": ["W.2"]}', edited_catalog).rule_ids == []


def test_comma_separated_rules_and_coarse_outputs():
    out = parse_output('{"sleep_stage": "N3", "applicable_rules": "N3.1, N2.3"}')
    assert (out.status, out.rule_ids, out.rationale) == ("ok", ["N3.1", "N2.3"], "")


TRAINING_RATIONALE = (
    'A sleep spindle on C4-M1 at 4.2\u20135.1 s (13 Hz, 28 \u00b5V peak to peak) and a K\u2011complex on F4-M1 at 9 s '
    '(1.1 s, 95 \u00b5V), neither "arousal-associated"; background LAMF at 4\u20137 Hz, chin EMG low, no REMs. '
    "The spindle lies in the first half of the epoch, so N2.1 applies; the LAMF continuing N2 meets N2.2."
)


@pytest.mark.parametrize("indent", [None, 2, 4])
@pytest.mark.parametrize("rules", [["N2.1", "N2.2"], "N2.1, N2.2"])
def test_the_authors_training_target_shape(indent, rules):
    """```json, the object (reasoning_text, applicable_rules, sleep_stage) as json.dumps writes it, ```."""
    target = {"reasoning_text": TRAINING_RATIONALE, "applicable_rules": rules, "sleep_stage": "N2"}
    text = "```json\n" + json.dumps(target, ensure_ascii=False, indent=indent) + "\n```"
    assert "\u2011" in text and "\u00b5V" in text and '\\"arousal-associated\\"' in text
    out = parse_output(text)
    assert (out.status, out.stage, out.rule_ids, out.detail) == ("ok", "N2", ["N2.1", "N2.2"], "")
    assert out.rationale == TRAINING_RATIONALE


@pytest.mark.parametrize("fields, status, rules, rationale, detail", [
    ({"reasoning_text": "Spindle at 3 s."}, "ok", [], "Spindle at 3 s.", "applicable_rules missing"),
    ({"applicable_rules": None, "reasoning_text": "x"}, "ok", [], "x", "applicable_rules missing"),
    ({"applicable_rules": {"N2.1": True}, "reasoning_text": "x"}, "repaired", [], "x",
     "applicable_rules is not a list of rule ids, dropped: {'N2.1': True}"),
    ({"applicable_rules": 2, "reasoning_text": "x"}, "repaired", [], "x",
     "applicable_rules is not a list of rule ids, dropped: 2"),
    ({"applicable_rules": ["N2.1", 7, "N9.9", ""], "reasoning_text": "x"}, "repaired", ["N2.1"], "x",
     "unknown rule ids dropped: 7, N9.9, ''"),
    ({"applicable_rules": ["N2.1"]}, "ok", ["N2.1"], "", "reasoning_text missing"),
    ({"applicable_rules": ["N2.1"], "reasoning_text": ["a", "b"]}, "repaired", ["N2.1"], "",
     "reasoning_text is not a string, dropped: ['a', 'b']"),
    ({"applicable_rules": ["N2.1"], "reasoning_text": 3}, "repaired", ["N2.1"], "",
     "reasoning_text is not a string, dropped: 3"),
    ({}, "ok", [], "", "applicable_rules missing; reasoning_text missing"),
])
def test_a_valid_stage_parses_whatever_the_optional_fields(fields, status, rules, rationale, detail):
    """As in the authors' evaluation only the stage decides a parse failure; field problems go to detail."""
    out = parse_output("```json\n" + json.dumps({**fields, "sleep_stage": "N2"}) + "\n```")
    assert (out.status, out.stage, out.rule_ids, out.rationale, out.detail) == (status, "N2", rules, rationale, detail)


def test_field_problems_and_text_repairs_are_both_recorded():
    out = parse_output("{'sleep_stage': 'R', 'applicable_rules': 'R.1, X.1', 'reasoning_text': None,}")
    assert (out.status, out.stage, out.rule_ids) == ("repaired", "R", ["R.1"])
    assert out.detail.split("; ") == ["trailing commas removed", "single quotes read as a Python literal",
                                      "unknown rule ids dropped: X.1", "reasoning_text missing"]
