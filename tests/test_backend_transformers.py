"""The transformers backend on a tiny random Qwen2.5-VL checkpoint (tests/tiny_vlm.py), CPU, no download.

Loaded through get_backend like a ModelVersion does, fed real 448x224 epoch images. Greedy decoding
makes the (gibberish) texts deterministic, so batching and prefix reuse must not change a token.
"""

import io
import json
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, UnidentifiedImageError

from datasets.constants import DERIVATIONS, EPOCH_SAMPLES, TARGET_SFREQ
from datasets.services.rendering import render_model_image
from inference.services.backends import EpochQuery, get_backend
from inference.services.backends import transformers_backend
from inference.services.backends.base import DEFAULT_SYSTEM_PROMPT
from tests.tiny_vlm import build_tiny_checkpoint

NEW_TOKENS = 24


@pytest.fixture(autouse=True)
def allowlist(settings, tmp_path_factory):
    """The operator allows checkpoints and prompt files in pytest's temporary folders."""
    settings.INFERENCE_CHECKPOINT_DIRS = settings.INFERENCE_PROMPT_DIRS = [tmp_path_factory.getbasetemp()]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-qwen25vl"))


@pytest.fixture(scope="module")
def short_prompt(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompt") / "short.md"
    path.write_text("You are a sleep technologist. Stage the target epoch (AASM): W, N1, N2, N3 or R.\n")
    return path


@pytest.fixture(scope="module")
def queries():
    """Three targets (epochs 1..3) of a five-epoch synthetic recording, each with its neighbours."""
    rng = np.random.default_rng(3)
    t = np.arange(EPOCH_SAMPLES) / TARGET_SFREQ
    signals = rng.normal(0, 12, (5, len(DERIVATIONS), EPOCH_SAMPLES))
    signals += 35 * np.sin(2 * np.pi * np.array([0.8, 2, 6, 10, 13])[:, None, None] * t)
    pngs = [render_model_image(s, DERIVATIONS) for s in signals]
    return [EpochQuery(epoch_id=100 + i, recording_id=1, index=i, images=tuple(pngs[i - 1 : i + 2])) for i in (1, 2, 3)]


def backend(checkpoint, **settings):
    return get_backend("transformers", {"checkpoint_dir": str(checkpoint), "max_new_tokens": NEW_TOKENS, **settings})


def texts(outputs):
    return [o.text for o in outputs]


def test_tiny_checkpoint_has_the_real_image_geometry(checkpoint, queries):
    """A 448x224 epoch image is 16 x 32 patches of 14 px, merged 2 x 2 into 128 tokens, as in SleepVLM-3B."""
    _, processor = transformers_backend.load(checkpoint.resolve(), torch.float32, "cpu")
    images = [Image.open(io.BytesIO(png)) for png in queries[0].images]
    inputs = processor(text=["<|vision_start|><|image_pad|><|vision_end|>" * 3], images=[images], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 16, 32]] * 3
    assert (inputs["input_ids"] == processor.image_token_id).sum() == 3 * 128


def test_processor_uses_the_authors_pixel_limits(checkpoint):
    """The checkpoint says max 12845056 pixels; the backend uses the authors' 3136..1003520 (1280 merged tokens)."""
    saved = json.loads((checkpoint / "preprocessor_config.json").read_text())["size"]
    assert saved == {"shortest_edge": 3136, "longest_edge": 12845056}
    _, processor = transformers_backend.load(checkpoint.resolve(), torch.float32, "cpu")
    size = processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (3136, 1003520)
    large = Image.new("RGB", (2016, 1008))  # 2.03 Mpx: kept by the checkpoint's limits, scaled down by the authors'
    grid = processor(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[[large]])["image_grid_thw"]
    t, h, w = grid[0].tolist()
    assert h * w * 14 * 14 <= 1003520 and t * h * w // 4 <= 1280


