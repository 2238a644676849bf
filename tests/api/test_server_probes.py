"""`videor1 serve` under requests meant to block or break it, over real HTTP on loopback.

Each bad request gets its status at once and before any model work; a request that runs past its time
limit, or whose client goes away, frees the model for the next request within its own budget; SIGTERM
ends a server that is in the middle of a generation. The model is the tiny one made endless (its
generation config forbids an end token before 4096 new tokens), so a long generation really is long
whatever the untrained weights would say. Run with `-s` to see each probe's status and time.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_support import PIXELS, Served, running, serve_config, serve_process

from videor1.api.guard import API_KEY_VARIABLE
from videor1.api.server import create_app
from videor1.media.loader import MediaConfig
from videor1.media.video import read_video
from videor1.models.inputs import Prompt, encode
from videor1.models.loading import load_processor
from videor1.rollout.endpoint import prompt_messages

pytestmark = pytest.mark.filterwarnings("ignore:Unfeasible length constraints")  # the endless model

TIMEOUT = 4.0  # the guarded server's --request-timeout, seconds
SLACK = 3.0  # beyond a budget: one decoding step, the next request's own work, a busy machine
KEY = "probe-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def context(api_root) -> int:
    """The tiny checkpoint's context, read from its config.json (not from the server)."""
    config = json.loads((api_root / "tiny" / "config.json").read_text())
    return config["text_config"]["max_position_embeddings"]


@pytest.fixture(scope="module")
def endless(api_root, tmp_path_factory, context) -> Path:
    """The tiny checkpoint, unable to end an answer by itself: `min_new_tokens` is its whole context."""
    out = tmp_path_factory.mktemp("endless") / "tiny"
    shutil.copytree(api_root / "tiny", out)
    generation = json.loads((out / "generation_config.json").read_text())
    (out / "generation_config.json").write_text(json.dumps({**generation, "min_new_tokens": context}))
    return out


@pytest.fixture(scope="module")
def guarded(endless, api_root):
    """The endless model served with a time limit and an API key, and the default 256 MiB body limit;
    yields its Served and its ChatService."""
    app = create_app(serve_config(endless, api_root / "synth", request_timeout=TIMEOUT, api_key=KEY))
    with running(app) as url:
        yield Served(url, "tiny", api_root / "synth", endless), app.state.service


@pytest.fixture(scope="module")
def processor(endless):
    return load_processor(endless)


@pytest.fixture(scope="module")
def left(processor, context) -> int:
    """What the context leaves after the prompt "hi" (the client-side processor's count)."""
    return context - prompt_tokens(processor, Prompt("hi"))


@pytest.fixture
def generations(guarded, monkeypatch) -> list:
    """One entry per call of the served engine's generate."""
    _, service = guarded
    calls, generate = [], service.engine.generate
    monkeypatch.setattr(service.engine, "generate", lambda *a, **k: calls.append(1) or generate(*a, **k))
    return calls


def prompt_tokens(processor, prompt: Prompt) -> int:
    """The prompt's length as the client-side oracle counts it (the processor, vision tokens included)."""
    return int(encode(processor, [prompt])["input_ids"].shape[1])


def chat(content: str | list, **extra) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], "temperature": 0, **extra}


def timed(client: httpx.Client, url: str, body: bytes | str | dict, headers: dict | None = None
          ) -> tuple[httpx.Response, float]:
    content = json.dumps(body) if isinstance(body, dict) else body
    start = time.monotonic()
    response = client.post(f"{url}/v1/chat/completions", content=content,
                           headers=AUTH | JSON if headers is None else headers)
    return response, time.monotonic() - start


def send_probes(url: str, probes: list[tuple]) -> None:
    """Each (request, body, headers or None, status, words of the message, error code or None) on one
    keep-alive connection: its status, message and code, answered quickly, the connection kept open."""
    table = []
    with httpx.Client(timeout=120) as client:
        for name, body, headers, status, words, code in probes:
            response, elapsed = timed(client, url, body, headers)
            table.append(f"| {name} | {response.status_code} | {elapsed:.2f} s |")
            assert response.status_code == status, (name, response.text[:500])
            error = response.json()["error"]
            assert all(word in error["message"] for word in words), (name, error["message"])
            assert code is None or error["code"] == code, (name, error)
            assert elapsed < (30 if "MB" in name else 10), (name, elapsed)  # never tokenized whole
            assert response.headers.get("connection") != "close", name
    print("\n" + "\n".join(table))


