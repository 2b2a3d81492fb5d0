"""Campaign definitions read from a JSON or YAML file (the create_campaign commands).

`fields` maps each allowed field to its kind; a value of the wrong kind is refused here, naming the field,
so the services get what the API's serializers would give them.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from core.exceptions import InputError

MAX_WHOLE = 2**31 - 1  # the database's integer columns
KINDS = {
    "text": "a string",
    "text?": "a string or null",
    "whole": f"a whole number from 0 to {MAX_WHOLE}",
    "whole?": f"a whole number from 0 to {MAX_WHOLE}, or null",
    "number": "a finite number",
    "flag": "true or false",
    "names": "a list of strings",
    "ids": f"a list of whole numbers from 1 to {MAX_WHOLE}",
    "text|dimensions": "a string or a list of rubric dimensions",
}


def load_spec(path: Path, fields: dict[str, str]) -> dict:
    """One object of `fields` (name -> kind of KINDS) from a .json, .yaml or .yml file; InputError naming the problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name} is not UTF-8 text (byte {exc.start})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InputError("YAML needs PyYAML, which is not installed; write the campaign as JSON") from None
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError) as exc:
            raise InputError(f"{path.name} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path.name} is not valid JSON: {exc}") from None
        except RecursionError:
            raise InputError(f"{path.name} is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise InputError(f"{path.name} must hold one object of campaign fields")
    unknown = sorted(str(key) for key in set(data) - set(fields))
    if unknown:
        raise InputError(f"unknown field(s) in {path.name}: {', '.join(unknown)}; expected {', '.join(sorted(fields))}")
    for name, value in data.items():
        if not _is(fields[name], value):
            raise InputError(f"{path.name}: field {name} must be {KINDS[fields[name]]}, got {_shown(value)}")
    return data


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WHOLE


def _is(kind: str, value) -> bool:
    if kind.endswith("?") and value is None:
        return True
    kind = kind.rstrip("?")
    if kind == "text":
        return isinstance(value, str)
    if kind == "whole":
        return _whole(value)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "flag":
        return isinstance(value, bool)
    if kind == "names":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "ids":
        return isinstance(value, list) and all(_whole(v) and v > 0 for v in value)
    if kind == "text|dimensions":
        return isinstance(value, (str, list))
    raise ValueError(f"unknown field kind {kind!r}")


def _shown(value) -> str:
    """The value as the file wrote it (JSON), cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
