"""The TorchServe settings grid of `make bench-peers` without a server: its points, their archive
copies, their rows, the choice among batching, workers and frontend settings, and the report."""
from __future__ import annotations

import pytest

from bench import archives
from bench.peers import choice as peer_choice
from bench.peers import grid
from bench.peers import report as peers_report
from bench.peers import run as peers
from tests.helpers.peer_rows import result as _result
from tests.helpers.peer_rows import rows as _rows

SHIPPED = {"batchSize": 32, "maxBatchDelay": 1, "minWorkers": 2, "maxWorkers": 4}


def test_points_vary_one_setting_at_a_time_around_the_shipped_one():
    points = grid.points(SHIPPED, [(8, 1), (32, 1)], workers=(1, 2, 3), frontends=["default", "serial-gc"])
    assert [(p.batch_size, p.delay_ms, p.workers, p.frontend) for p in points] == [
        (8, 1, 2, "default"), (32, 1, 2, "default"),  # the batching grid at the shipped workers
        (32, 1, 1, "default"), (32, 1, 3, "default"),  # workers 2 is the shipped point: once
        (32, 1, 2, "serial-gc"),
    ]
    assert len({p.label for p in points}) == len(points)  # one load target each
    assert points[-1].label == "torchserve[serial-gc]:grid_b32_d1_w2"


def test_peer_settings_grid_holds_every_frontend_and_worker_count():
    settings = peers.PeerSettings(mar=None, artifacts=None, config=None, out_dir=None, data=None)
    points = settings.grid_points(SHIPPED)
    assert {p.frontend for p in points} == set(grid.FRONTENDS)
    assert {p.workers for p in points} == {1, 2, 3}
    assert len(points) == 9 + 2 + 3


def test_each_model_setting_gets_an_archive_copy_and_frontends_share_it(tmp_path):
    source = archives.build_echo(tmp_path / "src", dict(SHIPPED))
    points = [grid.GridPoint(32, 1, 3), grid.GridPoint(32, 1, 3, "netty-1"), grid.GridPoint(8, 2, 2)]
    grid.build_archives(source, tmp_path / "store", points, SHIPPED)
    store = tmp_path / "store"
    assert sorted(p.name for p in store.iterdir()) == ["grid_b32_d1_w3.mar", "grid_b8_d2_w2.mar"]
    config = archives.read_model_config(store / "grid_b32_d1_w3.mar")
    assert [config[k] for k in ("batchSize", "maxBatchDelay", "minWorkers", "maxWorkers")] == [32, 1, 3, 4]
    wide = grid.GridPoint(32, 1, 6).model_config(SHIPPED)
    assert wide["minWorkers"] == wide["maxWorkers"] == 6  # maxWorkers never below minWorkers


def _grid_rows(points: dict) -> list[dict]:
    """points: GridPoint -> (p50 at c=1, req/s at c=64), rows as bench.peers.run writes them."""
    out = []
    for point, (p50, rps) in points.items():
        fields = grid.row_fields(point, grid.FRONTENDS)
        applied = {"batchSize": point.batch_size, "maxBatchDelay": point.delay_ms,
                   "workers": point.workers}
        out.append(dict(peers.case_row("torchserve", _result(100, 1, p50)), **fields, applied=applied))
        out.append(dict(peers.case_row("torchserve", _result(rps, 64, 5.0)), **fields, applied=applied))
    return out


def test_a_frontend_setting_that_wins_by_the_objective_is_chosen_with_its_properties():
    rows = _grid_rows({grid.GridPoint(32, 1, 2): (2.8, 9100),
                       grid.GridPoint(32, 1, 2, "serial-gc"): (2.7, 9700),
                       grid.GridPoint(32, 1, 3): (2.6, 5000)})  # best peer: 6,000 req/s at c=64
    choice = peer_choice.choose_defaults(rows, _rows())
    assert (choice["batchSize"], choice["workers"], choice["frontend"]) == (32, 2, "serial-gc")
    assert choice["frontend_properties"] == grid.SERIAL_GC


def test_a_point_served_with_other_workers_than_asked_is_never_chosen():
    rows = _grid_rows({grid.GridPoint(32, 1, 2): (2.8, 9100), grid.GridPoint(32, 1, 3): (2.7, 9700)})
    for row in rows:
        if row["workers"] == 3:
            row["applied"]["workers"] = 2
    choice = peer_choice.choose_defaults(rows, _rows())
    assert (choice["workers"], choice["not_applied"]) == (2, [{"batchSize": 32, "maxBatchDelay": 1,
                                                              "workers": 3, "frontend": "default"}])


def test_the_report_names_each_points_workers_and_frontend_and_the_frontends_properties():
    rows = _grid_rows({grid.GridPoint(32, 1, 2): (2.8, 9100),
                       grid.GridPoint(32, 1, 2, "netty-1"): (2.9, 9200)})
    text = "\n".join(peers_report._grid_table(rows))
    assert "| 32 | 1 | 2 | netty-1 | 100 | 2.90 | 2.00 | 9200 | 5.00 | 2.00 | 32 / 1 ms / 2 workers |" in text
    assert "- frontend netty-1: `number_of_netty_threads=1`, `netty_client_threads=1`" in text
    assert "- frontend default: config.properties as shipped" in text


def test_grid_parts_leave_out_the_others_but_never_the_shipped_point():
    settings = peers.PeerSettings(mar=None, artifacts=None, config=None, out_dir=None, data=None,
                                  grid_parts=("frontends",))
    points = settings.grid_points(SHIPPED)
    assert [(p.batch_size, p.delay_ms, p.workers) for p in points] == [(32, 1, 2)] * len(grid.FRONTENDS)
    assert [p.frontend for p in points] == list(grid.FRONTENDS)


def test_unknown_grid_parts_are_refused_before_anything_starts(capsys):
    from bench.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(["peers", "--grid-parts", "frontends,jvm"])
    assert exit_.value.code == 2
    assert "unknown case(s) jvm; choose from batching,workers,frontends" in capsys.readouterr().err
