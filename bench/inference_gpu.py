"""Throughput of the transformers backend: batched generation against one epoch at a time, in one run.

On CUDA: a model of the Qwen2.5-VL-3B-Instruct architecture (SleepVLM-3B's) with random bf16 weights,
built here (no download) with a locally trained tokenizer, saved to a temporary folder and loaded back
through TransformersBackend, as a model version runs it. Without CUDA: the tiny test model on CPU, with
fewer epochs ("model": "tiny"). Inputs are real epoch images: synthetic signals rendered with
render_model_image, each target with its neighbours, the platform's default system prompt (cache reused).
Every epoch generates exactly --new-tokens tokens (the checkpoint's generation config sets
min_new_tokens, the backend max_new_tokens; EOS cannot end it early), which the script checks.
Needs torch, transformers, tokenizers, numpy, Pillow; Django only for the backend's checkpoint allowlist
(configured here to the temporary folder, no project settings). Last line of output: one JSON object.

    python bench/inference_gpu.py [--batch-size N] [--epochs N] [--unbatched-epochs N] [--new-tokens 300]
                                  [--no-prefix-cache]
"""

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from django.conf import settings as django_settings  # noqa: E402
from transformers import Qwen2_5_VLForConditionalGeneration  # noqa: E402

from datasets.constants import DERIVATIONS, EPOCH_SAMPLES, TARGET_SFREQ  # noqa: E402
from datasets.services.rendering import render_model_image  # noqa: E402
from inference.services.backends import EpochQuery, get_backend  # noqa: E402
from inference.services.backends import transformers_backend  # noqa: E402
from inference.services.backends.base import DEFAULT_SYSTEM_PROMPT  # noqa: E402
from tests.tiny_vlm import (  # noqa: E402
    build_qwen25_vl_3b_config,
    build_tiny_checkpoint,
    build_tokenizer,
    generation_config,
    save_processor,
)

DEFAULTS = {  # by CUDA availability
    True: {"batch_size": 128, "epochs": 256, "unbatched_epochs": 4},
    False: {"batch_size": 8, "epochs": 16, "unbatched_epochs": 4},
}


def build_3b_checkpoint(path: Path, new_tokens: int) -> None:
    """Qwen2.5-VL-3B sizes, random bf16 weights initialised on the GPU; tokenizer trained on the prompt."""
    tokenizer = build_tokenizer(2000, texts=(DEFAULT_SYSTEM_PROMPT.read_text(encoding="utf-8"),))
    config = build_qwen25_vl_3b_config(tokenizer)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config = generation_config(config, min_new_tokens=new_tokens)
    model.save_pretrained(path)
    save_processor(path, tokenizer)
    del model
    torch.cuda.empty_cache()


def build_tiny(path: Path, new_tokens: int) -> None:
    build_tiny_checkpoint(path)
    generation_config(transformers.AutoConfig.from_pretrained(path), min_new_tokens=new_tokens).save_pretrained(path)


def epoch_queries(n: int) -> list[EpochQuery]:
    """n targets with neighbours from n + 2 rendered epochs of noise plus a drifting rhythm."""
    rng = np.random.default_rng(0)
    t = np.arange(EPOCH_SAMPLES) / TARGET_SFREQ
    pngs = [
        render_model_image(
            rng.normal(0, 10, (len(DERIVATIONS), EPOCH_SAMPLES)) + 30 * np.sin(2 * np.pi * rng.uniform(0.5, 14) * t),
            DERIVATIONS,
        )
        for _ in range(n + 2)
    ]
    return [EpochQuery(epoch_id=i, recording_id=1, index=i, images=tuple(pngs[i - 1 : i + 2])) for i in range(1, n + 1)]


def rate(backend, queries) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    outputs = backend.predict(queries)
    assert [o.epoch_id for o in outputs] == [q.epoch_id for q in queries]
    return len(queries) / (time.perf_counter() - start)


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, value in DEFAULTS[cuda].items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=value)
    parser.add_argument("--new-tokens", type=int, default=300)
    parser.add_argument("--no-prefix-cache", action="store_true", help="prefill the system prompt for every batch")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder)
        django_settings.configure(INFERENCE_CHECKPOINT_DIRS=[checkpoint], INFERENCE_PROMPT_DIRS=[])
        started = time.perf_counter()
        (build_3b_checkpoint if cuda else build_tiny)(checkpoint, args.new_tokens)
        queries = epoch_queries(args.epochs)
        settings = {
            "checkpoint_dir": str(checkpoint),
            "max_new_tokens": args.new_tokens,
            "prefix_cache": not args.no_prefix_cache,
        }
        batched = get_backend("transformers", {**settings, "batch_size": args.batch_size})
        single = get_backend("transformers", {**settings, "batch_size": 1})
        model, _ = transformers_backend.load(batched.checkpoint_dir, batched.dtype, batched.device)
        print(f"built and loaded in {time.perf_counter() - started:.1f} s", flush=True)

        calls = []  # (prompt tokens, new tokens) of every generate call
        generate = model.generate

        def counting(**kwargs):
            out = generate(**kwargs)
            calls.append((kwargs["input_ids"].shape[1], out.sequences.shape[1] - kwargs["input_ids"].shape[1]))
            return out

        model.generate = counting
        with warnings.catch_warnings():  # a short warm-up: min_new_tokens cannot be met, which is fine
            warnings.simplefilter("ignore", UserWarning)
            get_backend("transformers", {**settings, "batch_size": 2, "max_new_tokens": 4}).predict(queries[:2])
        calls.clear()
        epochs_per_s = rate(batched, queries)
        print(f"batched: {epochs_per_s:.2f} epochs/s", flush=True)
        unbatched_epochs_per_s = rate(single, queries[: args.unbatched_epochs])
        print(f"one at a time: {unbatched_epochs_per_s:.3f} epochs/s", flush=True)
        assert {new for _, new in calls} == {args.new_tokens}, calls

    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "model": "qwen2.5-vl-3b architecture, random weights" if cuda else "tiny",
        "dtype": str(batched.dtype).removeprefix("torch."),
        "epochs_per_s": round(epochs_per_s, 3),
        "unbatched_epochs_per_s": round(unbatched_epochs_per_s, 4),
        "speedup": round(epochs_per_s / unbatched_epochs_per_s, 2),
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "unbatched_epochs": args.unbatched_epochs,
        "new_tokens": args.new_tokens,
        "prompt_tokens": calls[0][0],
        "prefix_cache": batched.prefix_cache,
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
