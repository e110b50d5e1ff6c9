"""The LitServe peer of `make bench-peers`: the same model/ code behind LitServe's batching.

    python -m bench.peers.lit_serve --artifacts artifacts --port 8000 --workers 2

Each endpoint is a `LitAPI` with LitServe's own batching (`max_batch_size`, `batch_timeout`),
`--workers` inference processes and the ZeroMQ fast queue, as LitServe's docs advise for
throughput. Serves on 127.0.0.1:PORT until SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import litserve as ls
from fastapi import HTTPException

from bench.peers.apps import DEFAULT_MAX_BATCH, DEFAULT_MAX_DELAY_MS, PeerModel, peer_options
from serving import cli


def headline_of(request: object) -> str:
    """The text of a `{"text": "..."}` body; HTTP 422 (as the FastAPI peers) otherwise."""
    text = request.get("text") if isinstance(request, dict) else None
    if not isinstance(text, str):
        raise HTTPException(status_code=422, detail='the body must be {"text": "<a headline>"}')
    return text


class NewsLitAPI(ls.LitAPI):
    """One endpoint (predictions or explanations) of a PeerModel, batched by LitServe."""

    def __init__(self, artifacts: str, explanations: bool, max_batch: int, max_delay_ms: float) -> None:
        super().__init__(max_batch_size=max_batch, batch_timeout=max_delay_ms / 1000,
                         api_path="/explanations" if explanations else "/predictions")
        self.artifacts = artifacts
        self.explanations = explanations

    def setup(self, device: str) -> None:
        """Load the model in each inference worker process."""
        self.model = PeerModel(self.artifacts)

    # No annotations on these two: LitServe builds the route's request and response types from
    # them, and a bare JSON body (starlette's Request) is what the other servers take.
    def decode_request(self, request, **kwargs):
        return headline_of(request)

    # LitServe hands predict a list when max_batch_size > 1 and one item otherwise.
    def batch(self, inputs: list[str]) -> list[str]:
        return list(inputs)

    def unbatch(self, output: list[dict]) -> list[dict]:
        return output

    def predict(self, texts: list[str] | str) -> list[dict] | dict:
        batch = texts if isinstance(texts, list) else [texts]
        answers = self.model.explain(batch) if self.explanations else self.model.predict(batch)
        return answers if isinstance(texts, list) else answers[0]

    def encode_response(self, output, **kwargs):
        return output


def build_server(artifacts: str | Path, workers: int, max_batch: int = DEFAULT_MAX_BATCH,
                 max_delay_ms: float = DEFAULT_MAX_DELAY_MS) -> ls.LitServer:
    """A LitServer with both endpoints, `workers` CPU workers each, the fast queue on."""
    apis = [NewsLitAPI(str(Path(artifacts).resolve()), explain, max_batch, max_delay_ms)
            for explain in (False, True)]
    return ls.LitServer(apis, accelerator="cpu", devices=1, workers_per_device=workers,
                        fast_queue=True, timeout=60, disable_openapi_url=True)


def build_parser() -> argparse.ArgumentParser:
    """The LitServe peer's options."""
    parser = cli.command_line("python -m bench.peers.lit_serve", __doc__.split("\n\n")[0],
                              parents=[peer_options()])
    parser.add_argument("--workers", type=int, default=2, help="inference processes per endpoint")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until told to stop (see the module doc)."""
    args = build_parser().parse_args(argv)
    server = build_server(args.artifacts, args.workers, args.max_batch, args.max_delay_ms)
    # One HTTP process per inference worker of /predictions (LitServe's default would count
    # the idle /explanations workers too and start twice as many on these cores).
    server.run(host="127.0.0.1", port=args.port, num_api_servers=args.workers, log_level="warning",
               generate_client_file=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
