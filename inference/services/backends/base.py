"""The contract every backend follows (spec/sleepvlm.md): three images in, SleepVLM JSON text out."""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from inference.services.backends.allowlist import allowed_path, check_settings

DEFAULT_SYSTEM_PROMPT = Path(__file__).resolve().parent.parent.parent / "prompts" / "sleepvlm_default.md"

# The user turn of SleepVLM's training and of the authors' inference code, exactly: (kind, value) with kind
# "text" or "image" (value: 0 preceding, 1 target, 2 subsequent); the first label has U+2011, a non-breaking hyphen.
USER_TURN = (
    ("text", "Preceding epoch N\u20111: "),
    ("image", 0),
    ("text", "**Target epoch N**: "),
    ("image", 1),
    ("text", "Subsequent epoch N+1: "),
    ("image", 2),
)

# Near-greedy decoding as published for SleepVLM.
DEFAULT_DECODING = {"temperature": 1e-6, "top_p": 0.8, "max_new_tokens": 1024}


@dataclass(frozen=True)
class EpochQuery:
    """One target epoch. Image backends read `images`; the baseline reads the night's signals."""

    epoch_id: int
    recording_id: int
    index: int
    images: tuple[bytes, bytes, bytes] | None = None  # PNG: preceding, target, subsequent
    signal_file: str = ""  # storage name of the recording's prepared signals (100 Hz, µV)
    derivations: tuple[str, ...] = ()
    epoch_starts: tuple[int, ...] = ()  # sample index of every epoch of the recording, in order


@dataclass
class RawOutput:
    epoch_id: int
    text: str  # the model's raw text, always stored
    probability: float | None = None  # stage probability where the backend has one (see stage_probability)
    origin_note: str = ""  # where the stage came from, beyond the model version (the baseline's classifier)
    error: str = ""  # transport or runtime failure (stored as a failed prediction)


class Backend:
    """Base class: `predict` maps queries to outputs (same order); `fingerprint` feeds the content hash.

    Settings beyond the operator's allowlists are refused here too, whatever the database holds.
    """

    name = ""  # the ModelVersion backend name
    needs_images = True

    def __init__(self, settings: dict):
        check_settings(self.name, settings)
        self.settings = dict(settings)
        self.batch_size = int(self.settings.get("batch_size", 8))  # queries per predict call of the job layer
        if self.batch_size < 1:
            raise ValueError(f"{type(self).__name__}: batch_size must be >= 1")

    def predict(self, queries: list[EpochQuery]) -> list[RawOutput]:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        """What besides the settings determines the outputs (checkpoint config, prompt text, user turn...)."""
        if not self.needs_images:
            return {}
        return {"system_prompt_sha256": sha256_text(self.system_prompt()),
                "user_turn_sha256": sha256_text(repr(USER_TURN))}

    def system_prompt(self) -> str:
        chosen = self.settings.get("system_prompt_file")
        path = allowed_path("system_prompt_file", chosen) if chosen else DEFAULT_SYSTEM_PROMPT
        try:
            return path.read_bytes().decode("utf-8")  # unchanged: no newline translation
        except OSError as exc:
            raise ValueError(f"system prompt file {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"system prompt file {path}: not UTF-8 text (byte {exc.start})") from None

    def decoding(self) -> dict:
        return {key: self.settings.get(key, value) for key, value in DEFAULT_DECODING.items()}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


STAGE_VALUE = re.compile(r'"sleep_stage"\s*:\s*"(W|N1|N2|N3|R)"')


def stage_probability(tokens: list[tuple[str, float]]) -> float | None:
    """The probability of the stage the output names: exp of the summed log-probabilities of the generated
    tokens that spell the last `"sleep_stage"` value; None when the text names no stage.

    `tokens` are (text, log-probability) of each generated token, in order (vLLM's `logprobs`, or the
    transformers backend's logits)."""
    matches = list(STAGE_VALUE.finditer("".join(token for token, _ in tokens)))
    if not matches:
        return None
    start, end = matches[-1].span(1)
    total, offset = 0.0, 0
    for token, logprob in tokens:
        if offset < end and offset + len(token) > start:
            total += logprob
        offset += len(token)
    return math.exp(total)
