"""The openai backend against a fake vLLM chat-completions server on 127.0.0.1. No database."""

import base64
import json
import socket
import time

import numpy as np
import pytest

from datasets.constants import DERIVATIONS, EPOCH_SAMPLES
from datasets.services.rendering import render_model_image
from inference.services.backends import get_backend
from inference.services.backends.base import DEFAULT_DECODING, DEFAULT_SYSTEM_PROMPT, USER_TURN, EpochQuery, sha256_text
from inference.services.backends.openai_backend import OpenAIBackend
from tests.fake_vllm import answer, fake, short_hash  # noqa: F401  (fixture)

MODEL = "Feng613/SleepVLM-3B"
KEY_ENV = "SLEEPVLM_TEST_API_KEY"


@pytest.fixture(autouse=True)
def allowlist(settings, tmp_path_factory):
    """The operator allows the test's key variable and prompt files in pytest's temporary folders."""
    settings.INFERENCE_API_KEY_ENVS = ["OPENAI_API_KEY", KEY_ENV]
    settings.INFERENCE_PROMPT_DIRS = [tmp_path_factory.getbasetemp()]


@pytest.fixture(scope="module")
def pngs():
    """Sixteen distinct real model-input PNGs."""
    rng = np.random.default_rng(3)
    return [render_model_image(rng.normal(0, 20, (len(DERIVATIONS), EPOCH_SAMPLES)), DERIVATIONS) for _ in range(16)]


def queries(pngs, count):
    return [EpochQuery(epoch_id=100 + i, recording_id=1, index=i + 1, images=(pngs[i], pngs[i + 1], pngs[i + 2]))
            for i in range(count)]


def backend(fake, **settings):
    return OpenAIBackend({"base_url": fake.base_url, "model": MODEL, "backoff_s": 0.01, "timeout_s": 5, **settings})


def test_request_shape_and_api_key(fake, pngs, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-secret-1")
    outputs = backend(fake, api_key_env=KEY_ENV, temperature=0.25, top_p=0.5, max_new_tokens=77).predict(queries(pngs, 1))

    assert len(fake.requests) == 1
    _, headers, body = fake.requests[0]
    assert headers["authorization"] == "Bearer sk-test-secret-1"
    assert body["model"] == MODEL
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (77, 0.25, 0.5)
    assert [(o.epoch_id, o.text, o.error) for o in outputs] == [(100, answer(short_hash(pngs[1])), "")]


def test_messages_sent_are_the_published_chat(fake, pngs, tmp_path):
    """The JSON body on the wire: system = the prompt file's text; user = the released six parts, nothing else."""
    prompt = tmp_path / "fine.md"
    text = "You are SleepVLM (fine prompt) — stage the target epoch.\r\n\r\n  Trailing spaces kept.  \n"
    prompt.write_bytes(text.encode("utf-8"))  # CRLF lines stay CRLF: the prompt goes out unchanged
    query = queries(pngs, 1)[0]
    backend(fake, system_prompt_file=str(prompt)).predict([query])

    def image(png):
        return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}

    published = [
        {"role": "system", "content": text},
        {"role": "user", "content": [
            {"type": "text", "text": "Preceding epoch N\u20111: "}, image(pngs[0]),
            {"type": "text", "text": "**Target epoch N**: "}, image(pngs[1]),
            {"type": "text", "text": "Subsequent epoch N+1: "}, image(pngs[2]),
        ]},
    ]
    _, _, body = fake.requests[0]
    assert body["messages"] == published
    assert body["messages"][1]["content"][0]["text"] == "Preceding epoch N" + chr(0x2011) + "1: "


