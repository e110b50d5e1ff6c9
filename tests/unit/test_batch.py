"""`news-cnn predict --file`: every row back in input order with its input columns unchanged,
refused rows with the handler's message, a run that stops leaves whole rows and --resume
finishes it without resending them, and the exit status says only what stops a run.

The model is the project's real handler run in process (serving.offline), alone or behind
a fake TorchServe REST API (handler_http), so answers and refusals are the handler's own.
"""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from client import batch, sending, tables
from client.api import ClientError, KeyRefused
from client.commands import ArchiveInProcess, execute
from client.news_cnn import build_parser
from serving.offline import OfflineModel
from serving.properties import REPO_ROOT
from tests.helpers import handler_http
from tests.helpers.tiny_artifacts import TINY_WORDS

ANSWERS = list(tables.ANSWER_COLUMNS)


@pytest.fixture(scope="module")
def offline(tiny_artifacts):
    with OfflineModel(tiny_artifacts) as model:
        yield model


@pytest.fixture
def model(offline):
    return ArchiveInProcess(offline)


class Counting:
    """A model that records what it is sent, says `max_texts` per request, and can stop
    (raise `stop_with`) on its `stop_at`-th request."""

    def __init__(self, inner, max_texts: int, stop_at: int | None = None,
                 stop_with: BaseException | None = None) -> None:
        self.inner, self.max_texts, self.stop_at, self.stop_with = inner, max_texts, stop_at, stop_with
        self.sent: list[str] = []
        self.requests = 0

    def send(self, body: dict, explain: bool = False) -> object:
        self.requests += 1
        if self.stop_at is not None and self.requests >= self.stop_at:
            raise self.stop_with
        self.sent.extend(body.get("texts") or [body.get("text")])
        return self.inner.send(body, explain)

    def metadata(self) -> dict:
        return {**self.inner.metadata(), "max_texts": self.max_texts}


def headlines(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(TINY_WORDS, rng.randint(1, 5))).capitalize() for _ in range(count)]


