"""A fake vLLM: an OpenAI-compatible chat-completions server on 127.0.0.1 for backend and job tests."""
import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def answer(target_hash: str) -> str:
    body = {"reasoning_text": f"target {target_hash}", "applicable_rules": ["N2.1"], "sleep_stage": "N2"}
    return f"```json\n{json.dumps(body)}\n```"


class FakeVLLM:
    """Records requests; answers with fenced SleepVLM JSON naming the sha256 of the target image, with token
    log-probabilities when asked (one token per character, each `token_logprob`)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # (monotonic time, lower-cased headers, JSON body)
        self.fail_first, self.fail_status = 0, 500
        self.delay_s = 0.0
        self.delays = {}  # target hash -> delay, overrides delay_s
        self.raw_body = None  # bytes sent as the 200 body instead of a completion
        self.contents = {}  # target hash -> message content, overrides the default answer
        self.in_flight = self.max_in_flight = 0
        self.logprobs = True  # answer `logprobs: true` as vLLM does (False: a server that sends none)
        self.token_logprob = -0.1  # every answer token's log-probability (one token per character)

    def handle(self, handler: BaseHTTPRequestHandler):
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        with self.lock:
            self.requests.append((time.monotonic(), {k.lower(): v for k, v in handler.headers.items()}, body))
            number = len(self.requests)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if handler.path != "/v1/chat/completions":
                return self.reply(handler, 404, {"error": {"message": "not found"}})
            if number <= self.fail_first:
                return self.reply(handler, self.fail_status, {"error": {"message": f"injected {self.fail_status}"}})
            parts = body["messages"][1]["content"]
            image_urls = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
            target = short_hash(base64.b64decode(image_urls[1].split(",", 1)[1]))
            time.sleep(self.delays.get(target, self.delay_s))
            content = self.contents.get(target, answer(target))
            choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            if body.get("logprobs") and self.logprobs:
                choice["logprobs"] = {"content": [{"token": c, "logprob": self.token_logprob, "bytes": list(c.encode()),
                                                   "top_logprobs": []} for c in content]}
            self.reply(handler, 200, self.raw_body or {
                "id": f"chatcmpl-{number}", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"],
                "choices": [choice],
                "usage": {"prompt_tokens": 3000, "completion_tokens": 60, "total_tokens": 3060},
            })
        finally:
            with self.lock:
                self.in_flight -= 1

    @staticmethod
    def reply(handler, status, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout)
            pass


@pytest.fixture
def fake():
    state = FakeVLLM()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            state.handle(self)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