def test_prompts_and_max_tokens_beyond_the_context_are_refused_before_any_model_work(
        guarded, processor, context, left, generations):
    served, _ = guarded
    over = "7 " * context  # within the character bound (2 characters a token), over the context in tokens
    over_tokens = prompt_tokens(processor, Prompt(over))
    # a text that fits alone, and does not once the clip's vision tokens join it
    clip = read_video(next((served.root / "videos").glob("*.mp4")), MediaConfig(
        nframes=8, video_min_pixels=PIXELS, video_max_pixels=PIXELS).sampling())
    fits = "7 " * next(n for n in range(context // 2, context)
                       if prompt_tokens(processor, Prompt("7 " * n, video=clip)) >= context)
    with_video = prompt_tokens(processor, Prompt(fits, video=clip))
    assert prompt_tokens(processor, Prompt(fits)) < context <= with_video
    video_messages = prompt_messages(Prompt(fits, video=clip))
    too_long = "context_length_exceeded"
    send_probes(served.url, [
        ("max_tokens = 10^9", chat("hi", max_tokens=10**9), None, 400, [f"at most {left}"], too_long),
        (f"max_tokens = {left + 1} (context left + 1)", chat("hi", max_tokens=left + 1), None, 400,
         [f"at most {left}"], too_long),
        ("max_completion_tokens = 10^9", chat("hi", max_completion_tokens=10**9), None, 400,
         ["max_completion_tokens", f"at most {left}"], too_long),
        ("max_tokens = 2^70", chat("hi", max_tokens=2**70), None, 400, ["max_tokens"], None),
        ("200k-character prompt", chat("x" * 200_000), None, 400, [f"{context} tokens"], too_long),
        ("50 MB prompt", chat("x" * 50_000_000), None, 400, [f"{context} tokens"], too_long),
        (f"{over_tokens}-token prompt ({len(over)} characters)", chat(over), None, 400,
         [f"takes {over_tokens} tokens"], too_long),
        (f"video + text, {with_video} tokens", {**chat(""), "messages": video_messages}, None, 400,
         [f"takes {with_video} tokens"], too_long),
    ])
    assert generations == []


def test_malformed_bodies_get_400_and_other_content_types_415(guarded, generations):
    served, _ = guarded
    deep = 100_000
    nan = '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'
    send_probes(served.url, [
        (f"JSON nested {deep} deep", '{"model": "tiny", "messages": ' + "[" * deep + "]" * deep + "}", None,
         400, ["nested too deeply"], None),
        ("malformed JSON", '{"model": "tiny", "messages": [', None, 400, ["not valid JSON"], None),
        ("body not UTF-8", b'{"model": "\xff\xfe"}', None, 400, ["not valid JSON"], None),
        ("empty body", b"", None, 400, ["not valid JSON"], None),
        ("JSON list body", "[1, 2]", None, 400, [], None),
        ("temperature NaN", nan, None, 400, ["temperature"], None),
        ("Content-Type: text/plain", chat("hi", max_tokens=2), AUTH | {"Content-Type": "text/plain"}, 415,
         ["application/json"], "unsupported_media_type"),
        ("Content-Type: application/x-www-form-urlencoded", "a=b",
         AUTH | {"Content-Type": "application/x-www-form-urlencoded"}, 415, ["application/json"], None),
        ("no Content-Type", chat("hi", max_tokens=2), AUTH, 415, ["none"], None),
    ])
    assert generations == []
    response, _ = timed(httpx.Client(), served.url, chat("hi", max_tokens=2),
                        AUTH | {"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200 and generations == [1], response.text


def test_the_api_key_is_required_on_v1_only(guarded, generations):
    served, _ = guarded
    send_probes(served.url, [
        ("no API key", chat("hi", max_tokens=2), JSON, 401, ["API key"], "invalid_api_key"),
        ("wrong API key", chat("hi", max_tokens=2), JSON | {"Authorization": f"Bearer {KEY}x"}, 401, [],
         None),
        ("API key as Basic auth", chat("hi", max_tokens=2), JSON | {"Authorization": f"Basic {KEY}"}, 401, [],
         None),
    ])
    assert generations == []
    refused = httpx.post(f"{served.url}/v1/chat/completions", json=chat("hi", max_tokens=2))
    assert refused.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{served.url}/v1/models").status_code == 401
    assert httpx.get(f"{served.url}/v1/models", headers=AUTH).json()["data"][0]["id"] == "tiny"
    assert httpx.get(f"{served.url}/health").status_code == 200  # liveness probes need no key


@pytest.mark.slow
def test_a_request_over_its_time_limit_is_stopped_and_frees_the_server(guarded, left):
    served, _ = guarded

    def send(body: dict) -> tuple[httpx.Response, float]:  # the answer, and when it came after `start`
        with httpx.Client(timeout=120) as client:
            response, _ = timed(client, served.url, body)
        return response, time.monotonic() - start

    with ThreadPoolExecutor(2) as pool:
        start = time.monotonic()
        long = pool.submit(send, chat("hi", max_tokens=left))  # the most it may ask: accepted, cut by time
        time.sleep(0.5)
        short = pool.submit(send, chat("hi", max_tokens=2))
        (stopped, stopped_at), (answered, answered_at) = long.result(), short.result()
    print(f"\n| over the time limit ({TIMEOUT:g} s), max_tokens={left} | {stopped.status_code} | "
          f"{stopped_at:.2f} s |\n| the next request, sent 0.5 s later | {answered.status_code} | "
          f"{answered_at - 0.5:.2f} s |")
    assert stopped.status_code == 422 and stopped.json()["error"]["code"] == "request_timeout", stopped.text
    assert TIMEOUT <= stopped_at < TIMEOUT + SLACK
    assert answered.status_code == 200 and answered.json()["usage"]["completion_tokens"] == 2
    assert answered_at < TIMEOUT + SLACK  # it waited for the first one's budget, no longer


@pytest.mark.slow
def test_a_client_that_disconnects_frees_the_server_at_once(guarded, left, caplog):
    served, _ = guarded
    with caplog.at_level("INFO", logger="videor1.api.server"), httpx.Client() as client:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up after 1 s and closes the connection
            client.post(f"{served.url}/v1/chat/completions", json=chat("hi", max_tokens=left), headers=AUTH,
                        timeout=httpx.Timeout(60, read=1.0))
        gone = time.monotonic()
        response, _ = timed(client, served.url, chat("hi", max_tokens=2))
        waited = time.monotonic() - gone
    print(f"\n| client gone after 1 s (max_tokens={left}); the next request | {response.status_code} | "
          f"{waited:.2f} s |")
    assert response.status_code == 200, response.text
    assert waited < 1.5 < TIMEOUT - 1  # not the ~3 s left of the first request's time limit
    stopped = [r.getMessage() for r in caplog.records if "request stopped after" in r.getMessage()]
    assert stopped and "client closed the connection" in stopped[0], stopped


@pytest.mark.slow
def test_sigterm_ends_a_server_in_the_middle_of_a_generation(endless, api_root, left, tmp_path):
    log = tmp_path / "serve.log"
    with serve_process(endless, api_root / "synth", log, env={API_KEY_VARIABLE: KEY}) as (proc, url):
        # the key from the environment is required (and the default --request-timeout, 300 s, applies)
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers=AUTH).status_code == 200
        with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=120) as client:
            pending = pool.submit(timed, client, url, chat("hi", max_tokens=left))
            time.sleep(3)
            assert not pending.done()  # generating: thousands of tokens to go
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            ended = time.monotonic() - start
            response, _ = pending.result()
    print(f"\n| SIGTERM mid-generation (max_tokens={left}): the request | {response.status_code} | - |"
          f"\n| SIGTERM mid-generation: the process ends | exit {proc.returncode} | {ended:.2f} s |")
    assert response.status_code == 503 and response.json()["error"]["code"] == "server_shutting_down"
    text = log.read_text()
    stopped = re.search(r"request stopped after (\d+) of (\d+) tokens: the server is shutting down", text)
    assert stopped and 0 < int(stopped[1]) < int(stopped[2]) == left, text[-2000:]
    assert ended < 10, text[-2000:]
