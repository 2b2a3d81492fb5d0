"""SleepVLM in-process with Hugging Face transformers: a Qwen2.5-VL checkpoint (LoRA merged) in a local folder.

Settings: checkpoint_dir (required, under INFERENCE_CHECKPOINT_DIRS: config, weights, tokenizer,
preprocessor config, as save_pretrained writes them); dtype ("auto": bfloat16 on CUDA, float32 on CPU;
or bfloat16, float16, float32); device ("auto", "cuda", "cpu"); batch_size (queries per generate call,
default 8); prefix_cache (default true, needs transformers >= 5.17: the key/value cache of the system
turn, identical for every query, is computed once and reused by every batch); system_prompt_file (under
INFERENCE_PROMPT_DIRS); temperature, top_p, max_new_tokens.
A temperature <= 1e-5 decodes greedily (what the published 1e-6 means). The rest of decoding (repetition
penalty, end-of-turn ids) comes from the checkpoint's generation_config.json, as vLLM also takes it. The chat
is the published one (system prompt, then USER_TURN) through the checkpoint's chat template; images are
resized within the authors' pixel limits (IMAGE_PIXELS). The stage's probability is read from the logits of
the tokens that spell it (softmax of the raw logits, before any sampling warpers).

Models load once per process and (folder, dtype, device). A failing batch raises: the job layer retries.
"""

from __future__ import annotations

import copy
import hashlib
import io
from pathlib import Path

import torch
import transformers
from packaging.version import Version
from PIL import Image
from transformers import AutoModelForImageTextToText, Qwen2_5_VLProcessor

from inference.services.backends.allowlist import allowed_path
from inference.services.backends.base import USER_TURN, Backend, EpochQuery, RawOutput, stage_probability

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
GREEDY_TEMPERATURE = 1e-5
# The authors' image processor limits (whatever the checkpoint's preprocessor_config.json says): a 448 x 224
# epoch image keeps its size, 16 x 8 merged patches = 128 visual tokens.
IMAGE_PIXELS = {"min_pixels": 3136, "max_pixels": 1003520}
# Prefix reuse gives token-identical greedy outputs on 5.17 and 5.23 (tests/test_backend_transformers.py);
# releases before 5 drop the images of a generate call that starts from a non-empty cache.
PREFIX_CACHE_MIN_TRANSFORMERS = Version("5.17")

_LOADED: dict[tuple[str, torch.dtype, str], tuple] = {}


class ImageOnlyProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without its video processor, which needs torchvision (epochs are still images)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)


