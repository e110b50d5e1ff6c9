"""Benchmarks of the served model: `python -m bench {run,peers,compare,profile}`, and
`python -m bench.scale` for training at several data sizes.

What they share is written once in `harness` (where the figures come from, a temporary root
kept for its logs, waiting, one measured `wrk` run, rounds in alternating order, answer
comparison, result files), on top of `load` (wrk), `server` (TorchServe with named archives),
`archives` (the echo floor and model-config variants) and `headlines` (request bodies).

    make bench          benchmark + report + inprocess
    make bench-peers    the peers/ package
    make bench-compare  compare
    make profile        profile
"""
