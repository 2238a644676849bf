"""The endpoint client and engine against a small scripted HTTP server on loopback: retries, back-off,
errors, order, bounded concurrency, and the engine's seeds."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from videor1.models.inputs import Prompt
from videor1.rollout.base import SamplingConfig
from videor1.rollout.chat import MAX_RETRY_AFTER, ChatClient, EndpointError, _retry_after
from videor1.rollout.endpoint import EndpointEngine


class Script:
    """What the scripted server answers: `plan` is a list of (status, headers) used once each, in
    order, before answering 200; `fail_on` makes any request whose text contains it answer 400."""

    def __init__(self, plan=(), fail_on: str | None = None, delay: float = 0.0):
        self.plan, self.fail_on, self.delay = list(plan), fail_on, delay
        self.bodies: list[dict] = []
        self.calls = 0
        self.active = self.most_active = 0
        self.lock = threading.Lock()


def handler_for(script: Script):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._answer(200, {"object": "list", "data": [{"id": "first", "object": "model"},
                                                          {"id": "second", "object": "model"}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.calls += 1
                script.bodies.append(body)
                script.active += 1
                script.most_active = max(script.most_active, script.active)
                step = script.plan.pop(0) if script.plan else None
            time.sleep(script.delay)
            with script.lock:  # counted down before answering: once the reply is written the client may
                script.active -= 1  # send its next request, which must not overlap this one in the count
            text = json.dumps(body["messages"])
            if step is not None:
                status, headers = step
                self._answer(status,
                             {"error": {"message": f"scripted {status}", "type": "x", "param": None,
                                        "code": None}}, headers)
            elif script.fail_on and script.fail_on in text:
                self._answer(400, {"error": {"message": "this one is bad",
                                             "type": "invalid_request_error", "param": None,
                                             "code": None}})
            else:
                self._answer(200, {"id": "x", "object": "chat.completion", "created": 0,
                                   "model": body["model"],
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant",
                                                            "content": f"echo {text}"}}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 7,
                                             "total_tokens": 8}})

    return Handler


@contextlib.contextmanager
def scripted(script: Script):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(script))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_transient_failures_are_retried_then_succeed():
    script = Script(plan=[(503, {}), (503, {})])
    with scripted(script) as url, ChatClient(url, model="m", backoff=0.01) as client:
        reply = client.chat(user("hi"), max_tokens=5)
    assert script.calls == 3
    assert reply.text == 'echo [{"role": "user", "content": "hi"}]' and reply.completion_tokens == 7
    assert reply.finish_reason == "stop"


def test_retry_after_is_honoured_and_429_retried():
    script = Script(plan=[(429, {"Retry-After": "0.3"})])
    with scripted(script) as url, ChatClient(url, model="m", backoff=0.0) as client:
        started = time.monotonic()
        client.chat(user("hi"), max_tokens=5)
    assert script.calls == 2 and time.monotonic() - started >= 0.3


def test_a_client_error_is_not_retried_and_carries_the_servers_message():
    script = Script(plan=[(400, {})])
    with scripted(script) as url, ChatClient(url, model="m", backoff=0.01) as client:
        with pytest.raises(EndpointError) as caught:
            client.chat(user("hi"), max_tokens=5)
    assert script.calls == 1
    assert caught.value.status == 400 and "scripted 400" in caught.value.message


def test_retries_run_out():
    script = Script(plan=[(500, {})] * 3)
    with scripted(script) as url, ChatClient(url, model="m", max_retries=2, backoff=0.01) as client:
        with pytest.raises(EndpointError) as caught:
            client.chat(user("hi"), max_tokens=5)
    assert script.calls == 3 and caught.value.status == 500 and "after 3 attempts" in caught.value.message


def test_a_server_that_is_not_there_is_retried_then_reported():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with ChatClient(f"http://127.0.0.1:{port}/v1/", model="m", max_retries=2, backoff=0.01) as client:
        with pytest.raises(EndpointError) as caught:
            client.chat(user("hi"), max_tokens=5)
    assert caught.value.status is None and "ConnectError" in caught.value.message


def test_chat_many_keeps_order_bounds_concurrency_and_returns_failures_in_place():
    script = Script(fail_on="bad", delay=0.05)
    texts = ["a", "b", "bad", "c", "d", "e", "f", "g"]
    with scripted(script) as url, ChatClient(url, concurrency=3, backoff=0.01) as client:
        seeds = [10 + i for i in range(len(texts))]
        replies = client.chat_many([user(t) for t in texts], max_tokens=5, seeds=seeds)
    assert script.calls == len(texts) and 2 <= script.most_active <= 3
    for text, reply in zip(texts, replies):
        if text == "bad":
            assert isinstance(reply, EndpointError) and reply.status == 400
        else:
            assert reply.text == f'echo [{{"role": "user", "content": "{text}"}}]'
    # the model is the first one the endpoint lists; conversation i is sent seeds[i]
    seeds = {json.dumps(b["messages"]): (b["model"], b["seed"]) for b in script.bodies}
    assert [seeds[json.dumps(user(t))] for t in texts] == [("first", 10 + i) for i in range(len(texts))]


def test_the_endpoint_engine_seeds_each_request_and_names_the_failed_prompt():
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=9)
    script = Script(fail_on="bad")
    with scripted(script) as url, ChatClient(url, model="m") as client:
        out = EndpointEngine(client).generate([Prompt("x"), Prompt("y")], 1, sampling, seed=5)
        assert out.lengths.tolist() == [7, 7] and "x" in out.texts[0] and "y" in out.texts[1]
        sent = sorted((b["messages"][0]["content"][0]["text"], b["seed"], b["temperature"], b["max_tokens"])
                      for b in script.bodies)
        assert sent == [("x", 5, 0.0, 9), ("y", 6, 0.0, 9)]  # row r of a seeded call: seed + r
        script.bodies.clear()
        out = EndpointEngine(client).generate([Prompt("x"), Prompt("y")], 2, sampling, seeds=[100, 7])
        assert [('"x"' in t, '"y"' in t) for t in out.texts] == [(True, False)] * 2 + [(False, True)] * 2
        assert sorted((b["messages"][0]["content"][0]["text"], b["seed"]) for b in script.bodies) == [
            ("x", 100), ("x", 101), ("y", 7), ("y", 8)]  # per-prompt streams: seeds[b] + i
        with pytest.raises(EndpointError, match="prompt 1 of 2 failed"):
            EndpointEngine(client).generate([Prompt("x"), Prompt("bad")], 1, sampling, seed=5)


def test_an_endpoint_that_is_no_http_url_fails_at_once():
    # "localhost:8000" parses with the scheme "localhost": httpx's UnsupportedProtocol is a TransportError,
    # which was retried with back-off on every request as if the server were down
    for url in ("localhost:8000", "127.0.0.1:8000/v1", "ftp://host/v1", "http://"):
        with pytest.raises(ValueError, match="http"):
            ChatClient(url, model="m")


def test_a_null_usage_is_an_endpoint_error_not_an_escaping_one():
    import httpx

    answer = {"choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "x"}}],
              "usage": None}
    with ChatClient("http://127.0.0.1:9/v1", model="m", max_retries=0) as client:
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
        client.http = httpx.Client(base_url=client.base_url, transport=transport)
        [reply] = client.chat_many([user("a")], max_tokens=4)
    assert isinstance(reply, EndpointError) and "unexpected answer" in reply.message


@pytest.mark.parametrize(("header", "expected"),
                         [("3", 3.0), ("inf", MAX_RETRY_AFTER), ("1e309", MAX_RETRY_AFTER),
                                                  ("nan", 0.0), ("-5", 0.0), ("soon", None)])
def test_retry_after_is_read_and_bounded(header, expected):
    assert _retry_after(httpx.Response(503, headers={"retry-after": header})) == expected
