"""Benchmarks of the served model: `python -m bench {run,peers,compare,profile}`;
`python -m bench.batch_speed` (files of headlines) and `python -m bench.training_scale`
(training at several data sizes) stand alone.

What they share is written once in `harness` (machine, temporary root, one measured `wrk`
run, rounds in alternating order, answer comparison, result files), on top of `load` (wrk),
`served_models` (TorchServe with named archives, its workers), `archives` (the echo floor and
model-config variants) and `headlines` (request bodies).

    make bench          benchmark + report + inprocess
    make bench-peers    the peers/ package
    make bench-compare  compare
    make profile        profile
"""
