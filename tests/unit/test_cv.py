"""Cross-validation folds never touch the test split; results accumulate per recipe."""
import json

import pandas as pd

from training.config import TrainConfig
from training.cv import LESSON_RECIPE, fold_splits, recipe_name, save_result
from training.data import split
from training.pipeline import CV_JSON, CV_TABLE, carry_cv_results


def frame(rows_per_class: int = 40) -> pd.DataFrame:
    categories = ["Business", "Sci/Tech", "Sports", "World"]
    titles = [f"headline {i}" for i in range(rows_per_class * 4)]
    return pd.DataFrame({"title": titles, "category": categories * rows_per_class})


def test_folds_partition_the_development_rows_and_keep_the_test_split_out():
    parts = split(frame(), seed=1234)
    development = pd.concat([parts.train, parts.val], ignore_index=True)
    folds = fold_splits(development, 5, seed=1234)
    held_out = [set(f.test["title"]) for f in folds]
    assert sorted(t for s in held_out for t in s) == sorted(development["title"])  # each row once
    test_titles = set(parts.test["title"])
    for fold, scored in zip(folds, held_out, strict=True):
        used = set(fold.train["title"]) | set(fold.val["title"])
        assert not used & scored and not (used | scored) & test_titles
        assert len(used) + len(scored) == len(development)
        # Stratified: every class in the same share (+-1 row) in each scored fold.
        counts = fold.test["category"].value_counts()
        assert counts.max() - counts.min() <= 1


def test_recipe_names_and_accumulated_results(tmp_path):
    seed = TrainConfig(**LESSON_RECIPE)
    assert recipe_name(seed) == "glove_finetuned (lesson recipe)"
    changed = TrainConfig(**{**LESSON_RECIPE, "word_dropout": 0.2, "epochs": 20})
    assert recipe_name(changed) == "glove_finetuned epochs=20 word_dropout=0.2"
    entry = {"folds": 5, "weighted_f1": {"mean": 0.8, "std": 0.01}, "flip_rate": {"mean": 0.2, "std": 0.02}}
    save_result(tmp_path, "a", entry)
    save_result(tmp_path, "b", {**entry, "weighted_f1": {"mean": 0.81, "std": 0.01}})
    save_result(tmp_path, "a", entry)  # a rerun replaces its row, in place
    assert list(json.loads((tmp_path / "cv.json").read_text())) == ["a", "b"]
    table = (tmp_path / "cv.md").read_text()
    assert "| a | 5 | - | 0.8000 ± 0.0100 | 20.0% ± 2.0% |" in table and table.count("| a |") == 1


def test_a_training_run_keeps_the_cv_results_of_the_directory_it_replaces(tmp_path):
    previous, staging = tmp_path / "artifacts", tmp_path / "staging"
    previous.mkdir(), staging.mkdir()
    save_result(previous, "a", {"folds": 5, "weighted_f1": {"mean": 0.8, "std": 0.01},
                                "flip_rate": {"mean": 0.2, "std": 0.02}})
    carry_cv_results(previous, staging)
    assert (staging / CV_JSON).read_text() == (previous / CV_JSON).read_text()
    assert (staging / CV_TABLE).read_text() == (previous / CV_TABLE).read_text()


def test_more_folds_than_rows_of_a_class_is_a_one_line_error(tmp_path, capsys):
    from tests.helpers.tiny_headlines import write_csv
    from training.cli import main

    assert main(["--data", str(write_csv(tmp_path / "news.csv")), "--cv", "20",
                 "--out", str(tmp_path / "out")]) == 2
    assert "--cv 20: a class has only 12 development rows" in capsys.readouterr().err
