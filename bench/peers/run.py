"""`make bench-peers`: TorchServe with our handler against what a user would pick instead.

Four servers run side by side on this machine, each serving the same artifacts through the
same model/ code with one process per core:

* torchserve: news_cnn.mar as shipped (handler/, model-config.yaml), token authorization on;
* fastapi: FastAPI + uvicorn, one forward pass per request (bench.peers.apps);
* fastapi-batched: FastAPI + uvicorn with an asyncio micro-batcher (bench.peers.microbatch);
* ray-serve: Ray Serve with `@serve.batch`, one replica per core (bench.peers.ray_serve).

Before any load, each peer's answers on the first `check_headlines` test headlines must equal
TorchServe's (label and probabilities; for explanations also the tokens and their scores): a
peer that disagrees is refused, not measured. Then the same `wrk` load as `make bench`
(bench.load) at each concurrency, every server in turn, `rounds` times in alternating order,
best round kept. Cases:

* peers: /predictions on the four servers;
* explanations: /explanations on TorchServe and the batched FastAPI peer;
* grid: copies of news_cnn.mar that differ only in batchSize x maxBatchDelay, served by the
  same TorchServe; the choice of shipped defaults follows bench.peers.choice.choose_defaults.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench import archives, headlines, load, server
from bench.harness import LoadSettings, disagreement, loadavg, machine, measure_rounds, temp_root
from bench.peers.choice import choose_defaults, ratios, targets
from bench.peers.servers import (
    FASTAPI_BATCHED,
    PEERS,
    TORCHSERVE,
    Endpoint,
    PeerProcess,
    start_peer,
    torchserve_endpoint,
)
from serving.archive import read_model_config
from serving.properties import MODEL_NAME
from serving.server import TorchServe

CASES = ("peers", "explanations", "grid")
# What `make bench-peers` runs unless told otherwise: the four servers' /predictions.
DEFAULT_CASES = ("peers",)


@dataclass
class PeerSettings(LoadSettings):
    """What `make bench-peers` measures and for how long (the shared part: `LoadSettings`)."""

    check_headlines: int = 200
    # Processes (uvicorn workers, Ray replicas): one per core, as TorchServe's 2 workers.
    processes: int = field(default_factory=lambda: os.cpu_count() or 2)
    peer_max_batch: int = 32
    peer_max_delay_ms: float = 0.0
    grid_batch_sizes: tuple[int, ...] = (8, 32)
    grid_delays_ms: tuple[int, ...] = (0, 1, 2, 5)
    # batchSize 1 never waits for a batch: TorchServe's own latency floor, for reference.
    grid_extra_points: tuple[tuple[int, int], ...] = ((1, 1),)
    grid_rounds: int = 1  # the grid has 9 servers' worth of runs: one round keeps it in budget
    start_timeout_s: float = 240.0

    def grid_points(self) -> list[tuple[int, int]]:
        """(batchSize, maxBatchDelay) of every grid point."""
        points = [(b, d) for b in self.grid_batch_sizes for d in self.grid_delays_ms]
        return points + [p for p in self.grid_extra_points if p not in points]


# --- answers ------------------------------------------------------------------------------
def fetch_answers(endpoint: Endpoint, texts: Sequence[str], explanations: bool = False,
                  concurrency: int = 8) -> list[object]:
    """Each text's answer (parsed JSON, None on failure), sent concurrently so that the
    servers' batching is part of what is checked."""
    url = endpoint.base_url + (endpoint.explanations if explanations else endpoint.predictions)
    load.require_loopback(url)

    def answer(text: str) -> object:
        try:
            r = requests.post(url, json={"text": text}, headers=endpoint.headers(), timeout=60)
            return r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(answer, texts))


def check_agreement(reference: Sequence[object], endpoint: Endpoint, texts: Sequence[str],
                    explanations: bool = False) -> str | None:
    """The first headline on which `endpoint` disagrees with the reference answers, or None."""
    answers = fetch_answers(endpoint, texts, explanations)
    for text, expected, got in zip(texts, reference, answers, strict=True):
        why = disagreement(expected, got, explanations)
        if why:
            return f"{text!r}: {why}"
    return None


