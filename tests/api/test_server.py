"""`videor1 serve` over real HTTP on loopback: the OpenAI shapes, media from data URLs and from the
media root, and every refusal with its status (the untrained tiny model: answers are not compared here,
see test_endpoint_oracle.py)."""

from __future__ import annotations

import json
import os
import shutil

import httpx
import pytest
from api_support import LIMIT, api_media, serve_config

from videor1.api.guard import exposure_warning, is_loopback
from videor1.data.loading import load_records
from videor1.data.records import EvalRecord
from videor1.eval.generate import record_prompt
from videor1.models.inputs import Prompt, encode
from videor1.models.loading import load_processor
from videor1.prompts import load_template
from videor1.rollout.chat import ChatClient
from videor1.rollout.endpoint import prompt_messages


@pytest.fixture(scope="module")
def prompts(server) -> dict[str, Prompt]:
    """The first image and the first video question of the synthetic split, as the client prepares them."""
    records = load_records(server.root / "eval.json", kind=EvalRecord).records
    first = {kind: next(r for r in records if r.data_type == kind) for kind in ("image", "video")}
    return {kind: record_prompt(r, load_template("video-r1-eval"), server.root, api_media())
            for kind, r in first.items()}


@pytest.fixture(scope="module")
def processor(server):
    return load_processor(server.model)


def post(server, body, **kwargs) -> httpx.Response:
    if isinstance(body, dict):
        body = json.dumps(body)
    return httpx.post(f"{server.url}/v1/chat/completions", content=body, timeout=60,
                      headers={"Content-Type": "application/json"}, **kwargs)


HI = [{"role": "user", "content": "hi"}]


def chat(server, messages, **extra) -> dict:
    return {"model": server.name, "messages": messages, "max_tokens": 4, "temperature": 0, **extra}


def user_with(kind: str, url: str, text: str = "Which way does it move?") -> list[dict]:
    part = "video_url" if kind == "video" else "image_url"
    return [{"role": "user", "content": [{"type": part, part: {"url": url}}, {"type": "text", "text": text}]}]


