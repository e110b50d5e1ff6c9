"""`make bench-peers`' logic without servers: answer comparison, refusal of a disagreeing
peer, alternation, ratios and targets, the choice of batch settings, and the result files."""
from __future__ import annotations

import json

import pytest

from bench import harness
from bench.peers import run as peers
from bench.peers import servers as peer_servers
from tests.helpers import fake_http
from tests.helpers.peer_rows import result

ANSWER = {"label": "Sports",
          "probabilities": {"Sports": 0.9, "World": 0.06, "Business": 0.03, "Sci/Tech": 0.01},
          "num_tokens": 3, "unknown_tokens": 0}
EXPLAINED = {**ANSWER, "tokens": ["final", "tennis", "tournament"], "explained_class": "Sports",
             "token_scores": [0.1, 0.7, 0.2]}


def test_the_same_answer_agrees_within_rounding_and_whatever_keys_are_added():
    nudged = dict(ANSWER, probabilities={k: v + 5e-5 for k, v in ANSWER["probabilities"].items()},
                  abstained=None)
    assert harness.disagreement(ANSWER, nudged) is None
    assert harness.disagreement(EXPLAINED, dict(EXPLAINED, token_scores=[0.1005, 0.7, 0.2]), True) is None


def test_abstained_answers_agree_on_their_null_label_whatever_the_explanation_keys():
    abstained = {"label": None, "probabilities": None, "num_tokens": 0, "unknown_tokens": 0,
                 "abstained": "no_known_words"}
    peer = {"label": None, "probabilities": None, "num_tokens": 0, "unknown_tokens": 0}
    assert harness.disagreement(dict(abstained, tokens=[]), peer, explanations=True) is None
    assert "label 'Sports'" in harness.disagreement(abstained, ANSWER)


@pytest.mark.parametrize("got, why", [
    (dict(ANSWER, label="World"), "label 'World'"),
    (dict(ANSWER, probabilities={**ANSWER["probabilities"], "World": 0.0605}), "probabilities differ"),
    (dict(ANSWER, probabilities={"Sports": 1.0}), "probability labels"),
    (None, "not an answer object"),
    ({"code": 500, "message": "Worker died."}, "label None"),
])
def test_a_different_answer_is_named(got, why):
    assert why in harness.disagreement(ANSWER, got)


@pytest.mark.parametrize("change, why", [
    ({"token_scores": [0.1, 0.72, 0.2]}, "token_scores"),
    ({"token_scores": [0.1, 0.7]}, "token_scores"),
    ({"tokens": ["final", "tennis"]}, "tokens"),
    ({"explained_class": "World"}, "explained_class"),
])
def test_a_different_explanation_is_named_and_ignored_for_predictions(change, why):
    assert why in harness.disagreement(EXPLAINED, dict(EXPLAINED, **change), explanations=True)
    assert harness.disagreement(EXPLAINED, dict(EXPLAINED, **change)) is None


class _Peer(fake_http.JSONHandler):
    """A peer answering ANSWER for every headline but the one named `wrong_for`."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        text = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"]
        self.send_json(200, dict(ANSWER, label="World") if text == self.server.wrong_for else ANSWER)


def test_a_peer_that_disagrees_on_one_headline_is_refused_naming_it():
    texts = [f"headline {i}" for i in range(30)]
    with fake_http.serve(_Peer, wrong_for="headline 17") as (url, _):
        endpoint = peer_servers.Endpoint("fastapi", url, "/predictions", "/explanations")
        assert peers.check_agreement([ANSWER] * 30, endpoint, texts) == \
            "'headline 17': label 'World' instead of 'Sports'"
    with fake_http.serve(_Peer, wrong_for=None) as (url, _):
        endpoint = peer_servers.Endpoint("fastapi", url, "/predictions", "/explanations")
        assert peers.check_agreement([ANSWER] * 30, endpoint, texts) is None


def test_rounds_alternate_the_order_and_keep_each_servers_best():
    order = []
    figures = {"a": iter([100.0, 300.0, 200.0]), "b": iter([50.0, 40.0, 60.0])}

    def run(name):
        def call():
            order.append(name)
            return result(next(figures[name]))
        return call

    best = harness.best_of_rounds({"a": run("a"), "b": run("b")}, rounds=3)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert {k: v.rps for k, v in best.items()} == {"a": 300.0, "b": 60.0}


def test_unknown_peer_cases_are_refused_before_anything_starts(capsys):
    from bench.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(["peers", "--cases", "peers,gird"])
    assert exit_.value.code == 2
    assert "unknown case(s) gird; choose from peers,explanations,grid" in capsys.readouterr().err


def test_missing_peer_packages_get_a_one_line_hint_not_a_traceback(tmp_path, monkeypatch, capsys):
    import importlib.util

    from bench.__main__ import main
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    for name in ("news_cnn.mar", "config.properties"):
        (tmp_path / name).write_text("")
    code = main(["peers", "--mar", str(tmp_path / "news_cnn.mar"), "--artifacts", str(tmp_path),
                 "--config", str(tmp_path / "config.properties"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    # Every missing peer is named (the others may be missing too: `make install` has none of them).
    listed = err.removeprefix("error: ").split(" not installed")[0].split(", ")
    assert "ray" in listed and "make bench-peers" in err
    assert not (tmp_path / "out").exists()
