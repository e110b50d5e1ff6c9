"""Jobs in forked worker processes: results in order, errors raised here, dead workers named."""
import functools
import os

import pytest

from training.errors import DataError
from training.parallel import can_fork, run_forked

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork")


def square_with_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def jobs_of(values):
    return {f"job{v}": functools.partial(square_with_pid, v) for v in values}


def test_results_come_back_in_the_jobs_order_from_other_processes():
    results = run_forked(jobs_of([5, 1, 4, 2, 3]), workers=2)
    assert list(results) == ["job5", "job1", "job4", "job2", "job3"]
    assert [square for square, _ in results.values()] == [25, 1, 16, 4, 9]
    pids = {pid for _, pid in results.values()}
    assert os.getpid() not in pids and len(pids) == 5


def test_one_worker_runs_here():
    results = run_forked(jobs_of([2, 3]), workers=1)
    assert results == {"job2": (4, os.getpid()), "job3": (9, os.getpid())}


def fail() -> None:
    raise DataError("row 7 has an empty title")


def test_a_job_error_is_raised_here_with_its_type():
    with pytest.raises(DataError, match="row 7"):
        run_forked({"ok": functools.partial(square_with_pid, 2), "bad": fail}, workers=2)


def test_a_worker_that_dies_is_named_with_its_exit_code():
    with pytest.raises(RuntimeError, match=r"worker process of crash died \(exit code 3\)"):
        run_forked({"ok": functools.partial(square_with_pid, 2), "crash": functools.partial(os._exit, 3)},
                   workers=2)