def write_rows(path: Path, rows: list[list[str]], header=("id", "title", "note")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def table(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.reader(f))


def alone(model, text: str) -> dict:
    """The handler's answer to one headline sent alone: what its row must carry."""
    return model.send({"text": text})


def test_every_row_comes_back_in_input_order_with_its_columns_unchanged(model, tmp_path):
    texts = headlines(50)
    # Fields a CSV must quote, and a note column with a newline, survive unchanged.
    rows = [[str(i), t, f'note "{i}", with comma\nand newline' if i % 7 == 0 else ""]
            for i, t in enumerate(texts)]
    source = write_rows(tmp_path / "in.csv", rows)
    with handler_http.serve(model.model) as (client, httpd):
        # Answers slowed at random, so requests finish out of order with 4 in flight.
        httpd.delays = [random.Random(1).uniform(0, 0.03) for _ in range(20)]
        summary = batch.predict_file(Counting(client, max_texts=3), str(source), str(tmp_path / "out.csv"),
                                     batch.BatchOptions(in_flight=4))
    out = table(tmp_path / "out.csv")
    assert out[0] == ["id", "title", "note"] + ANSWERS
    assert [r[:3] for r in out[1:]] == rows
    for row, text in zip(out[1:], texts, strict=True):
        answer = alone(model, text)
        confidence = str(answer["probabilities"][answer["label"]]) if answer["label"] else ""
        assert row[3:] == [answer["label"] or "", confidence, answer["abstained"] or "", ""]
    assert max(len(b["texts"]) for b in httpd.bodies) == 3 and len(httpd.bodies) == 17
    assert (summary.rows, summary.refused) == (50, 0) and summary.labelled + summary.abstained == 50


def test_refused_rows_get_the_handlers_message_and_the_run_goes_on(model, tmp_path):
    limit = model.metadata()["max_chars"]
    texts = headlines(12)
    bad = {2: "", 5: "tennis " * (limit // 7 + 1), 6: "   ", 9: "Oil \udcff prices"}  # \udcff: byte 0xff
    rows = [[str(i), bad.get(i, t), ""] for i, t in enumerate(texts)]
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,title,note\n" + b"".join(
        f"{i},{title},{note}\n".encode("utf-8", "surrogateescape") for i, title, note in rows))
    counting = Counting(model, max_texts=4)
    summary = batch.predict_file(counting, str(source), str(tmp_path / "out.csv"), batch.BatchOptions())
    out = table(tmp_path / "out.csv")
    assert [r[:3] for r in out[1:]] == rows  # the undecodable byte is written back as it came
    errors = {i: r[6] for i, r in enumerate(out[1:]) if r[6]}
    assert errors[2].startswith("empty_text: the headline is empty")
    assert errors[6].startswith("empty_text:")
    assert errors[5].startswith("text_too_long: the headline has") and str(limit) in errors[5]
    assert errors[9].startswith("invalid_utf8:") and "0xff" in errors[9]
    assert set(errors) == {2, 5, 6, 9} and all(out[1 + i][3] == "" for i in errors)
    for i, row in enumerate(out[1:]):
        if i not in bad:
            assert row[3] == (alone(model, texts[i])["label"] or "")
    assert "Oil \udcff prices" not in counting.sent  # never sent: JSON cannot carry it
    assert summary.refused == 4


def test_a_request_refused_without_an_index_is_split_until_it_passes(tiny_artifacts, tmp_path):
    # The server's real limit (2) is below the one it announces (5): its 413s name no
    # headline, and halving the request gets every headline answered.
    config = {"handler": {"max_texts": 2}}
    with OfflineModel(tiny_artifacts, model_config=config) as strict:
        counting = Counting(ArchiveInProcess(strict), max_texts=5)
        texts = headlines(11)
        source = write_rows(tmp_path / "in.csv", [[str(i), t, ""] for i, t in enumerate(texts)])
        summary = batch.predict_file(counting, str(source), str(tmp_path / "out.csv"), batch.BatchOptions())
    assert summary.refused == 0 and summary.rows == 11
    assert [r[1] for r in table(tmp_path / "out.csv")[1:]] == texts


def test_probabilities_add_a_column_per_class(model, tmp_path):
    texts = headlines(5)
    source = write_rows(tmp_path / "in.csv", [[str(i), t, ""] for i, t in enumerate(texts)])
    batch.predict_file(model, str(source), str(tmp_path / "out.csv"), batch.BatchOptions(probabilities=True))
    out = table(tmp_path / "out.csv")
    classes = model.metadata()["labels"]
    assert out[0][3:] == ANSWERS + [f"prob_{c}" for c in classes]
    for row, text in zip(out[1:], texts, strict=True):
        probabilities = alone(model, text)["probabilities"] or {}
        assert row[7:] == [str(probabilities[c]) if c in probabilities else "" for c in classes]


def test_json_lines_keep_every_key_and_name_rows_without_a_text(model, tmp_path):
    lines = [{"title": "Tennis cup final", "id": 1, "tags": ["a", {"b": None}]},
             {"id": 2},
             {"title": 7, "id": 3},
             {"title": "Oil prices", "id": 4}]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines[:2]) + "\n"
                      + "".join(json.dumps(line) + "\n" for line in lines[2:]))
    batch.predict_file(model, str(source), str(tmp_path / "out.jsonl"), batch.BatchOptions())
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in o.items() if k not in ANSWERS} for o in out] == lines
    assert all(list(o)[-4:] == ANSWERS for o in out)
    assert out[1]["error"] == "missing_text: the row has no 'title' field" and out[1]["label"] is None
    assert out[2]["error"] == "invalid_text: 'title' is a number, not a string"
    assert out[0]["label"] == alone(model, "Tennis cup final")["label"]
    assert isinstance(out[0]["confidence"], float)


def test_a_json_lone_surrogate_is_a_row_error_and_the_output_stays_valid_json(model, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"title": "Tennis \\ud800 cup", "id": 1}\n{"title": "Oil prices", "id": 2}\n')
    batch.predict_file(model, str(source), str(tmp_path / "out.jsonl"), batch.BatchOptions())
    first, second = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert first["title"] == "Tennis \ud800 cup" and first["label"] is None
    assert first["error"].startswith("invalid_text:") and "U+D800" in first["error"]
    assert second["label"] == alone(model, "Oil prices")["label"] and second["error"] is None


