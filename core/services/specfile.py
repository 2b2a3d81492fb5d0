"""Campaign definitions read from a JSON or YAML file (the create_campaign commands)."""
from __future__ import annotations

import json
from pathlib import Path

from core.exceptions import InputError


def load_spec(path: Path, fields: set[str]) -> dict:
    """One object of `fields` from a .json, .yaml or .yml file; InputError naming the problem."""
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InputError("YAML needs PyYAML, which is not installed; write the campaign as JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{path.name} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path.name} must hold one object of campaign fields")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise InputError(f"unknown field(s) in {path.name}: {', '.join(unknown)}; expected {', '.join(sorted(fields))}")
    return data