def test_defaults_placeholder_key_and_published_decoding(fake, pngs, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    outputs = backend(fake).predict(queries(pngs, 1))
    _, headers, body = fake.requests[0]
    assert headers["authorization"] == "Bearer EMPTY"
    assert body["messages"][0]["content"] == DEFAULT_SYSTEM_PROMPT.read_text(encoding="utf-8")
    assert body["max_tokens"] == DEFAULT_DECODING["max_new_tokens"]
    assert (body["temperature"], body["top_p"]) == (DEFAULT_DECODING["temperature"], DEFAULT_DECODING["top_p"])
    assert outputs[0].error == ""


def test_outputs_in_query_order_with_bounded_concurrency(fake, pngs):
    batch = queries(pngs, 12)
    # Later queries answer sooner, so completion order is the reverse of query order.
    fake.delays = {short_hash(q.images[1]): 0.02 * (12 - i) for i, q in enumerate(batch)}
    outputs = backend(fake, concurrency=3).predict(batch)

    assert [o.epoch_id for o in outputs] == [q.epoch_id for q in batch]
    assert [o.text for o in outputs] == [answer(short_hash(q.images[1])) for q in batch]
    assert all(o.error == "" for o in outputs)
    assert len(fake.requests) == 12
    assert 1 < fake.max_in_flight <= 3


@pytest.mark.parametrize("status", [500, 429, 503])
def test_transient_errors_are_retried_with_backoff(fake, pngs, status):
    fake.fail_first, fake.fail_status = 2, status
    outputs = backend(fake, max_retries=3, backoff_s=0.05).predict(queries(pngs, 1))

    assert (outputs[0].text, outputs[0].error) == (answer(short_hash(pngs[1])), "")
    times = [t for t, _, _ in fake.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1  # exponential: 0.05, then 0.1


def test_exhausted_retries_give_error_not_exception(fake, pngs):
    fake.fail_first, fake.fail_status = 100, 500
    outputs = backend(fake, max_retries=2).predict(queries(pngs, 2))

    assert [o.epoch_id for o in outputs] == [100, 101]
    for output in outputs:
        assert output.text == ""
        assert "HTTP 500" in output.error and "3 attempts" in output.error
    assert len(fake.requests) == 6


def test_client_errors_are_not_retried(fake, pngs):
    fake.fail_first, fake.fail_status = 100, 400
    outputs = backend(fake, max_retries=3).predict(queries(pngs, 1))
    assert "HTTP 400" in outputs[0].error
    assert len(fake.requests) == 1


def test_timeout_gives_error_after_retries(fake, pngs):
    fake.delay_s = 1.5
    started = time.monotonic()
    outputs = backend(fake, timeout_s=0.2, max_retries=1).predict(queries(pngs, 1))

    assert outputs[0].text == ""
    assert "Timeout" in outputs[0].error and "2 attempts" in outputs[0].error
    assert len(fake.requests) == 2
    assert time.monotonic() - started < 1.2


def test_connection_refused_gives_error(pngs):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens there
    outputs = OpenAIBackend({"base_url": f"http://127.0.0.1:{port}/v1", "model": MODEL, "max_retries": 1,
                             "backoff_s": 0.01, "timeout_s": 2}).predict(queries(pngs, 1))
    assert "APIConnectionError" in outputs[0].error and "2 attempts" in outputs[0].error


@pytest.mark.parametrize("raw_body", [b"not json", b'{"choices": []}', b'{"choices": [{"message": {}}]}'])
def test_unusable_response_gives_error(fake, pngs, raw_body):
    fake.raw_body = raw_body
    outputs = backend(fake, max_retries=2).predict(queries(pngs, 2))
    assert [(o.epoch_id, o.text) for o in outputs] == [(100, ""), (101, "")]
    assert all(o.error.startswith("unusable response") for o in outputs)
    assert len(fake.requests) == 2  # not retried


def test_fingerprint_has_server_and_model_not_key(fake, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-secret-2")
    prompt = tmp_path / "p.md"
    prompt.write_text("prompt text", encoding="utf-8")
    settings = {"base_url": fake.base_url, "model": MODEL, "api_key_env": KEY_ENV, "system_prompt_file": str(prompt)}
    chosen = get_backend("openai", settings)

    assert isinstance(chosen, OpenAIBackend)
    assert chosen.fingerprint() == {"system_prompt_sha256": sha256_text("prompt text"),
                                    "user_turn_sha256": sha256_text(repr(USER_TURN)), "base_url": fake.base_url,
                                    "model": MODEL}
    assert "sk-test-secret-2" not in json.dumps(chosen.fingerprint())
    assert get_backend("openai", {**settings, "model": "other"}).fingerprint() != chosen.fingerprint()


@pytest.mark.parametrize("missing", ["base_url", "model"])
def test_required_settings(missing):
    settings = {"base_url": "http://127.0.0.1:1/v1", "model": MODEL}
    del settings[missing]
    with pytest.raises(ValueError, match=missing):
        OpenAIBackend(settings)
