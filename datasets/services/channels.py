"""Map a recording's channels to the six AASM derivations (spec/rendering.md, channel naming).

Each derivation is resolved, in order of preference, from a channel that already is it
("direct"), from two referential channels ("computed": positive minus negative), or from another
derivation that stands in for it ("substituted", always with a note that must be shown).
Channel names are matched case-insensitively, with or without an "EEG ", "EOG " or "EMG " prefix,
"-" or ":" between electrodes and a "-Ref" suffix for referential channels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from datasets.constants import DERIVATIONS, EEG_DERIVATIONS
from datasets.exceptions import InputError

_A1 = "A1 taken as M1"
_A2 = "A2 taken as M2"
_M1_REFERENCES = {
    "M1": "", "A1": _A1,
    "CLE": "MASS linked-ear reference CLE stands in for M1",
    "LER": "MASS linked-ear reference LER stands in for M1",
}
_M2_REFERENCES = {
    "M2": "", "A2": _A2,
    "CLE": "MASS linked-ear reference CLE stands in for M2",
    "LER": "MASS linked-ear reference LER stands in for M2",
}

# Recommended AASM derivations: positive electrodes and accepted references (reference -> note).
# A channel named positive-reference is direct; referential channels give a computed difference.
RECOMMENDED = {
    "F4-M1": (("F4",), _M1_REFERENCES),
    "C4-M1": (("C4",), _M1_REFERENCES),
    "O2-M1": (("O2",), _M1_REFERENCES),
    "LOC": (("E1",), _M2_REFERENCES),
    "ROC": (
        ("E2",),
        {**_M2_REFERENCES, "M1": "referenced to M1 instead of M2", "A1": "referenced to A1 instead of M2"},
    ),
    "Chin EMG": (("CHIN1", "CHIN2"), {"CHIN2": "", "CHINZ": "", "CHIN1": ""}),
}

# Whole channel names (normalised, upper case) that are the derivation as recorded.
DIRECT_ALIASES = {
    "F4-M1": {},
    "C4-M1": {"EEG": "SHHS primary EEG, C4-A1"},
    "O2-M1": {},
    "LOC": {
        "LOC": "", "LOC-M2": "", "LOC-A2": _A2, "EOG(L)": "", "EOG L": "",
        "LEFT HORIZ": "MASS left horizontal EOG",
    },
    "ROC": {
        "ROC": "", "ROC-M2": "", "ROC-A2": _A2, "ROC-M1": "referenced to M1 instead of M2",
        "ROC-A1": "referenced to A1 instead of M2", "EOG(R)": "", "EOG R": "",
        "RIGHT HORIZ": "MASS right horizontal EOG",
    },
    "Chin EMG": {
        "CHIN": "single chin EMG channel", "CHIN EMG": "",
        "EMG": "single EMG channel, SHHS style",
        "SUBMENTAL": "Sleep-EDF submental EMG; a 1-Hz envelope in the cassette recordings",
    },
}

# Alternates for a missing derivation: (positives, references, note), direct names then computed.
ALTERNATE_DERIVATIONS = {
    "F4-M1": ((("F3",), _M2_REFERENCES, "AASM alternate F3-M2"),),
    "C4-M1": ((("C3",), _M2_REFERENCES, "AASM alternate C3-M2"),),
    "O2-M1": ((("O1",), _M2_REFERENCES, "AASM alternate O1-M2"),),
    "LOC": ((("E1",), {"FPZ": ""}, "AASM acceptable E1-Fpz"),),
    "ROC": ((("E2",), {"FPZ": ""}, "AASM acceptable E2-Fpz"),),
    "Chin EMG": (),
}

# Whole channel names that may stand in for a missing derivation, with the reason.
SUBSTITUTE_ALIASES = {
    "F4-M1": {"FPZ-CZ": "Sleep-EDF frontal bipolar EEG"},
    "C4-M1": {
        "EEG(SEC)": "SHHS secondary EEG, C3-A2", "EEG2": "SHHS secondary EEG, C3-A2",
        "EEG 2": "SHHS secondary EEG, C3-A2", "EEG SEC": "SHHS secondary EEG, C3-A2",
    },
    "O2-M1": {"PZ-OZ": "Sleep-EDF parieto-occipital bipolar EEG"},
    "LOC": {"HORIZONTAL": "Sleep-EDF horizontal EOG, bipolar across both eyes"},
    "ROC": {},
    "Chin EMG": {},
}

_PREFIXES = ("EEG ", "EOG ", "EMG ")
_COMMON_REFERENCE = "REF"  # "F4-Ref": referential channel


@dataclass(frozen=True)
class DerivationSource:
    """Where a derivation comes from: `positive` (minus `negative` when computed) and why."""

    derivation: str
    positive: str
    negative: str | None
    kind: str  # "direct", "computed", "substituted" or "explicit"
    note: str


@dataclass
class ChannelPlan:
    """Resolved derivations, the ones that could not be resolved, and the file's channels."""

    sources: dict[str, DerivationSource]
    missing: list[str]
    available: list[str]

    @property
    def derivations(self) -> list[str]:
        return [d for d in DERIVATIONS if d in self.sources]

    @property
    def substitutions(self) -> list[str]:
        """Notes to show for every derivation not recorded as such (substituted or user-mapped)."""
        return [
            self.sources[d].note
            for d in self.derivations
            if self.sources[d].kind in ("substituted", "explicit")
        ]


