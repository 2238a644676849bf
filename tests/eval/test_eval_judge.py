"""Judge analysis: verdict parsing, which responses are judged, and a resumable run against a scripted
OpenAI-compatible endpoint on loopback (a stand-in for the large judge model)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from eval_factories import mc, said, scored

from videor1.eval.judge import collect_items, judge_messages, parse_verdict, run_judge
from videor1.eval.results import SettingsMismatch
from videor1.rollout.chat import ChatClient


@pytest.mark.parametrize(("reply", "verdict"), [
    ("The model compares frame 3 with frame 7.\nVerdict: yes", "yes"),
    ("It only reads the label.\n**Verdict:** No.", "no"),
    ("verdict - YES", "yes"),
    ("After weighing it, the verdict is no", "no"),
    ("Verdict: yes\n...on reflection...\nVerdict: no", "no"),  # the last verdict line counts
    ('End with "Verdict: yes" or "Verdict: no".', "unparseable"),  # both on the line: no verdict
    ("Yes.", "yes"), ("no", "no"), ("Yes, it tracks the ball across frames.", "yes"),
    ("<think>maybe yes</think>No, it reasons from one frame.", "no"),
    ("<answer>yes</answer>", "yes"),
    ("Not temporal at all.", "unparseable"),  # "not" is not "no"
    ("It is hard to say whether it does or not.", "unparseable"),
    ("The answer mentions yes and no.", "unparseable"),
    ("", "unparseable"), (None, "unparseable"),
])
def test_verdicts_are_read_only_when_unambiguous(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_the_judge_sees_the_question_and_the_whole_response():
    system, user = judge_messages("Which way does it move?\nA. left\nB. right", said("B"))
    assert (system["role"], user["role"]) == ("system", "user")
    assert "Which way does it move?\nA. left\nB. right" in user["content"]
    assert "<think>let me think</think><answer>B</answer>" in user["content"]
    assert "temporal information" in user["content"] and user["content"].endswith('"Verdict: no".')


def write_log(path, rows, torn: str = ""):
    path.write_text("".join(row.model_dump_json() + "\n" for row in rows) + torn)


def test_only_video_responses_are_judged(tmp_path):
    write_log(tmp_path / "mvbench.ordered.jsonl", [
        scored("mvbench", mc(1), said("B")),
        scored("mvbench", mc(2), None, error=RuntimeError("decode failed")),  # failed: no response
        scored("mvbench", mc(3, data_type="image", path="i.png"), said("A")),  # an image question
        scored("mvbench", mc(4), "  "),  # an empty response
        scored("mvbench", mc(1), said("C")),  # a repeated id: the first row counts, as when resuming
    ], torn='{"id": "5", "bench')  # a run in progress: its unfinished line is left out
    [item] = collect_items(tmp_path)
    assert (item.benchmark, item.condition, item.id, item.response) == ("mvbench", "ordered", "1", said("B"))
    assert item.question == "question"
    with pytest.raises(FileNotFoundError, match="no per-sample results"):
        collect_items(tmp_path / "nothing")


class ScriptedJudge(BaseHTTPRequestHandler):
    """Answers a judge request by what the judged response says: YES / NO / GARBAGE, or 400 on FAIL."""

    requests: list[str] = []
    fail = True

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "judge-72b", "object": "model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        response = prompt.split("The model's response:")[1]
        type(self).requests.append(response)
        if "FAIL" in response and type(self).fail:
            return self._send(400, {"error": {"message": "context too long"}})
        text = ("It compares the frames in order.\nVerdict: yes" if "YES" in response else
                "It reads one frame.\nVerdict: "
                "no" if "NO" in response else "I am not sure what to make of it.")
        self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})


@pytest.fixture
def judge_url():
    ScriptedJudge.requests, ScriptedJudge.fail = [], True
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_judge_run_reports_percentages_and_resumes(tmp_path, judge_url):
    write_log(tmp_path / "tempcompass.ordered.jsonl",
              [scored("tempcompass", mc(i), said(f"B {word}")) for i,
               word in enumerate(["YES", "YES", "NO", "GARBAGE"])])
    write_log(tmp_path / "tempcompass.shuffle-frame.jsonl",
              [scored("tempcompass", mc(i), said(f"B {word}"), "shuffle-frame") for i, word in
               enumerate(["YES", "NO", "NO", "FAIL"])])
    write_log(tmp_path / "mvbench.ordered.jsonl", [scored("mvbench", mc(0), said("B YES"))])

    with ChatClient(judge_url, max_retries=0, concurrency=3) as client:
        report = run_judge(tmp_path, client)
    assert report["judge"]["model"] == "judge-72b" and report["failed_requests"] == 1
    ordered = report["benchmarks"]["tempcompass"]["ordered"]
    assert ordered == {"responses": 4, "yes": 2, "no": 1, "unparseable": 1, "pending": 0,
                       "temporal_pct": pytest.approx(200 / 3)}
    shuffled = report["benchmarks"]["tempcompass"]["shuffle-frame"]
    assert (shuffled["yes"], shuffled["no"], shuffled["pending"]) == (1, 2, 1)
    assert shuffled["temporal_pct"] == pytest.approx(100 / 3)
    assert report["overall"]["ordered"]["yes"] == 3 and report["overall"]["ordered"]["responses"] == 5
    assert json.loads((tmp_path / "judge.json").read_text()) == json.loads(json.dumps(report))
    section = (tmp_path / "judge.md").read_text()
    assert "| TempCompass | ordered | 4 | 2 | 1 | 1 | 0 | 66.7 |" in section
    assert "| all | shuffle-frame | 4 | 1 | 2 | 0 | 1 | 33.3 |" in section
    assert section.rstrip() in (tmp_path / "report.md").read_text()
    assert len(ScriptedJudge.requests) == 9
    verdicts = (tmp_path / "judge" / "tempcompass.ordered.jsonl").read_text().splitlines()
    assert [json.loads(line)["verdict"] for line in verdicts] == ["yes", "yes", "no", "unparseable"]

    # again: only the failed request is sent; the verdicts already there are kept
    ScriptedJudge.requests, ScriptedJudge.fail = [], False
    with ChatClient(judge_url, max_retries=0) as client:
        report = run_judge(tmp_path, client)
    assert len(ScriptedJudge.requests) == 1 and "FAIL" in ScriptedJudge.requests[0]
    assert report["benchmarks"]["tempcompass"]["shuffle-frame"]["pending"] == 0
    assert report["benchmarks"]["tempcompass"]["shuffle-frame"]["unparseable"] == 1  # "FAIL" is not a verdict
    assert (tmp_path / "judge" / "tempcompass.ordered.jsonl").read_text().splitlines() == verdicts

    with ChatClient(judge_url, model="another-judge", max_retries=0) as client:
        with pytest.raises(SettingsMismatch, match="another-judge"):
            run_judge(tmp_path, client)


def test_eval_judge_command(tmp_path, judge_url, monkeypatch):
    from typer.testing import CliRunner

    from videor1.cli import app, common

    monkeypatch.setattr(common.console, "width", 200)  # a table as wide as it needs, whatever the terminal

    write_log(tmp_path / "videommmu.ordered.jsonl", [scored("videommmu", mc(0), said("B YES")),
                                                     scored("videommmu", mc(1), said("B FAIL"))])
    result = CliRunner().invoke(app, ["eval-judge", "--results", str(tmp_path), "--endpoint", judge_url,
                                      "--model", "judge-72b", "--concurrency", "2"])
    assert result.exit_code == 0, result.output
    rows = [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in result.output.splitlines() if "│" in line]
    assert ["VideoMMMU", "ordered", "2", "1", "0", "0", "1", "100.0"] in rows
    assert "1 request(s) failed" in result.output
    missing = CliRunner().invoke(app, ["eval-judge", "--results", str(tmp_path / "none"), "--endpoint",
                                       judge_url])
    assert missing.exit_code == 2 and "no per-sample results" in missing.output