# --- load ---------------------------------------------------------------------------------
def case_row(server_name: str, result: load.LoadResult, **extra) -> dict:
    """One entry of a results list: the schema of bench/peers.json's `cases`."""
    return {"server": server_name, "concurrency": result.concurrency, "rps": result.rps,
            "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, **extra,
            "p90_ms": result.p90_ms, "requests": result.requests,
            "errors": result.requests - result.ok + result.socket_errors}


def measure_all(endpoints: Sequence[Endpoint], bodies: list[str], settings: PeerSettings,
                explanations: bool = False, rounds: int | None = None) -> list[dict]:
    """Every endpoint at every concurrency, alternated; one row per (endpoint, concurrency)."""
    rows = []
    for c in settings.concurrencies:
        targets = [e.target(explanations) for e in endpoints]
        best = measure_rounds(targets, bodies, c, settings, rounds)  # by target name
        rows += [case_row(e.server, best[t.name]) for e, t in zip(endpoints, targets, strict=True)]
    return rows


# --- the run ------------------------------------------------------------------------------
def grid_name(batch_size: int, delay_ms: int) -> str:
    """The model name of one grid point."""
    return f"grid_b{batch_size}_d{delay_ms}"


def _grid(ts: TorchServe, points: list[tuple[int, int]], bodies: list[str],
          settings: PeerSettings) -> list[dict]:
    print(f"grid: batchSize x maxBatchDelay {points} (TorchServe, {settings.grid_rounds} round(s))")
    endpoints = [torchserve_endpoint(ts, grid_name(b, d)) for b, d in points]
    rows = measure_all(endpoints, bodies, settings, rounds=settings.grid_rounds)
    by_model = {torchserve_endpoint(ts, grid_name(b, d)).server: (b, d) for b, d in points}
    # What TorchServe says it applied: a setting it ignores would otherwise pass unnoticed.
    applied = {}
    for b, d in points:
        described = ts.describe(grid_name(b, d))
        applied[(b, d)] = {key: described.get(key) for key in ("batchSize", "maxBatchDelay")}
    for row in rows:
        b, d = by_model[row["server"]]
        row.update(server=TORCHSERVE, batchSize=b, maxBatchDelay=d, applied=applied[(b, d)])
    return rows


@dataclass
class _Servers:
    """What one run started, to stop whatever happens."""

    ts: TorchServe | None = None
    launched: list[tuple[PeerProcess, Endpoint]] = field(default_factory=list)

    def stop(self) -> None:
        for process, _ in self.launched:
            process.stop()
        if self.ts is not None:
            self.ts.stop()


def _build_store(settings: PeerSettings, points: Sequence[tuple[int, int]], store: Path) -> dict:
    """news_cnn.mar and one copy per grid point in `store`; returns news_cnn's model-config."""
    archives.copy_into(settings.mar, store)
    for b, d in points:
        archives.with_model_config(store / f"{MODEL_NAME}.mar", store / f"{grid_name(b, d)}.mar",
                                   {"batchSize": b, "maxBatchDelay": d})
    return read_model_config(store / f"{MODEL_NAME}.mar")


def _start(settings: PeerSettings, peers: Sequence[str], points: Sequence[tuple[int, int]], root: Path,
           model_config: dict, text: str, servers: _Servers, results: dict) -> dict[str, Endpoint]:
    """Start the peers (in the background), then TorchServe, then wait for the peers; a peer
    that does not come up is recorded in results["unavailable"]. Returns the endpoints up."""
    for name in peers:
        servers.launched.append(start_peer(name, settings.artifacts, settings.processes,
                                           settings.peer_max_batch, settings.peer_max_delay_ms, root))
    models = {name: f"{name}.mar" for name in [MODEL_NAME] + [grid_name(b, d) for b, d in points]}
    print(f"starting TorchServe ({', '.join(models)}) and {', '.join(peers) or 'no peer'}", flush=True)
    workers = int(model_config.get("minWorkers", 1))
    servers.ts = server.start(root / TORCHSERVE, root / "store", models, workers,
                              timeout_s=settings.start_timeout_s, base=settings.config)
    endpoints = {TORCHSERVE: torchserve_endpoint(servers.ts)}
    for process, endpoint in servers.launched:
        try:
            process.wait_ready(endpoint, text, settings.start_timeout_s)
            endpoints[process.name] = endpoint
        except RuntimeError as err:
            results["unavailable"][process.name] = str(err)
            print(f"  {process.name} unavailable: {err}")
    return endpoints


