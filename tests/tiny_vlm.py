"""A tiny, randomly initialised Qwen2.5-VL checkpoint built offline (no hub access), for tests and the bench.

`build_tiny_checkpoint(path)` writes what the public Qwen2.5-VL checkpoints hold: config.json,
generation_config.json, safetensors weights, a byte-level BPE tokenizer with Qwen's special tokens and
chat template (trained here on a small corpus), and preprocessor_config.json (Qwen2VLImageProcessor),
so production code loads it with `from_pretrained` exactly as it loads SleepVLM-3B. The vision
geometry is the real one (patch 14, merge 2, temporal patch 2): a 448x224 image gives 128 merged
tokens. `build_qwen25_vl_3b_config` gives the Qwen2.5-VL-3B-Instruct sizes, for the GPU bench.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

# Qwen2.5-VL's special tokens in their original order; ids follow the trained vocabulary here.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The chat template of Qwen2.5-VL-Instruct (chat_template.json of the public checkpoints).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = (
    '```json\n{"reasoning_text": "Alpha rhythm over O2-M1 for most of the epoch; W.1 applies.", '
    '"applicable_rules": ["W.1", "W.2"], "sleep_stage": "W"}\n```',
    '{"reasoning_text": "A sleep spindle at 12 s on C4-M1, 13 Hz, 0.8 s.", "applicable_rules": ["N2.1"], '
    '"sleep_stage": "N2"}',
    '{"applicable_rules": ["N3.1"], "sleep_stage": "N3"} {"applicable_rules": ["R.1", "R.2"], "sleep_stage": "R"}',
    '{"applicable_rules": ["N1.1", "N1.2"], "sleep_stage": "N1"} N2.2 N2.3 N2.4 R.3 MBM.1',
    "Preceding epoch N\u20111: **Target epoch N**: Subsequent epoch N+1: ",
    "F4-M1 C4-M1 O2-M1 LOC ROC Chin EMG: delta, theta, alpha, beta, slow waves, K-complexes, vertex sharp waves.",
    "You are a sleep technologist scoring polysomnography (PSG) in 30-second epochs under the AASM manual.",
)

# Qwen2.5-VL-Instruct's preprocessor_config.json values (min/max pixels as `size`).
IMAGE_PROCESSOR = {
    "size": {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16384},
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
}


def build_tokenizer(vocab_size: int = 600, texts: tuple[str, ...] = ()):
    """A Qwen2Tokenizer (byte-level BPE trained on CORPUS + texts) with Qwen's special tokens and chat template."""
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(CORPUS + tuple(texts), trainer=trainer)
    trained = json.loads(bpe.model.__getstate__())
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=trained["vocab"], merges=merges, chat_template=CHAT_TEMPLATE)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.eos_token = "<|im_end|>"
    return tokenizer


def _token_ids(tokenizer) -> dict:
    ids = dict(zip(SPECIAL_TOKENS, tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)), strict=True))
    return {
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
    }


def _config(tokenizer, text: dict, vision: dict):
    ids = _token_ids(tokenizer)
    token_ids = {k: ids[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    return Qwen2_5_VLConfig(
        text_config={"hidden_act": "silu", "rms_norm_eps": 1e-6, "use_sliding_window": False, **text, **token_ids},
        vision_config={
            "hidden_act": "silu",
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "tokens_per_second": 2,
            **vision,
        },
        **{k: v for k, v in ids.items() if k.startswith(("vision_", "image_", "video_"))},
    )


def build_tiny_config(tokenizer):
    """Qwen2.5-VL with 2 text layers of width 64 and 2 vision blocks of width 32.

    Weights are drawn wider than the usual 0.02 so that the random model's greedy text varies with the
    images and from token to token (with 0.02 it repeats one token whatever the input).
    """
    return _config(
        tokenizer,
        text={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            "tie_word_embeddings": True,
            "initializer_range": 0.3,
        },
        vision={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [1],
            "initializer_range": 0.3,
        },
    )


def build_qwen25_vl_3b_config(tokenizer):
    """The Qwen2.5-VL-3B-Instruct architecture (its config.json), token ids taken from `tokenizer`."""
    return _config(
        tokenizer,
        text={
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "max_position_embeddings": 128000,
            "max_window_layers": 70,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            "tie_word_embeddings": True,
        },
        vision={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 2048,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
    )


def save_processor(path: Path, tokenizer) -> None:
    """Tokenizer files, chat template and preprocessor_config.json, as in the public checkpoints."""
    tokenizer.save_pretrained(path)
    Qwen2VLImageProcessorPil(**IMAGE_PROCESSOR).save_pretrained(path)


def generation_config(config, **overrides) -> GenerationConfig:
    """generation_config.json as in the public checkpoints: a turn ends with <|im_end|> or <|endoftext|>."""
    text = config.text_config
    return GenerationConfig(
        bos_token_id=text.bos_token_id,
        eos_token_id=[text.eos_token_id, text.pad_token_id],
        pad_token_id=text.pad_token_id,
        **overrides,
    )


def build_tiny_checkpoint(path: Path, *, seed: int = 0) -> Path:
    """Write a random tiny Qwen2.5-VL checkpoint (fp32 safetensors, under 1 MB) loadable with from_pretrained."""
    path = Path(path)
    tokenizer = build_tokenizer()
    config = build_tiny_config(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config = generation_config(config)
    model.save_pretrained(path)
    save_processor(path, tokenizer)
    return path
