"""The endpoint path against the local one, on a briefly supervised tiny model whose answers depend on
the question and the media: the same greedy texts through `videor1 serve` as through `HFGenerator`,
the same evaluation, the same `infer`; and `videor1 serve` as a command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx
import pytest
import yaml
from api_support import PIXELS, api_media, running, serve_command, serve_config
from rl_support import supervise
from typer.testing import CliRunner

from videor1.api.server import create_app
from videor1.cli import app as cli
from videor1.data.loading import load_records
from videor1.data.records import EvalRecord
from videor1.eval import EvalConfig, HFGenerator, eval_sampling, run_suite
from videor1.eval.generate import EngineGenerator, record_prompt
from videor1.eval.infer import infer
from videor1.models.inputs import Prompt
from videor1.prompts import load_template
from videor1.rollout.chat import ChatClient
from videor1.rollout.endpoint import EndpointEngine, prompt_messages

pytestmark = pytest.mark.slow
GREEDY = eval_sampling(32, greedy=True)


@pytest.fixture(scope="module")
def trained(api_root) -> Path:
    """The tiny model after 40 SFT steps on the synthetic chains of thought (answers vary by item)."""
    return supervise(api_root / "tiny", api_root / "model", api_root / "synth" / "cot_train.json", steps=40,
                     template="video-r1-eval")


@pytest.fixture(scope="module")
def endpoint(trained, api_root):
    with running(create_app(serve_config(trained, api_root / "synth"))) as url:
        yield url


@pytest.fixture(scope="module")
def prompts(api_root):
    records = load_records(api_root / "synth" / "eval.json", kind=EvalRecord).records
    template = load_template("video-r1-eval")
    return [record_prompt(r, template, api_root / "synth", api_media()) for r in records]


def test_the_endpoint_answers_what_the_local_model_answers(trained, endpoint, prompts):
    local = HFGenerator(trained, GREEDY)
    batched = local(prompts, seed=0)
    alone = [local([p], seed=0)[0] for p in prompts]
    with ChatClient(endpoint, concurrency=3) as client:
        served = EngineGenerator(EndpointEngine(client), GREEDY)(prompts, seed=0)
    assert [g.text for g in served] == [g.text for g in alone] == [g.text for g in batched]
    assert [g.tokens for g in served] == [g.tokens for g in alone]
    assert {p.video is not None for p in prompts} == {True, False}
    assert len({g.text for g in served}) >= 3  # the answers depend on the inputs, so equality means something


def local_logprobs(generator: HFGenerator, prompt: Prompt) -> list[float]:
    out = generator.engine.generate([prompt], 1, GREEDY, seed=0, logprobs=True)
    return out.logprobs[0, :int(out.lengths[0])].tolist()


def test_the_servers_log_probs_equal_the_local_models_bit_for_bit(trained, endpoint, prompts):
    """Log-probs move with every pixel (a one-pixel change shows), so equal ones mean equal inputs."""
    local = HFGenerator(trained, GREEDY)
    for prompt in prompts:
        body = {"model": "model", "messages": prompt_messages(prompt), "max_tokens": 32, "temperature": 0,
                "logprobs": True}
        answer = httpx.post(f"{endpoint}/v1/chat/completions", json=body, timeout=60).json()
        served = [t["logprob"] for t in answer["choices"][0]["logprobs"]["content"]]
        assert served == local_logprobs(local, prompt)
        if prompt.video is not None:
            frames = prompt.video.frames.copy()
            frames[3, 40, 40, 1] ^= 4
            nudged = Prompt(prompt.text, video=dataclasses.replace(prompt.video, frames=frames))
            assert local_logprobs(local, nudged) != served


def test_a_path_under_the_media_root_answers_like_the_clients_data_url(endpoint, api_root, prompts):
    """The server decodes the file with its own settings (8 frames, 84x84): the frames the client sent."""
    records = load_records(api_root / "synth" / "eval.json", kind=EvalRecord).records
    for record, prompt in zip(records, prompts):
        answers = []
        for url in (None, f"file://{api_root / 'synth' / record.path}"):
            messages = prompt_messages(prompt)
            if url is not None:
                part = messages[0]["content"][0]
                part[part["type"]]["url"] = url
            body = {"model": "model", "messages": messages, "max_tokens": 16, "temperature": 0,
                    "logprobs": True}
            answers.append(httpx.post(f"{endpoint}/v1/chat/completions", json=body,
                                      timeout=60).json()["choices"])
        assert answers[0] == answers[1], record.problem_id


def rows(out: Path) -> list[dict]:
    lines = (out / "synthetic.ordered.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds",)} for line in lines]


def test_eval_through_the_endpoint_scores_like_the_local_run(trained, endpoint, api_root, tmp_path):
    data = api_root / "synth" / "eval.json"
    config = EvalConfig(model=trained, bench="synthetic", data=data, out_dir=tmp_path / "local", frames=8,
                        min_pixels=PIXELS, max_pixels=PIXELS, batch_size=4, sampling=GREEDY)
    [local] = run_suite(config, show_progress=False)
    result = CliRunner().invoke(cli, [
        "eval", "--endpoint", endpoint, "--concurrency", "2", "--bench", "synthetic", "--data", str(data),
        "--out", str(tmp_path / "served"), "--frames", "8", "--min-pixels", str(PIXELS), "--max-pixels",
        str(PIXELS), "--batch-size", "4", "--greedy", "--max-new-tokens", "32", "--no-progress"])
    assert result.exit_code == 0, result.output
    saved = EvalConfig.model_validate(yaml.safe_load((tmp_path / "served" / "eval.yaml").read_text()))
    assert saved.endpoint == endpoint and saved.sampling.temperature == 0.0  # the resolved config, beside it
    served_rows, local_rows = rows(tmp_path / "served"), rows(tmp_path / "local")
    assert not [r for r in served_rows if r["error"]]
    assert served_rows == local_rows
    served = json.loads((tmp_path / "served" / "synthetic.summary.json").read_text())
    assert served["conditions"] == local.summary.model_dump(mode="json")["conditions"]
    assert served["settings"]["endpoint"] == endpoint and served["settings"]["model"] is None


def test_infer_through_the_endpoint(trained, endpoint, api_root):
    video = sorted((api_root / "synth" / "videos").glob("eval-*.mp4"))[0]
    expected = infer(trained, "Which way does it "
                              "move?", video=video, frames=8, max_pixels=PIXELS, sampling=GREEDY)
    result = CliRunner().invoke(cli, ["infer", "--endpoint", endpoint, "--question",
                                      "Which way does it move?", "--video", str(video), "--frames", "8",
                                      "--max-pixels", str(PIXELS), "--greedy", "--max-new-tokens", "32"])
    assert result.exit_code == 0, result.output
    assert (expected.reasoning or expected.output) in result.output
    neither = CliRunner().invoke(cli, ["infer", "--question", "q", "--video", str(video)])
    assert neither.exit_code == 2 and "exactly one of --model" in neither.output


def test_the_serve_command(api_root, tmp_path):
    with serve_command(api_root / "tiny", api_root / "synth", tmp_path / "serve.log", "--served-model-name",
                       "tiny-served", "--max-request-mb", "0.01") as url:
        assert ChatClient(url).models() == ["tiny-served"]
        video = sorted((api_root / "synth" / "videos").glob("*.mp4"))[0]
        body = {"model": "tiny-served", "max_tokens": 2, "messages": [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": str(video)}},
            {"type": "text", "text": "Which way?"}]}]}
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 2
        too_big = httpx.post(f"{url}/v1/chat/completions", timeout=60,
                             json={**body, "messages": [{"role": "user", "content": "x" * 20_000}]})
        assert too_big.status_code == 413  # --max-request-mb 0.01