def error_of(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    for word in words:
        assert word in body["error"]["message"], body["error"]["message"]
    return body["error"]


def test_models_and_health(server):
    listed = httpx.get(f"{server.url}/v1/models").json()
    assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == ["tiny"]
    assert ChatClient(server.url).models() == ["tiny"]
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    error_of(httpx.get(f"{server.url}/v1/nothing"), 404)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_a_chat_with_a_data_url(server, prompts, processor, kind):
    prompt = prompts[kind]
    response = post(server, chat(server, prompt_messages(prompt)))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["model"] == "tiny"
    assert answer["id"].startswith("chatcmpl-")
    [choice] = answer["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    usage = answer["usage"]
    # the untrained model never ends by itself: 4 tokens, cut by max_tokens
    assert (usage["completion_tokens"], choice["finish_reason"]) == (4, "length")
    # the server built the very prompt the client would have: same tokens, vision pads included
    assert usage["prompt_tokens"] == encode(processor, [prompt])["input_ids"].shape[1]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_system_message_replaces_the_default_one(server, prompts, processor):
    prompt = prompts["image"]
    with_system = Prompt(prompt.text, image=prompt.image, system="Answer in one word.")
    answer = post(server, chat(server, prompt_messages(with_system))).json()
    assert answer["usage"]["prompt_tokens"] == encode(processor, [with_system])["input_ids"].shape[1]
    assert answer["usage"]["prompt_tokens"] != encode(processor, [prompt])["input_ids"].shape[1]


def test_a_local_path_under_the_media_root(server, prompts):
    video = sorted((server.root / "videos").glob("*.mp4"))[0]
    by_data = post(server, chat(server, user_with("video", prompt_messages(prompts["video"])[0]["content"][0]
                                                   ["video_url"]["url"]))).json()
    for url in (str(video), f"file://{video}", f"{server.root}/videos/../videos/{video.name}"):
        response = post(server, chat(server, user_with("video", url)))
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["prompt_tokens"] == by_data["usage"]["prompt_tokens"]
    error_of(post(server, chat(server, user_with("video", str(server.root / "videos" / "missing.mp4")))), 400,
             "messages[0].content[0]", "not found")


def test_paths_outside_the_media_root_are_forbidden(server, tmp_path):
    outside = tmp_path / "secret.png"
    shutil.copy(sorted((server.root / "images").glob("*.png"))[0], outside)
    link = server.root / "images" / f"escape-{tmp_path.name}.png"
    link.symlink_to(outside)
    try:
        dotted = f"{server.root}/{os.path.relpath(outside, server.root)}"  # root/../../…/secret.png
        for url in (str(outside), dotted, f"file://{dotted}", str(link), f"file://{link}"):
            error_of(post(server, chat(server, user_with("image", url))), 403,
                     "outside the server's media roots")
    finally:
        link.unlink()
    error_of(post(server, chat(server, user_with("image", "images/relative.png"))), 400, "absolute")


def test_the_server_fetches_nothing(server):
    for url in ("http://example.com/cat.png", "https://example.com/cat.png"):
        error_of(post(server, chat(server, user_with("image", url))), 400, "fetches nothing")
    error_of(post(server, chat(server, user_with("image", "ftp://example.com/cat.png"))), 400, "scheme")


def test_bad_data_urls(server):
    not_base64 = "data:image/png;base64,@@@not-base64@@@"
    error_of(post(server, chat(server, user_with("image", not_base64))), 400, "base64")
    error_of(post(server, chat(server, user_with("image", "data:image/png,rawbytes"))), 400, "base64")
    error_of(post(server, chat(server, user_with("image", "data:video/mp4;base64,AAAA"))), 400, "image/*")
    garbage = "data:video/mp4;base64," + "QUJD" * 100  # decodes, but is no video
    error = error_of(post(server, chat(server, user_with("video", garbage))), 400, "messages[0].content[0]")
    assert error["param"] == "messages[0].content[0]" and "/tmp" not in error["message"]


def test_too_large_requests(server):
    big = chat(server, [{"role": "user", "content": "x" * (LIMIT + 1)}])
    error_of(post(server, big), 413, "limit")  # refused on its Content-Length
    data = json.dumps(big).encode()
    chunks = (data[i:i + 65536] for i in range(0, len(data), 65536))  # chunked: no Content-Length
    error = error_of(post(server, chunks), 413, "limit")
    assert error["code"] == "request_too_large"


def test_malformed_and_invalid_requests_get_openai_shaped_400s(server):
    error = error_of(post(server, b"{not json"), 400, "not valid JSON")
    assert error["type"] == "invalid_request_error"
    error_of(post(server, {"model": "tiny"}), 400, "messages")  # FastAPI would say 422
    assert error_of(post(server, chat(server, HI, n=2)), 400, "n=1")["param"] == "n"
    error_of(post(server, chat(server, HI, stream=True)), 400, "stream")
    error_of(post(server, chat(server, HI, best_of=3)), 400, "best_of")
    error_of(post(server, chat(server, HI, temperature=-1)), 400, "temperature")
    turns = [*HI, {"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]
    error_of(post(server, chat(server, turns)), 400, "multi-turn")
    url = "data:image/png;base64,AAAA"
    two = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                        {"type": "image_url", "image_url": {"url": url}}]}]
    error_of(post(server, chat(server, two)), 400, "at most one")


def test_an_unknown_model_is_404(server):
    error = error_of(post(server, {**chat(server, HI), "model": "gpt-4o"}), 404,
                     "gpt-4o", "tiny")
    assert error["code"] == "model_not_found"


def test_stop_strings_cut_the_text(server):
    answer = post(server, chat(server, HI, max_tokens=12)).json()
    text = answer["choices"][0]["message"]["content"]
    assert len(text) >= 4
    stop = text[2:4]
    cut = post(server, chat(server, HI, max_tokens=12, stop=[stop])).json()
    assert cut["choices"][0]["message"]["content"] == text[:text.find(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"


def test_log_probs_of_the_completion_tokens(server):
    answer = post(server, chat(server, HI, max_tokens=5, logprobs=True)).json()
    content = answer["choices"][0]["logprobs"]["content"]
    assert len(content) == answer["usage"]["completion_tokens"] == 5
    assert all(t["logprob"] <= 0 and t["top_logprobs"] == [] and bytes(t["bytes"]).decode() == t["token"]
               for t in content)
    assert "".join(t["token"] for t in content) == answer["choices"][0]["message"]["content"]
    error_of(post(server, chat(server, HI, logprobs=True, stop=["x"])), 400, "stop")
    error_of(post(server, chat(server, HI, top_logprobs=3)), 400, "top_logprobs")


def test_binding_beyond_loopback_warns():
    for host in ("127.0.0.1", "127.0.0.2", "127.255.255.254", "localhost", "::1", "[::1]"):
        assert is_loopback(host) and exposure_warning(host, 8000, api_key=False) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "128.0.0.1", "example.com",
                 "localhost.example.com"):
        assert not is_loopback(host), host
        assert "no authentication" in exposure_warning(host, 9000, api_key=False)
        assert "no TLS" in exposure_warning(host, 9000, api_key=True)


def test_a_media_root_that_is_not_a_directory_is_refused(server):
    from videor1.api.server import create_app

    with pytest.raises(ValueError, match="not a directory"):
        create_app(serve_config(server.model, server.root / "eval.json"))


def test_an_unexpected_server_error_is_a_500_in_openais_shape_without_internals(api_root, monkeypatch):
    from api_support import Served, running

    from videor1.api.server import create_app

    app = create_app(serve_config(api_root / "tiny", api_root / "synth"))
    monkeypatch.setattr(app.state.service, "generate",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("/secret/dir/tmp.mp4: disk full")))
    monkeypatch.setattr(app.state.service, "models",
                        lambda: (_ for _ in ()).throw(KeyError("/secret/models")))
    with running(app) as url:
        served = Served(url, "tiny", api_root / "synth", api_root / "tiny")
        answer = post(served, chat(served, [{"role": "user", "content": "hello"}]))
        models = httpx.get(f"{url}/v1/models", timeout=30)
    for response in (answer, models):
        assert response.status_code == 500
        assert set(response.json()["error"]) >= {"message", "type"}
        assert "secret" not in response.text


def test_an_endpoint_evaluation_pins_the_served_model_in_its_settings(server, tmp_path):
    from videor1.eval import EvalConfig, eval_sampling, run_eval

    config = EvalConfig(endpoint=server.url, bench="synthetic", data=server.root / "eval.json",
                        out_dir=tmp_path, frames=8, min_pixels=84 * 84, max_pixels=84 * 84,
                        sampling=eval_sampling(4, greedy=True), limit=1, template="video-r1-eval")
    result = run_eval(config, show_progress=False)
    assert result.summary.settings["endpoint_model"] == server.name  # asked of /v1/models, then pinned
    settings = json.loads(next(tmp_path.glob("*.settings.json")).read_text())
    assert settings["endpoint_model"] == server.name
