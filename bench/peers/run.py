"""`make bench-peers`: TorchServe with our handler against what a user would pick instead
(bench.peers.servers), each serving the same artifacts through the same model/ code with one
process per core. A peer whose answers on the first `check_headlines` headlines differ from
TorchServe's is refused, not measured. Then `wrk` load on every server in alternating rounds.
Cases: peers (/predictions on all), explanations (TorchServe and the batched FastAPI peer),
grid (TorchServe's settings, bench.peers.grid; the shipped ones chosen by bench.peers.choice).
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import archives, headlines, load, served_models
from bench.harness import LoadSettings, disagreement, loadavg, machine, measure_rounds, temp_root
from bench.peers import grid
from bench.peers.choice import choose_defaults, ratios, targets
from bench.peers.servers import FASTAPI_BATCHED, PEERS, TORCHSERVE, Endpoint, start_peer, torchserve_endpoint
from serving import rest
from serving.archive import read_model_config
from serving.properties import MODEL_NAME
from serving.server import TorchServe

CASES = ("peers", "explanations", "grid")
GRID_PARTS = ("batching", "workers", "frontends")
# What `make bench-peers` runs unless told otherwise: the six servers' /predictions.
DEFAULT_CASES = ("peers",)


@dataclass
class PeerSettings(LoadSettings):
    """What `make bench-peers` measures and for how long (the shared part: `LoadSettings`)."""

    check_headlines: int = 200
    # Processes (uvicorn workers, Ray replicas): one per core, as TorchServe's 2 workers.
    processes: int = field(default_factory=lambda: os.cpu_count() or 2)
    peer_max_batch: int = 32
    peer_max_delay_ms: float = 0.0
    # LitServe's batch_timeout: at 0 its workers poll the queue without waiting, spinning a
    # core each; 1 ms is the smallest wait that batches without that.
    litserve_batch_timeout_ms: float = 1.0
    # BentoML's max_latency_ms: a budget for wait plus compute (its dispatcher adapts the wait
    # inside it and refuses with 503 beyond it), not a fixed wait.
    bentoml_max_latency_ms: int = 1000
    grid_batch_sizes: tuple[int, ...] = (8, 32)
    grid_delays_ms: tuple[int, ...] = (0, 1, 2, 5)
    # batchSize 1 never waits for a batch: TorchServe's own latency floor, for reference.
    grid_extra_points: tuple[tuple[int, int], ...] = ((1, 1),)
    # Beside the shipped workers and frontend, at the shipped batch setting (bench.peers.grid).
    grid_workers: tuple[int, ...] = (1, 3)
    grid_frontends: dict[str, dict] = field(default_factory=lambda: dict(grid.FRONTENDS))
    # Which of the grid's parts to measure (around the shipped point, always measured).
    grid_parts: tuple[str, ...] = GRID_PARTS
    grid_rounds: int = 1  # the grid has 14 servers' worth of runs: one round keeps it in budget
    start_timeout_s: float = 240.0

    def grid_points(self, shipped: dict) -> list[grid.GridPoint]:
        """Every grid point, around `shipped` (news_cnn.mar's model-config)."""
        batch_points = [(b, d) for b in self.grid_batch_sizes for d in self.grid_delays_ms]
        batch_points += [p for p in self.grid_extra_points if p not in batch_points]
        return grid.points(shipped, batch_points if "batching" in self.grid_parts else [],
                           self.grid_workers if "workers" in self.grid_parts else [],
                           list(self.grid_frontends) if "frontends" in self.grid_parts else [])


def fetch_answers(endpoint: Endpoint, texts: Sequence[str], explanations: bool = False,
                  concurrency: int = 8) -> list[object]:
    """Each text's answer (parsed JSON, None on failure), sent concurrently so that the
    servers' batching is part of what is checked."""
    url = endpoint.base_url + (endpoint.explanations if explanations else endpoint.predictions)
    load.require_loopback(url)

    def answer(text: str) -> object:
        try:
            r = rest.request("POST", url, 60, endpoint.headers(), json_body={"text": text})
            return r.json() if r.status == 200 else None
        except (OSError, ValueError):
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
        best = measure_rounds([e.target(explanations) for e in endpoints], bodies, c, settings, rounds)
        rows += [case_row(e.server, result) for e, result in zip(endpoints, best, strict=True)]
    return rows


def _grid(torchserves: dict[str, TorchServe], points: list[grid.GridPoint], bodies: list[str],
          settings: PeerSettings) -> list[dict]:
    print(f"grid: {len(points)} TorchServe settings on {len(torchserves)} frontend(s) "
          f"({settings.grid_rounds} round(s))", flush=True)
    endpoints = [grid.endpoint(torchserves, p) for p in points]
    rows = measure_all(endpoints, bodies, settings, rounds=settings.grid_rounds)
    by_label = {p.label: p for p in points}
    applied = {p: grid.applied(torchserves, p) for p in points}
    for row in rows:
        point = by_label[row["server"]]
        row.update(server=TORCHSERVE, **grid.row_fields(point, settings.grid_frontends),
                   applied=applied[point])
    return rows


def _start(settings: PeerSettings, peers: Sequence[str], points: Sequence[grid.GridPoint], root: Path,
           model_config: dict, text: str, running: ExitStack, results: dict
           ) -> tuple[dict[str, Endpoint], dict[str, TorchServe]]:
    """Start the peers (in the background), then TorchServe (and one per other frontend setting
    of the grid), then wait for the peers; `running` stops each. A peer that does not come up
    is recorded in results["unavailable"]. Returns the endpoints up, and the TorchServes by
    frontend setting."""
    launched = []
    for name in peers:
        process, endpoint = start_peer(name, settings.artifacts, settings.processes, settings.peer_max_batch,
                                       settings.peer_max_delay_ms, root, settings.bentoml_max_latency_ms,
                                       settings.litserve_batch_timeout_ms)
        running.callback(process.stop)
        launched.append((process, endpoint))
    here = [p for p in points if p.frontend == grid.DEFAULT_FRONTEND]
    models = {MODEL_NAME: f"{MODEL_NAME}.mar", **{p.model: f"{p.model}.mar" for p in here}}
    others = list(dict.fromkeys(p.frontend for p in points if p.frontend != grid.DEFAULT_FRONTEND))
    print(f"starting TorchServe ({len(models)} models, {len(others)} more frontend(s) for the grid) "
          f"and {', '.join(peers) or 'no peer'}", flush=True)
    shipped_workers = int(model_config.get("minWorkers", 1))
    ts = running.enter_context(served_models.start(
        root / TORCHSERVE, root / "store", models, min([shipped_workers] + [p.workers for p in here]),
        timeout_s=settings.start_timeout_s, base=settings.config))
    served_models.wait_models(ts, [MODEL_NAME], shipped_workers, settings.start_timeout_s)
    torchserves = {grid.DEFAULT_FRONTEND: ts}  # by frontend setting
    for name in others:
        torchserves[name] = running.enter_context(grid.start_frontend(
            name, points, settings.grid_frontends[name], root, settings.config, settings.start_timeout_s))
    grid.wait_workers(torchserves, points, settings.start_timeout_s)
    endpoints = {TORCHSERVE: torchserve_endpoint(ts)}
    for process, endpoint in launched:
        try:
            process.wait_ready(endpoint, text, settings.start_timeout_s)
            endpoints[process.name] = endpoint
        except RuntimeError as err:
            results["unavailable"][process.name] = str(err)
            print(f"  {process.name} unavailable: {err}")
    return endpoints, torchserves


def _agrees(name: str, reference: Sequence[object], endpoint: Endpoint, check: Sequence[str], results: dict,
            explanations: bool = False) -> bool:
    """Whether `endpoint` answers `check` as the reference answers; results["refused"] if not."""
    why = check_agreement(reference, endpoint, check, explanations)
    if why:
        results["refused"][name] = why
        print(f"  refused {name}: its answer differs from TorchServe's on {why}")
    return not why


def run(settings: PeerSettings, cases: Sequence[str] = DEFAULT_CASES,
        peers: Sequence[str] = PEERS) -> dict:
    """Start the servers, check the peers' answers, run the cases; return every figure."""
    load.wrk_path()  # fail early with the install hint
    titles = headlines.load(settings.data)
    bodies = headlines.json_bodies(titles)
    check = titles[:settings.check_headlines]
    shipped = read_model_config(settings.mar)
    points = settings.grid_points(shipped) if "grid" in cases else []
    wanted = [p for p in peers if "peers" in cases
              or (p == FASTAPI_BATCHED and "explanations" in cases)]
    started = time.monotonic()
    reported = ("duration_s", "warmup_s", "rounds", "grid_rounds", "grid_frontends", "concurrencies",
                "processes", "peer_max_batch", "peer_max_delay_ms", "litserve_batch_timeout_ms",
                "bentoml_max_latency_ms")
    results: dict = {
        "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {**{name: getattr(settings, name) for name in reported}, "headlines": len(titles),
                     "checked_headlines": len(check), "cases": list(cases)},
        "cases": [], "explanation_cases": [], "grid": [], "refused": {}, "unavailable": {},
        "model_config": shipped,
    }
    with temp_root("bench-peers-") as root, ExitStack() as running:
        archives.copy_into(settings.mar, root / "store")
        grid.build_archives(root / "store" / f"{MODEL_NAME}.mar", root / "store", points, shipped)
        endpoints, torchserves = _start(settings, wanted, points, root, shipped, check[0], running, results)
        results["start_s"] = round(time.monotonic() - started, 1)
        reference = fetch_answers(endpoints[TORCHSERVE], check)
        if any(a is None for a in reference):
            raise RuntimeError("TorchServe did not answer every check headline")
        for name in [n for n in endpoints if n != TORCHSERVE]:
            if _agrees(name, reference, endpoints[name], check, results):
                print(f"  {name} agrees with TorchServe on {len(check)} headlines")
            else:
                del endpoints[name]
        if "peers" in cases:
            print("peers: /predictions", flush=True)
            results["cases"] = measure_all(list(endpoints.values()), bodies, settings)
            results["ratios"] = ratios(results["cases"])
            results["targets"] = targets(results["cases"])
        if "explanations" in cases:
            results["explanation_cases"] = _explanations(
                endpoints[TORCHSERVE], endpoints.get(FASTAPI_BATCHED), check, bodies, settings, results)
        if points:
            results["grid"] = _grid(torchserves, points, bodies, settings)
            if results["cases"]:
                results["choice"] = choose_defaults(results["grid"], results["cases"])
    results["machine"]["loadavg_end"] = loadavg()
    results["total_s"] = round(time.monotonic() - started, 1)
    return results


def _explanations(ours: Endpoint, peer: Endpoint | None, check: Sequence[str], bodies: list[str],
                  settings: PeerSettings, results: dict) -> list[dict]:
    name = f"{FASTAPI_BATCHED} explanations"
    if peer is None:
        results["unavailable"].setdefault(name, "the batched FastAPI peer is not up")
        return []
    reference = fetch_answers(ours, check, explanations=True)
    if not _agrees(name, reference, peer, check, results, explanations=True):
        return []
    print(f"explanations: /explanations (agree on {len(check)} headlines)", flush=True)
    return measure_all([ours, peer], bodies, settings, explanations=True)