def stop_after(model, source: Path, out: Path, requests: int, stop_with: BaseException) -> None:
    with pytest.raises(type(stop_with)):
        batch.predict_file(Counting(model, max_texts=4, stop_at=requests, stop_with=stop_with),
                           str(source), str(out), batch.BatchOptions(in_flight=2))


@pytest.mark.parametrize("stop_with", [KeyboardInterrupt(), KeyRefused("HTTP 400: InvalidKeyException"),
                                       ConnectionError("connection refused")])
def test_a_stopped_run_leaves_whole_rows_and_resume_sends_only_the_rest(model, tmp_path, stop_with):
    texts = headlines(30)
    source = write_rows(tmp_path / "in.csv", [[str(i), t, "x"] for i, t in enumerate(texts)])
    batch.predict_file(model, str(source), str(tmp_path / "whole.csv"), batch.BatchOptions())
    out = tmp_path / "out.csv"
    stop_after(model, source, out, requests=4, stop_with=stop_with)
    partial = table(out)
    assert partial == table(tmp_path / "whole.csv")[:len(partial)] and 1 <= len(partial) - 1 < 30
    resumed = Counting(model, max_texts=4)
    # One request out at a time, so `sent` records them in the order they were sent.
    summary = batch.predict_file(resumed, str(source), str(out), batch.BatchOptions(in_flight=1),
                                 resume=True)
    assert resumed.sent == texts[len(partial) - 1:]
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert summary.resumed == len(partial) - 1 and summary.resumed + summary.rows == 30


@pytest.mark.parametrize("cut", [1, 9, 30])
def test_a_row_cut_off_mid_write_is_dropped_and_answered_again(model, tmp_path, cut):
    texts = headlines(10)
    rows = [[str(i), t, 'quoted "note",\nover two lines'] for i, t in enumerate(texts)]
    source = write_rows(tmp_path / "in.csv", rows)
    whole = tmp_path / "whole.csv"
    batch.predict_file(model, str(source), str(whole), batch.BatchOptions())
    data = whole.read_bytes()
    out = tmp_path / "out.csv"
    out.write_bytes(data[:len(data) - cut])  # killed inside the last row
    counting = Counting(model, max_texts=4)
    batch.predict_file(counting, str(source), str(out), batch.BatchOptions(), resume=True)
    assert counting.sent == texts[-1:]
    assert out.read_bytes() == data


def test_resume_refuses_an_output_of_another_input_or_other_options(model, tmp_path):
    source = write_rows(tmp_path / "in.csv", [[str(i), t, ""] for i, t in enumerate(headlines(6))])
    other = write_rows(tmp_path / "other.csv", [[str(i), t, ""] for i, t in enumerate(headlines(6, seed=1))])
    out = tmp_path / "out.csv"
    batch.predict_file(model, str(source), str(out), batch.BatchOptions())
    before = out.read_bytes()
    with pytest.raises(tables.InputError, match="does not continue"):
        batch.predict_file(model, str(other), str(out), batch.BatchOptions(), resume=True)
    with pytest.raises(tables.InputError, match="header"):
        batch.predict_file(model, str(source), str(out), batch.BatchOptions(probabilities=True), resume=True)
    with pytest.raises(tables.InputError, match="exists: --resume finishes it, --force replaces it"):
        batch.predict_file(model, str(source), str(out), batch.BatchOptions())
    assert out.read_bytes() == before
    counting = Counting(model, max_texts=4)
    batch.predict_file(counting, str(source), str(out), batch.BatchOptions(), resume=True)
    assert counting.sent == [] and out.read_bytes() == before  # already whole: nothing to send


# -- the command line ------------------------------------------------------------------------

