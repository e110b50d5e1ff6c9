"""Benchmarks of the served model (docs/benchmarks.md): `python -m bench {run,peers,compare,profile}`,
and the stand-alone `python -m bench.batch_speed` (files of headlines) and
`python -m bench.training_scale` (training at several data sizes). What they share is written
once: `harness` (machine, temporary root, measured `wrk` runs in alternating rounds, answer
comparison, result files) on `load` (wrk), `served_models` (TorchServe with named archives),
`archives` (the echo floor, model-config variants) and `headlines` (request bodies).
"""