def test_generate_gets_the_published_chat_through_the_chat_template(checkpoint, queries, monkeypatch):
    """Token ids and pixels fed to generate equal the processor's chat template on the released message list."""
    model, processor = transformers_backend.load(checkpoint.resolve(), torch.float32, "cpu")
    calls = []
    generate = model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return generate(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    query = queries[0]
    backend(checkpoint, batch_size=1).predict([query])

    images = [Image.open(io.BytesIO(png)).convert("RGB") for png in query.images]
    published = [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT.read_text(encoding="utf-8")},
        {"role": "user", "content": [
            {"type": "text", "text": "Preceding epoch N\u20111: "}, {"type": "image", "image": images[0]},
            {"type": "text", "text": "**Target epoch N**: "}, {"type": "image", "image": images[1]},
            {"type": "text", "text": "Subsequent epoch N+1: "}, {"type": "image", "image": images[2]},
        ]},
    ]
    expected = processor.apply_chat_template(published, add_generation_prompt=True, tokenize=True, return_dict=True,
                                             return_tensors="pt")
    (fed,) = calls
    assert fed["past_key_values"] is not None  # the system turn's cache is still reused
    for key in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw"):
        assert torch.equal(fed[key], expected[key]), key
    text = processor.decode(fed["input_ids"][0])
    assert text.count("<|image_pad|>") == 3 * 128
    assert text.endswith("<|vision_end|><|im_end|>\n<|im_start|>assistant\n")  # no instruction after the last image


def test_one_output_per_query_in_order_deterministic(checkpoint, short_prompt, queries):
    first = backend(checkpoint, system_prompt_file=str(short_prompt), batch_size=3).predict(queries)
    assert [o.epoch_id for o in first] == [101, 102, 103]
    assert all(o.text.strip() and not o.error and o.probability is None for o in first)
    assert len(set(texts(first))) == 3  # the images matter: each target gets its own text
    again = backend(checkpoint, system_prompt_file=str(short_prompt), batch_size=3).predict(queries)
    assert texts(again) == texts(first)


def test_batching_does_not_change_outputs(checkpoint, short_prompt, queries):
    one = backend(checkpoint, system_prompt_file=str(short_prompt), batch_size=1).predict(queries)
    two = backend(checkpoint, system_prompt_file=str(short_prompt), batch_size=2).predict(queries)
    three = backend(checkpoint, system_prompt_file=str(short_prompt), batch_size=3).predict(queries)
    assert texts(one) == texts(two) == texts(three)