def _refuse_disagreeing(endpoints: dict[str, Endpoint], check: Sequence[str], results: dict) -> None:
    """Drop from `endpoints` every peer whose answers differ from TorchServe's (results["refused"])."""
    reference = fetch_answers(endpoints[TORCHSERVE], check)
    if any(a is None for a in reference):
        raise RuntimeError("TorchServe did not answer every check headline")
    for name in [n for n in endpoints if n != TORCHSERVE]:
        why = check_agreement(reference, endpoints[name], check)
        if why:
            results["refused"][name] = why
            print(f"  refused {name}: its answer differs from TorchServe's on {why}")
            del endpoints[name]
        else:
            print(f"  {name} agrees with TorchServe on {len(check)} headlines")


def run(settings: PeerSettings, cases: Sequence[str] = DEFAULT_CASES,
        peers: Sequence[str] = PEERS) -> dict:
    """Start the servers, check the peers' answers, run the cases; return every figure."""
    load.wrk_path()  # fail early with the install hint
    titles = headlines.load(settings.data)
    bodies = headlines.json_bodies(titles)
    check = titles[:settings.check_headlines]
    points = settings.grid_points() if "grid" in cases else []
    wanted = [p for p in peers if "peers" in cases
              or (p == FASTAPI_BATCHED and "explanations" in cases)]
    started = time.monotonic()
    results: dict = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {"duration_s": settings.duration_s, "warmup_s": settings.warmup_s,
                     "rounds": settings.rounds,
                     "grid_rounds": settings.grid_rounds, "concurrencies": list(settings.concurrencies),
                     "processes": settings.processes, "peer_max_batch": settings.peer_max_batch,
                     "peer_max_delay_ms": settings.peer_max_delay_ms, "headlines": len(titles),
                     "checked_headlines": len(check), "cases": list(cases)},
        "cases": [], "explanation_cases": [], "grid": [], "refused": {}, "unavailable": {},
    }
    servers = _Servers()
    with temp_root("bench-peers-") as root:
        try:
            results["model_config"] = _build_store(settings, points, root / "store")
            endpoints = _start(settings, wanted, points, root, results["model_config"], check[0], servers,
                               results)
            results["start_s"] = round(time.monotonic() - started, 1)
            _refuse_disagreeing(endpoints, check, results)
            if "peers" in cases:
                print("peers: /predictions", flush=True)
                results["cases"] = measure_all(list(endpoints.values()), bodies, settings)
                results["ratios"] = ratios(results["cases"])
                results["targets"] = targets(results["cases"])
            if "explanations" in cases:
                results["explanation_cases"] = _explanations(
                    endpoints[TORCHSERVE], endpoints.get(FASTAPI_BATCHED), check, bodies, settings, results)
            if points:
                results["grid"] = _grid(servers.ts, points, bodies, settings)
                if results["cases"]:
                    results["choice"] = choose_defaults(results["grid"], results["cases"])
        finally:
            servers.stop()
    results["machine"]["loadavg_end"] = loadavg()
    results["total_s"] = round(time.monotonic() - started, 1)
    return results


def _explanations(ours: Endpoint, peer: Endpoint | None, check: Sequence[str], bodies: list[str],
                  settings: PeerSettings, results: dict) -> list[dict]:
    if peer is None:
        results["unavailable"].setdefault(f"{FASTAPI_BATCHED} explanations",
                                          "the batched FastAPI peer is not up")
        return []
    why = check_agreement(fetch_answers(ours, check, explanations=True), peer, check, explanations=True)
    if why:
        results["refused"][f"{FASTAPI_BATCHED} explanations"] = why
        print(f"  refused {FASTAPI_BATCHED} explanations: {why}")
        return []
    print(f"explanations: /explanations (agree on {len(check)} headlines)", flush=True)
    return measure_all([ours, peer], bodies, settings, explanations=True)
