"""One parser for every backend's text (spec/sleepvlm.md): fenced JSON, then bare JSON, then repair.

The stage and rule ids are validated against the catalog. As in the authors' evaluation, only an output
without a valid stage is a parse failure (kept, counted, never guessed). A missing rule list or rationale
is noted in `detail`; a malformed one, or unknown rule ids, is dropped and noted (status repaired). Unknown
ids are kept apart, since the authors' rule IoU counts every id an output cites.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

from datasets.constants import MAX_RATIONALE_CHARS, RULE_IDS, STAGES

OK, REPAIRED, FAILED = "ok", "repaired", "failed"
FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
STAGE_ALIASES = {"WAKE": "W", "REM": "R", "S1": "N1", "S2": "N2", "S3": "N3", "STAGE 1": "N1", "STAGE 2": "N2",
                 "STAGE 3": "N3", "N4": "N3", "S4": "N3"}
SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


@dataclass
class ParsedOutput:
    status: str
    stage: str = ""
    rule_ids: list[str] = field(default_factory=list)
    rationale: str = ""
    detail: str = ""
    unknown_rule_ids: list[str] = field(default_factory=list)  # cited but not in the catalog: they count in rule IoU


def parse_output(text: str, rule_ids: tuple[str, ...] | frozenset[str] = RULE_IDS) -> ParsedOutput:
    """Parse a model's text into stage, rule ids and rationale; never raises."""
    obj, repairs = _find_object(text or "")
    if obj is None:
        return ParsedOutput(FAILED, detail="no JSON object with a sleep_stage found")
    stage = _stage(obj.get("sleep_stage"))
    if stage is None:
        return ParsedOutput(FAILED, detail=f"invalid sleep_stage {_short(obj.get('sleep_stage'))}")
    if stage != obj["sleep_stage"]:
        repairs = repairs + [f"sleep_stage {obj['sleep_stage']!r} read as {stage}"]
    missing = [f"{key} missing" for key in ("applicable_rules", "reasoning_text") if obj.get(key) is None]
    rules, unknown, dropped_rules = _rules(obj.get("applicable_rules", []), rule_ids)
    rationale, dropped_rationale = _rationale(obj.get("reasoning_text", ""))
    repairs += dropped_rules + dropped_rationale
    return ParsedOutput(REPAIRED if repairs else OK, stage, rules, rationale, "; ".join(repairs + missing), unknown)


def _find_object(text: str) -> tuple[dict | None, list[str]]:
    candidates = [m.group(1) for m in FENCE.finditer(text)]
    for block in candidates:  # 1. fenced JSON
        obj = _loads(block.strip())
        if obj is not None:
            return obj, []
    obj = _first_bare_object(text)  # 2. any bare JSON object holding sleep_stage
    if obj is not None:
        return obj, []
    # 3. repair: the fenced blocks, else from the first "{" to the last "}" (or to the end: truncated output)
    start, end = text.find("{"), text.rfind("}")
    spans = candidates + ([text[start : end + 1] if end > start else text[start:].rstrip("`\n ")] if start >= 0 else [])
    for span in spans:
        obj, repairs = _repaired(span)
        if obj is not None:
            return obj, repairs
    return None, []


def _loads(text: str) -> dict | None:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) and "sleep_stage" in obj else None


def _first_bare_object(text: str) -> dict | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "sleep_stage" in obj:
            return obj
    return None


def _repaired(span: str) -> tuple[dict | None, list[str]]:
    repairs = []
    fixed = span.strip().translate(SMART_QUOTES)
    if fixed != span.strip():
        repairs.append("smart quotes straightened")
    without_commas = re.sub(r",\s*([}\]])", r"\1", fixed)
    if without_commas != fixed:
        repairs.append("trailing commas removed")
    obj = _loads(without_commas)
    if obj is not None:
        return obj, repairs
    try:  # single-quoted keys and strings, Python literals
        literal = ast.literal_eval(without_commas)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        literal = None
    if isinstance(literal, dict) and "sleep_stage" in literal:
        return literal, repairs + ["single quotes read as a Python literal"]
    unterminated = _close_unterminated(without_commas)
    if unterminated is not None:
        return unterminated, repairs + ["unterminated object closed"]
    return None, []


def _close_unterminated(span: str) -> dict | None:
    """A truncated generation: close an open string and the object, if that yields a valid object."""
    for suffix in ('"}', "}", '"]}', "]}"):
        obj = _loads(span + suffix)
        if obj is not None:
            return obj
    return None


def _stage(value) -> str | None:
    if not isinstance(value, str):
        return None
    token = value.strip().upper()
    token = STAGE_ALIASES.get(token, token)
    return token if token in STAGES else None


def _rules(value, rule_ids) -> tuple[list[str], list[str], list[str]]:
    """The catalog's ids in `value` (a JSON list or one comma-separated string) and the others, once each;
    what was dropped."""
    if value is None:
        return [], [], []
    if isinstance(value, str):
        value = [v for v in re.split(r"[,;]\s*", value) if v.strip()]
    if not isinstance(value, list):
        return [], [], [f"applicable_rules is not a list of rule ids, dropped: {_short(value)}"]
    known, unknown = [], []
    for item in value:
        rule = item.strip() if isinstance(item, str) else None
        if rule in rule_ids:
            known.append(rule)
        else:
            unknown.append(rule or _short(item))
    unknown = list(dict.fromkeys(unknown))
    return list(dict.fromkeys(known)), unknown, [f"unknown rule ids dropped: {', '.join(u[:40] for u in unknown[:20])}"] if unknown else []


def _rationale(value) -> tuple[str, list[str]]:
    """The stripped rationale, or "" and what was dropped where it is not a string or longer than
    MAX_RATIONALE_CHARS (a runaway generation, not a rationale)."""
    if value is None or isinstance(value, str):
        text = (value or "").strip()
        if len(text) > MAX_RATIONALE_CHARS:
            return "", [f"reasoning_text of {len(text):,} characters dropped (more than {MAX_RATIONALE_CHARS:,})"]
        return text, []
    return "", [f"reasoning_text is not a string, dropped: {_short(value)}"]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
