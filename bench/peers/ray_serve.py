"""The Ray Serve peer of `make bench-peers`: the same model/ code behind `@serve.batch`.

    python -m bench.peers.ray_serve --artifacts artifacts --port 8000 --replicas 2

starts a local Ray (no dashboard), deploys `NewsPeer` with `--replicas` replicas of one CPU
each on 127.0.0.1:PORT, prints READY and serves until SIGTERM/SIGINT, then shuts Serve and Ray down.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import ray
from ray import serve
from starlette.requests import Request

from bench.peers.apps import DEFAULT_MAX_BATCH, DEFAULT_MAX_DELAY_MS, PeerModel, peer_options
from serving import cli

# Requests a replica takes at once: Ray's default (5) would cap a batch at 5.
MAX_ONGOING_REQUESTS = 64


@serve.deployment
class NewsPeer:
    """One replica: a PeerModel with batched predictions and explanations."""

    def __init__(self, artifacts: str, max_batch: int, max_delay_ms: float) -> None:
        self.model = PeerModel(artifacts)
        for method in (self.predict, self.explain):
            method.set_max_batch_size(max_batch)
            method.set_batch_wait_timeout_s(max_delay_ms / 1000)

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH, batch_wait_timeout_s=DEFAULT_MAX_DELAY_MS / 1000)
    async def predict(self, texts: list[str]) -> list[dict]:
        return self.model.predict(texts)

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH, batch_wait_timeout_s=DEFAULT_MAX_DELAY_MS / 1000)
    async def explain(self, texts: list[str]) -> list[dict]:
        return self.model.explain(texts)

    async def __call__(self, request: Request) -> dict:
        text = (await request.json())["text"]
        if request.url.path.rstrip("/").endswith("/explanations"):
            return await self.explain(text)
        return await self.predict(text)


def build_parser() -> argparse.ArgumentParser:
    """The Ray Serve peer's options."""
    parser = cli.command_line("python -m bench.peers.ray_serve", __doc__.split("\n\n")[0],
                              parents=[peer_options()])
    parser.add_argument("--replicas", type=int, default=2, help="the deployment's replicas")
    parser.add_argument("--temp-dir", type=Path, default=None, help="Ray's session directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until told to stop (see the module doc)."""
    args = build_parser().parse_args(argv)

    def stop(signum, frame) -> None:
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    ray.init(num_cpus=args.replicas, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(args.temp_dir.resolve()) if args.temp_dir else None)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        app = NewsPeer.options(num_replicas=args.replicas, max_ongoing_requests=MAX_ONGOING_REQUESTS,
                               ray_actor_options={"num_cpus": 1}).bind(
            str(args.artifacts.resolve()), args.max_batch, args.max_delay_ms)
        serve.run(app, name="news_cnn_peer", route_prefix="/")
        print("READY", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