def plan_channels(
    ch_names: Sequence[str],
    explicit_map: Mapping[str, str | Sequence[str]] | None = None,
    *,
    source: str | None = None,
) -> ChannelPlan:
    """Resolve the six derivations from `ch_names`; `explicit_map` entries win.

    `explicit_map` maps a derivation to a channel name or to [positive, negative]. `source`
    (a file name) prefixes error messages. Raises InputError when no EEG derivation resolves.
    """
    prefix = f"{source}: " if source else ""
    channels = _Channels(ch_names)
    sources: dict[str, DerivationSource] = {}
    for key, value in (explicit_map or {}).items():
        derivation = _canonical_derivation(key, prefix)
        sources[derivation] = _explicit_source(derivation, value, channels, prefix)
    for derivation in DERIVATIONS:
        if derivation not in sources:
            found = _resolve(derivation, channels)
            if found is not None:
                sources[derivation] = found
    if not any(d in sources for d in EEG_DERIVATIONS):
        raise InputError(
            f"{prefix}no usable EEG channel; channels found: {', '.join(ch_names) or 'none'} "
            f"(need one of {', '.join(EEG_DERIVATIONS)} or a substitute; give a channel map)"
        )
    missing = [d for d in DERIVATIONS if d not in sources]
    return ChannelPlan(sources, missing, list(ch_names))


def parse_channel_map(text: str, *, allow_file: bool = True) -> dict[str, str | list[str]]:
    """Parse `--channel-map`: a JSON object, or (CLI only: `allow_file`) the path of a file holding one.

    Keys are derivations (canonical spelling returned); values a channel name or [positive, negative].
    """
    where = "--channel-map"
    content = text.strip()
    if not content.startswith("{"):
        if not allow_file:
            raise InputError(f"channel map: expected a JSON object, found {content[:40]!r}")
        path = Path(content)
        if not path.is_file():
            raise InputError(f"{where}: neither a JSON object nor an existing file: {content!r}")
        where = str(path)
        try:
            content = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{where}: cannot read channel map: {error}") from error
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{where}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error
    if not isinstance(data, dict):
        raise InputError(f"{where}: channel map must be a JSON object, found {type(data).__name__}")
    result: dict[str, str | list[str]] = {}
    for key, value in data.items():
        derivation = _canonical_derivation(key, f"{where}: ")
        if isinstance(value, str):
            result[derivation] = value
        elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            result[derivation] = list(value)
        else:
            raise InputError(
                f"{where}: {key!r}: value must be a channel name or [positive, negative], found {value!r}"
            )
    return result


class _Channels:
    """The file's channels indexed by normalised name and by (positive, reference) electrodes."""

    def __init__(self, ch_names: Sequence[str]):
        self.names = list(ch_names)
        self.by_key: dict[str, str] = {}
        self.by_pair: dict[tuple[str, str | None], str] = {}
        for name in self.names:
            for key in _keys(name):
                self.by_key.setdefault(key, name)
                self.by_pair.setdefault(_split(key), name)

    def find(self, name: str) -> str | None:
        """The channel called `name`: exact, else by normalised name (case, prefix, ':')."""
        if name in self.names:
            return name
        return next((self.by_key[key] for key in _keys(name) if key in self.by_key), None)


