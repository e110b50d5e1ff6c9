"""The command line: --help, user errors as messages (exit 2), and all-or-nothing artifacts."""
import dataclasses

import pytest

from tests.helpers.tiny_headlines import STOPWORDS, write_csv, write_glove
from training import cli, pipeline
from training.config import TrainConfig
from training.errors import StopwordsError, TrainingError


def test_help_lists_every_option_with_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in text, field.name
    assert "(default: 20000)" in text and "(default: 100000)" in text and "(default: glove_finetuned)" in text


def test_the_parser_is_built_from_the_config_fields():
    # No option typed: exactly TrainConfig's defaults; each typed value gets its field's type.
    parse = cli.build_parser().parse_args
    assert TrainConfig(**{k: v for k, v in vars(parse([])).items() if k != "archived_only"}) == TrainConfig()
    args = parse(["--max-rows", "500", "--lr", "0.5", "--experiments", "random", "tfidf_logreg",
                  "--trust-gensim-data", "--eval-data", "dev.csv"])
    assert (args.max_rows, args.lr, args.experiments) == (500, 0.5, ["random", "tfidf_logreg"])
    assert args.trust_gensim_data is True and args.eval_data == "dev.csv"


def run_cli(capsys, *args):
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.err


def test_missing_data_file_is_a_message(tmp_path, capsys):
    code, err = run_cli(capsys, "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "a"))
    assert code == 2 and err.startswith("error: ") and "missing.csv: no such file" in err
    assert "Traceback" not in err and not (tmp_path / "a").exists()


@pytest.mark.parametrize("args, option", [
    (["--archive", "tfidf_logreg"], "--archive"),
    (["--experiments", "glove_finetuned", "bert"], "--experiments"),
    (["--experiments", "random"], "--archive"),
    (["--vocab-size", "2"], "--vocab-size"),
    (["--lr", "0"], "--lr"),
])
def test_bad_options_name_the_option(tmp_path, capsys, args, option):
    code, err = run_cli(capsys, "--data", "x.csv", *args)
    assert code == 2 and option in err


def test_missing_embeddings_file_is_a_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "english_stopwords", lambda: list(STOPWORDS))
    code, err = run_cli(capsys, "--data", str(write_csv(tmp_path / "news.csv")),
                        "--embeddings", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "a"))
    assert code == 2 and "--embeddings" in err and "no such file" in err


def test_a_gensim_data_name_without_the_flag_is_a_one_line_message(tmp_path, capsys, monkeypatch):
    import gensim.downloader

    monkeypatch.setattr(pipeline, "english_stopwords", lambda: list(STOPWORDS))
    monkeypatch.setattr(gensim.downloader, "load", lambda name: pytest.fail("downloaded " + name))
    code, err = run_cli(capsys, "--data", str(write_csv(tmp_path / "news.csv")),
                        "--embeddings", "glove-wiki-gigaword-100", "--out", str(tmp_path / "a"))
    assert code == 2 and "--trust-gensim-data" in err and err.count("\n") == 1


def test_an_evaluation_set_with_an_unknown_class_is_a_message(tmp_path, capsys):
    evaluation = tmp_path / "dev.csv"
    evaluation.write_text("title,category\nStocks rally,Business\nNew phone,Gadgets\n")
    code, err = run_cli(capsys, "--data", str(write_csv(tmp_path / "news.csv")),
                        "--eval-data", str(evaluation), "--out", str(tmp_path / "a"))
    assert code == 2 and "'Gadgets' (first at row 3) is not in the training data" in err
    assert not (tmp_path / "a").exists()


def test_missing_nltk_stopwords_says_how_to_install(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    from training.stopwords import english_stopwords
    with pytest.raises(StopwordsError, match=r"NLTK_DATA.*nltk.download\('stopwords'\)"):
        english_stopwords()


def test_failed_run_keeps_previous_artifacts(tmp_path, capsys, monkeypatch):
    out = tmp_path / "artifacts"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    monkeypatch.setattr(pipeline, "english_stopwords", lambda: list(STOPWORDS))

    def fail_halfway(directory, *args):
        (directory / "model.pt").write_text("half")
        raise TrainingError("disk full")

    monkeypatch.setattr(pipeline, "write_artifacts", fail_halfway)
    args = ["--data", str(write_csv(tmp_path / "news.csv")), "--embeddings",
            str(write_glove(tmp_path / "glove.txt")), "--out", str(out), "--epochs", "1",
            "--experiments", "glove_finetuned"]
    code, err = run_cli(capsys, *args)
    assert code == 2 and "disk full" in err
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".artifacts")] == []

    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "english_stopwords", lambda: list(STOPWORDS))
    assert cli.main(args) == 0
    assert not (out / "old.txt").exists() and (out / "model.pt").is_file()


def test_archived_only_trains_just_the_archived_experiment(tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.setattr(pipeline, "english_stopwords", lambda: list(STOPWORDS))
    out = tmp_path / "artifacts"
    # --archived-only wins over --experiments: what `make serve` needs, and nothing else.
    code, err = run_cli(capsys, "--data", str(write_csv(tmp_path / "news.csv")), "--out", str(out),
                        "--epochs", "1", "--embedding-dim", "8", "--archive", "word2vec",
                        "--experiments", "random", "tfidf_logreg", "--archived-only", "--threads", "1")
    assert code == 0, err
    assert list(json.loads((out / "metrics.json").read_text())["experiments"]) == ["word2vec"]
    assert json.loads((out / "train_config.json").read_text())["experiments"] == ["word2vec"]
    steps = json.loads((out / "step_seconds.json").read_text())
    assert "word2vec/epochs" in steps and not any(s.startswith(("random/", "tfidf")) for s in steps)