def cli(tmp_path, url: str, *args: str) -> list[str]:
    handler_http.write_config(tmp_path, url)
    return ["--config", str(tmp_path / "config.properties"), "--key-file", str(tmp_path / "key_file.json"),
            "--retries", "1", "predict", *args]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = execute(build_parser().parse_args(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    (b"", "is empty"),
    (b"headline,id\nOil,1\n", "has no column 'title'"),
    (b"title,id\nOil,1\nTennis,2,extra\n", "line 3: 3 fields where the header has 2"),
    (b"title,label\nOil,x\n", "already has the column(s) 'label'"),
])
def test_an_input_that_cannot_be_read_exits_2_with_one_line(model, tmp_path, capsys, content, message):
    source = tmp_path / "in.csv"
    if content is not None:
        source.write_bytes(content)
    with handler_http.serve(model.model) as (client, httpd):
        code, err = run_cli(cli(tmp_path, client.url, "--file", str(source),
                                "--out", str(tmp_path / "out.csv")), capsys)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_bad_json_line_exits_2_naming_it_and_the_rows_before_it_stay(model, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"title": t}) + "\n" for t in headlines(9)) + "[1, 2]\n")
    out = tmp_path / "out.jsonl"
    with handler_http.serve(model.model, metadata={"max_texts": 3}) as (client, httpd):
        code, err = run_cli(cli(tmp_path, client.url, "--file", str(source),
                                "--out", str(out), "--in-flight", "1"), capsys)
    assert code == 2 and "line 10: not a JSON object" in err and err.count("\n") == 1
    assert "9 answered rows are in" in err and len(out.read_text().splitlines()) == 9


def test_no_server_exits_1_with_one_line_and_keeps_what_was_written(tmp_path, capsys):
    from serving.server import free_port

    source = write_rows(tmp_path / "in.csv", [["1", "Oil prices", ""]])
    code, err = run_cli(cli(tmp_path, f"http://127.0.0.1:{free_port()}", "--file", str(source),
                            "--out", str(tmp_path / "out.csv")), capsys)
    assert code == 1 and err.count("\n") == 1
    assert "TorchServe did not answer at http://127.0.0.1:" in err and "Connection refused" in err


def test_a_refused_key_exits_1_and_the_rows_written_stay(model, tmp_path, capsys):
    source = write_rows(tmp_path / "in.csv", [[str(i), t, ""] for i, t in enumerate(headlines(200))])
    out = tmp_path / "out.csv"
    with handler_http.serve(model.model, metadata={"max_texts": 10}) as (client, httpd):
        argv = cli(tmp_path, client.url, "--file", str(source), "--out", str(out),
                   "--in-flight", "1")
        httpd.delays = [0.01] * 1000
        # Renewed mid-run: every call from the 4th on is refused.
        original = httpd.RequestHandlerClass.do_POST

        def refuse_after_three(handler):
            handler.server.refuse_key = len(handler.server.bodies) >= 3
            original(handler)

        httpd.RequestHandlerClass.do_POST = refuse_after_three
        try:
            code, err = run_cli(argv, capsys)
        finally:
            httpd.RequestHandlerClass.do_POST = original
    assert code == 1 and err.count("\n") == 1 and "InvalidKeyException" in err
    assert "30 answered rows are in" in err and "--resume" in err
    assert len(table(out)) == 31


def test_an_existing_output_is_kept_unless_forced(model, tmp_path, capsys):
    source = write_rows(tmp_path / "in.csv", [["1", "Oil prices", ""]])
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    with handler_http.serve(model.model) as (client, httpd):
        argv = cli(tmp_path, client.url, "--file", str(source), "--out", str(out))
        assert run_cli(argv, capsys)[0] == 2 and out.read_text() == "precious\n"
        code, err = run_cli(argv + ["--force"], capsys)
    assert code == 0 and table(out)[1][:2] == ["1", "Oil prices"]
    assert err.startswith("1 rows to ") and "rows/s" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    ([], "give one or more headlines, or --file"),
    (["Oil", "--file", "x.csv"], "not both"),
    (["Oil", "--out", "x.csv"], "--out goes with --file"),
    (["Oil", "--resume"], "--resume goes with --file"),
])
def test_file_options_without_a_file_are_refused(capsys, args, message):
    code, err = run_cli(["predict", *args], capsys)
    assert code == 2 and message in err


