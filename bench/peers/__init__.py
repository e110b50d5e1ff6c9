"""`make bench-peers`: TorchServe against FastAPI, Ray Serve, LitServe and BentoML on the same model/ code.

    run.py        the cases and their measurement (`python -m bench peers`)
    servers.py    the servers compared: names, addresses, how the peers are started
    grid.py       the TorchServe settings grid
    apps.py       the FastAPI peers (microbatch.py: their request batching)
    ray_serve.py  the Ray Serve peer
    lit_serve.py  the LitServe peer
    bento.py      the BentoML peer
    choice.py     what the figures say: ratios, targets, the shipped batch settings
    report.py     bench/peers.{json,md,png}

The peers' packages are bench-only (bench/requirements-peers.txt), never serving dependencies.
"""