def _resolve(derivation: str, channels: _Channels) -> DerivationSource | None:
    positives, references = RECOMMENDED[derivation]
    found = _match_pair(positives, references, channels)
    if found is not None:
        positive, negative, reason = found
        return _source(derivation, positive, negative, "direct" if negative is None else "computed", reason)
    for key, reason in DIRECT_ALIASES[derivation].items():
        if key in channels.by_key:
            return _source(derivation, channels.by_key[key], None, "direct", reason)
    for alt_positives, alt_references, alternate in ALTERNATE_DERIVATIONS[derivation]:
        found = _match_pair(alt_positives, alt_references, channels)
        if found is not None:
            positive, negative, reason = found
            reason = f"{alternate}; {reason}" if reason else alternate
            return _source(derivation, positive, negative, "substituted", reason)
    for key, reason in SUBSTITUTE_ALIASES[derivation].items():
        if key in channels.by_key:
            return _source(derivation, channels.by_key[key], None, "substituted", reason)
    return None


def _match_pair(positives, references, channels: _Channels) -> tuple[str, str | None, str] | None:
    """(channel, None, note) for a bipolar positive-reference channel, else (positive, negative,
    note) for two referential channels, else None."""
    for reference, reason in references.items():
        for positive in positives:
            name = channels.by_pair.get((positive, reference))
            if name is not None:
                return name, None, reason
    for positive in positives:
        for reference, reason in references.items():
            pos_name = channels.by_pair.get((positive, None))
            neg_name = channels.by_pair.get((reference, None))
            if pos_name is not None and neg_name is not None and positive != reference:
                return pos_name, neg_name, reason
    return None


def _explicit_source(derivation: str, value, channels: _Channels, prefix: str) -> DerivationSource:
    if isinstance(value, str):
        names = [value]
    elif isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, str) for v in value):
        names = list(value)
    else:
        raise InputError(
            f"{prefix}channel map entry {derivation!r}: expected a channel name or "
            f"[positive, negative], found {value!r}"
        )
    resolved = []
    for name in names:
        found = channels.find(name)
        if found is None:
            raise InputError(
                f"{prefix}channel map entry {derivation!r}: no channel {name!r} in the file; "
                f"channels found: {', '.join(channels.names) or 'none'}"
            )
        resolved.append(found)
    negative = resolved[1] if len(resolved) == 2 else None
    return _source(derivation, resolved[0], negative, "explicit", "")


def _canonical_derivation(key: str, prefix: str) -> str:
    for derivation in DERIVATIONS:
        if str(key).strip().lower() == derivation.lower():
            return derivation
    raise InputError(
        f"{prefix}unknown derivation {key!r} in channel map; expected one of {', '.join(DERIVATIONS)}"
    )


def _source(derivation: str, positive: str, negative: str | None, kind: str, reason: str) -> DerivationSource:
    """The source with its note, e.g. "F4-M1: EEG Fpz-Cz stands in (Sleep-EDF frontal bipolar EEG)"."""
    channel = positive if negative is None else f"{positive} - {negative}"
    if kind == "computed":
        note = f"{derivation}: computed {channel}"
    elif kind == "substituted":
        note = f"{derivation}: {channel} stands in"
    elif kind == "explicit":
        note = f"{derivation}: set by channel map: {channel}"
    else:
        note = f"{derivation}: {channel} as recorded"
    return DerivationSource(derivation, positive, negative, kind, note + (f" ({reason})" if reason else ""))


def _keys(name: str) -> list[str]:
    """Normalised forms of a channel name: upper case, ':' as '-', with and without the prefix."""
    key = re.sub(r"\s*-\s*", "-", " ".join(name.upper().replace(":", "-").split()))
    keys = [key]
    for prefix in _PREFIXES:
        if key.startswith(prefix) and key[len(prefix):][:1].isalpha():
            keys.append(key[len(prefix):])
    return keys


def _split(key: str) -> tuple[str, str | None]:
    """(positive, reference) of a normalised name; reference None for referential channels."""
    positive, _, reference = key.partition("-")
    if not reference or reference == _COMMON_REFERENCE:
        return positive, None
    return positive, reference