def load(checkpoint_dir: Path, dtype: torch.dtype, device: str) -> tuple:
    """(model, processor) of a local checkpoint folder, loaded once per process."""
    key = (str(checkpoint_dir), dtype, device)
    if key not in _LOADED:
        model = AutoModelForImageTextToText.from_pretrained(checkpoint_dir, dtype=dtype, local_files_only=True)
        processor = ImageOnlyProcessor.from_pretrained(checkpoint_dir, local_files_only=True, **IMAGE_PIXELS)
        processor.tokenizer.padding_side = "left"
        _LOADED[key] = (model.to(device).eval(), processor)
    return _LOADED[key]


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, settings: dict):
        super().__init__(settings)
        if not self.settings.get("checkpoint_dir"):
            raise ValueError("transformers backend: missing required setting checkpoint_dir")
        self.checkpoint_dir = allowed_path("checkpoint_dir", self.settings["checkpoint_dir"])
        if not (self.checkpoint_dir / "config.json").is_file():
            raise ValueError(f"transformers backend: checkpoint_dir {self.checkpoint_dir} holds no config.json")
        device = self.settings.get("device", "auto")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        dtype = self.settings.get("dtype", "auto")
        if dtype != "auto" and dtype not in DTYPES:
            raise ValueError(f"transformers backend: dtype must be auto or one of {', '.join(DTYPES)}, got {dtype!r}")
        cuda = self.device.startswith("cuda")
        self.dtype = DTYPES[dtype] if dtype != "auto" else torch.bfloat16 if cuda else torch.float32
        self.prefix_cache = bool(self.settings.get("prefix_cache", True))
        if self.prefix_cache and Version(transformers.__version__) < PREFIX_CACHE_MIN_TRANSFORMERS:
            raise ValueError(
                f"transformers backend: prefix_cache needs transformers >= {PREFIX_CACHE_MIN_TRANSFORMERS} "
                f"(installed {transformers.__version__}); set prefix_cache false"
            )
        self._prefix: tuple[str, torch.Tensor, object] | None = None  # system turn text, its token ids, its cache

    def fingerprint(self) -> dict:
        digests = {}
        for key, name in (("config_sha256", "config.json"), ("generation_config_sha256", "generation_config.json")):
            if (path := self.checkpoint_dir / name).is_file():
                digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        return {**super().fingerprint(), **digests, "image_pixels": IMAGE_PIXELS}

    def predict(self, queries: list[EpochQuery]) -> list[RawOutput]:
        model, processor = load(self.checkpoint_dir, self.dtype, self.device)
        system = [{"role": "system", "content": self.system_prompt()}]
        user = [{"type": "text", "text": value} if kind == "text" else {"type": "image"} for kind, value in USER_TURN]
        chat = system + [{"role": "user", "content": user}]
        prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        prefix = processor.apply_chat_template(system, tokenize=False) if self.prefix_cache else None
        outputs = []
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start : start + self.batch_size]
            images = [[Image.open(io.BytesIO(png)).convert("RGB") for png in query.images] for query in batch]
            inputs = processor(text=[prompt] * len(batch), images=images, padding=True, return_tensors="pt")
            texts, probabilities = self._generate(model, processor, inputs.to(model.device), prefix)
            outputs.extend(RawOutput(epoch_id=q.epoch_id, text=text, probability=probability)
                           for q, text, probability in zip(batch, texts, probabilities, strict=True))
        return outputs

    @torch.inference_mode()
    def _generate(self, model, processor, inputs, prefix: str | None) -> tuple[list[str], list[float | None]]:
        decoding = self.decoding()
        temperature = float(decoding["temperature"])
        greedy = temperature <= GREEDY_TEMPERATURE
        sampling = {} if greedy else {"temperature": temperature, "top_p": float(decoding["top_p"])}
        past = self._prefix_cache(model, processor, prefix, inputs) if prefix is not None else None
        if past is not None:
            # Qwen2.5-VL keeps the last call's rope deltas; from a non-empty cache, transformers 5.17 would apply
            # them to this batch's positions instead of recomputing them from the images (5.23 recomputes).
            model.model.rope_deltas = None
        generated = model.generate(
            **inputs,
            past_key_values=past,
            do_sample=not greedy,
            max_new_tokens=int(decoding["max_new_tokens"]),
            pad_token_id=processor.tokenizer.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
            **sampling,
        )
        new = generated.sequences[:, inputs["input_ids"].shape[1] :]
        texts = processor.batch_decode(new, skip_special_tokens=True)
        # one step at a time: stacking every step's float32 log-softmax held batch x steps x vocab at once
        # (82 GiB peak at batch 128 on an H200, against 22 GiB without the probabilities)
        logprobs = torch.stack([step.float().log_softmax(-1).gather(-1, new[:, t : t + 1])[:, 0]
                                for t, step in enumerate(generated.logits)], dim=1)
        decode = processor.tokenizer.decode
        probabilities = [stage_probability([(decode([token], skip_special_tokens=True), float(logprob))
                                            for token, logprob in zip(row.tolist(), row_logprobs.tolist())])
                         for row, row_logprobs in zip(new, logprobs)]
        return texts, probabilities

    def _prefix_cache(self, model, processor, prefix: str, inputs):
        """The system turn's key/value cache copied for each row; None where a row is padded or starts otherwise.

        All queries of one image size have the same length, so a batch needs no padding and every row starts
        with the system turn at positions 0..n-1: its cache is the same as in a full prefill.
        """
        if self._prefix is None or self._prefix[0] != prefix:
            ids = processor.tokenizer(prefix, return_tensors="pt").input_ids.to(model.device)
            self._prefix = (prefix, ids, model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values)
        _, ids, cache = self._prefix
        input_ids = inputs["input_ids"]
        rows = len(input_ids)
        if not inputs["attention_mask"].all() or not torch.equal(input_ids[:, : ids.shape[1]], ids.expand(rows, -1)):
            return None
        cache = copy.deepcopy(cache)
        cache.batch_repeat_interleave(rows)
        return cache
