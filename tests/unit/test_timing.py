"""Step timing of a training run."""
import time

from training.timing import StepTimer


def test_steps_add_up_in_first_run_order():
    timer = StepTimer()
    with timer.step("b"):
        time.sleep(0.02)
    with timer.step("a"):
        pass
    with timer.step("b"):
        time.sleep(0.02)
    assert list(timer.seconds) == ["b", "a"]
    assert timer.seconds["b"] >= 0.04 > timer.seconds["a"]


def test_a_failing_step_is_still_timed():
    timer = StepTimer()
    try:
        with timer.step("boom"):
            raise ValueError
    except ValueError:
        pass
    assert "boom" in timer.seconds


def test_table_shows_seconds_and_share():
    timer = StepTimer()
    timer.seconds.update({"read": 1.0, "word2vec/epochs": 3.0})
    lines = timer.table().splitlines()
    assert lines[0].split() == ["read", "1.0", "s", "25.0%"]
    assert lines[1].split() == ["word2vec/epochs", "3.0", "s", "75.0%"]


def test_steps_timed_elsewhere_add_up():
    timer = StepTimer()
    timer.seconds["read"] = 1.0
    timer.add({"read": 0.5, "word2vec/epochs": 2.0})
    assert timer.seconds == {"read": 1.5, "word2vec/epochs": 2.0}