def test_the_progress_bar_is_drawn_only_on_a_terminal(model, tmp_path, monkeypatch, capsys):
    source = write_rows(tmp_path / "in.csv", [[str(i), t, ""] for i, t in enumerate(headlines(20))])
    with handler_http.serve(model.model) as (client, httpd):
        argv = cli(tmp_path, client.url, "--file", str(source), "--out", "-")
        _, quiet = run_cli(argv, capsys)
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        _, drawn = run_cli(argv, capsys)
    assert quiet.count("\n") == 1 and "row/s" not in quiet
    assert "20/20" in drawn and "row/s" in drawn


def subprocess_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def test_stdin_to_stdout(model, tmp_path):
    texts = headlines(7)
    data = "".join(json.dumps({"title": t, "n": i}) + "\n" for i, t in enumerate(texts))
    with handler_http.serve(model.model) as (client, httpd):
        argv = cli(tmp_path, client.url, "--file", "-", "--format", "jsonl")
        result = subprocess.run([sys.executable, "-m", "client", *argv], input=data.encode(),
                                capture_output=True, env=subprocess_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [(o["title"], o["n"], o["label"]) for o in out] == [
        (t, i, alone(model, t)["label"]) for i, t in enumerate(texts)]


def test_ctrl_c_leaves_a_valid_file_that_resume_finishes(model, tmp_path):
    texts = headlines(120)
    source = write_rows(tmp_path / "in.csv", [[str(i), t, ""] for i, t in enumerate(texts)])
    whole, out = tmp_path / "whole.csv", tmp_path / "out.csv"
    batch.predict_file(model, str(source), str(whole), batch.BatchOptions())
    # The server answers 3 requests of 5 headlines, then holds the next until Ctrl-C is sent.
    gate = threading.Event()
    with handler_http.serve(model.model, metadata={"max_texts": 5}, gate=gate, ungated=3) as (client, httpd):
        argv = cli(tmp_path, client.url, "--file", str(source), "--out", str(out))
        # SIGINT back to its default in the child: a test run started in the background by a
        # non-interactive shell ignores SIGINT, and the child would inherit that (no Ctrl-C).
        process = subprocess.Popen([sys.executable, "-m", "client", *argv, "--in-flight", "1"],
                                   env=subprocess_env(), stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 16):
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        # The held request gets no answer: the run gives up on it after STOP_WAIT_S (a pool's
        # threads would hold the process until the request's 30 s timeout).
        _, err = process.communicate(timeout=60)
        assert time.monotonic() - interrupted < sending.STOP_WAIT_S + 10  # margin for a loaded machine
        gate.set()
        assert process.returncode == 130 and "--resume" in err
        assert err.startswith("interrupted; 15 answered rows are in")
        partial = table(out)
        assert partial == table(whole)[:16]
        before = len(httpd.bodies)
        result = subprocess.run([sys.executable, "-m", "client", *argv, "--resume"], env=subprocess_env(),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        resent = [t for body in httpd.bodies[before:] for t in body["texts"]]
    assert out.read_bytes() == whole.read_bytes()
    assert sorted(resent) == sorted(texts[len(partial) - 1:])  # requests in flight finish in any order


class _Gate:
    """Answers every chunk at once except the one starting with "b0": that one waits for
    `release`, then is refused for its first headline (which would split it)."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def send(self, body: dict, explain: bool = False) -> object:
        texts = body["texts"] if "texts" in body else [body["text"]]
        self.sent.append(list(texts))
        if texts == ["b0", "b1"]:
            self.entered.set()
            self.release.wait(5)
            raise ClientError("HTTP 400: bad", 400, {"error": "invalid_text", "index": 0})
        return [{"label": "Sports"} for _ in texts] if "texts" in body else {"label": "Sports"}


def test_a_request_still_out_when_the_run_stops_sends_nothing_more():
    gate = _Gate()
    records = [tables.Record(i, [t], t) for i, t in enumerate(["a0", "a1", "b0", "b1", "c0", "c1"])]
    run = sending.answered_in_order(gate, records, max_texts=2, in_flight=2)
    assert [r.text for r, _ in next(run)] == ["a0", "a1"]
    assert gate.entered.wait(5)
    threading.Timer(0.2, gate.release.set).start()
    run.close()  # the consumer stops while "b0, b1" is out
    # Refused after the stop, "b0, b1" is not split and its headlines sent alone.
    assert gate.sent == [["a0", "a1"], ["b0", "b1"]]