def test_prefix_cache_is_used_and_token_identical(checkpoint, queries, monkeypatch):
    """Default (long) system prompt: reusing its cache gives the same tokens as a full prefill."""
    model, _ = transformers_backend.load(checkpoint.resolve(), torch.float32, "cpu")
    caches = []
    generate = model.generate

    def spy(**kwargs):
        caches.append(kwargs.get("past_key_values"))
        return generate(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    full = backend(checkpoint, prefix_cache=False, batch_size=3).predict(queries)
    assert caches == [None]
    cached = backend(checkpoint, prefix_cache=True, batch_size=2)
    reused = cached.predict(queries)
    assert len(caches) == 3 and all(c is not None for c in caches[1:])
    prefix_tokens = cached._prefix[1].shape[1]
    assert prefix_tokens > 1000 and caches[2].get_seq_length() > prefix_tokens  # copies, grown by generate
    assert texts(reused) == texts(full)
    assert len(set(texts(full))) == 3
    # The comparison has teeth: a system-turn cache computed 7 positions off changes the texts.
    prefix, ids, _ = cached._prefix
    shifted = (torch.arange(prefix_tokens) + 7).view(1, 1, -1).expand(3, 1, -1)
    with torch.inference_mode():
        cached._prefix = (prefix, ids, model(input_ids=ids, position_ids=shifted, use_cache=True).past_key_values)
    assert texts(cached.predict(queries)) != texts(full)


def test_sampling_runs(checkpoint, short_prompt, queries):
    outputs = backend(checkpoint, system_prompt_file=str(short_prompt), temperature=0.7, top_p=0.8).predict(queries)
    assert [o.epoch_id for o in outputs] == [101, 102, 103]


def test_fp32_on_cpu(checkpoint):
    chosen = backend(checkpoint, device="cpu")
    assert (chosen.device, chosen.dtype) == ("cpu", torch.float32)
    model, _ = transformers_backend.load(chosen.checkpoint_dir, chosen.dtype, chosen.device)
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert backend(checkpoint, device="cpu", dtype="bfloat16").dtype == torch.bfloat16


def test_fingerprint_follows_checkpoint_config(checkpoint, tmp_path):
    for name in ("config.json", "generation_config.json"):
        shutil.copy(checkpoint / name, tmp_path / name)
    before = backend(tmp_path).fingerprint()
    assert set(before) == {"system_prompt_sha256", "user_turn_sha256", "config_sha256", "generation_config_sha256",
                           "image_pixels"}
    assert before == backend(checkpoint).fingerprint()
    config = tmp_path / "config.json"
    config.write_text(config.read_text().replace('"hidden_act": "silu"', '"hidden_act": "gelu"', 1))
    after = backend(tmp_path).fingerprint()
    assert after["config_sha256"] != before["config_sha256"]
    assert after["generation_config_sha256"] == before["generation_config_sha256"]


def test_missing_checkpoint_is_a_clear_error(checkpoint, tmp_path):
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        get_backend("transformers", {"checkpoint_dir": str(missing)})
    with pytest.raises(ValueError, match="checkpoint_dir"):
        get_backend("transformers", {})
    with pytest.raises(ValueError, match="dtype"):
        get_backend("transformers", {"checkpoint_dir": str(checkpoint), "dtype": "int8"})


def test_prefix_cache_refused_on_unverified_transformers(checkpoint, monkeypatch):
    monkeypatch.setattr(transformers_backend.transformers, "__version__", "4.57.1")
    with pytest.raises(ValueError, match="prefix_cache"):
        backend(checkpoint)
    assert backend(checkpoint, prefix_cache=False).prefix_cache is False


def test_batch_failure_raises(checkpoint, short_prompt, queries):
    broken = EpochQuery(epoch_id=1, recording_id=1, index=1, images=(b"not a png",) * 3)
    with pytest.raises(UnidentifiedImageError):
        backend(checkpoint, system_prompt_file=str(short_prompt)).predict([queries[0], broken])


def test_stage_probability_comes_from_the_generated_tokens_logits(checkpoint, short_prompt, queries, monkeypatch):
    """The (text, log-probability) of every generated token that stage_probability reads equal a teacher-forced
    forward pass over prompt + output; its result is the output's probability."""
    seen = []
    monkeypatch.setattr(transformers_backend, "stage_probability", lambda tokens: seen.append(tokens) or 0.25)
    tiny = backend(checkpoint, system_prompt_file=str(short_prompt), batch_size=1, prefix_cache=False)
    [output] = tiny.predict(queries[:1])
    assert output.probability == 0.25
    [tokens] = seen
    assert len(tokens) == NEW_TOKENS and "".join(text for text, _ in tokens) == output.text

    model, processor = transformers_backend.load(checkpoint.resolve(), torch.float32, "cpu")
    user = [{"type": "text", "text": v} if kind == "text" else {"type": "image"} for kind, v in transformers_backend.USER_TURN]
    chat = [{"role": "system", "content": short_prompt.read_text()}, {"role": "user", "content": user}]
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    images = [Image.open(io.BytesIO(png)).convert("RGB") for png in queries[0].images]
    inputs = processor(text=[prompt], images=[images], return_tensors="pt")
    generated = model.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS,
                               pad_token_id=processor.tokenizer.pad_token_id)
    new = generated[0, inputs["input_ids"].shape[1]:]
    model.model.rope_deltas = None  # positions from this pass's images, not the last generate call's
    extra = {key: value for key, value in inputs.items() if key not in ("input_ids", "attention_mask")}
    if "mm_token_type_ids" in extra:  # the output's tokens are text
        extra["mm_token_type_ids"] = torch.nn.functional.pad(extra["mm_token_type_ids"], (0, len(new)))
    with torch.inference_mode():
        logits = model(input_ids=generated, attention_mask=torch.ones_like(generated), **extra).logits
    forced = logits[0, inputs["input_ids"].shape[1] - 1 : -1].log_softmax(-1).gather(-1, new[:, None])[:, 0]
    assert [logprob for _, logprob in tokens] == pytest.approx(forced.tolist(), abs=1e-4)
