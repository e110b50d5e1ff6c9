"""The TorchServe settings grid of `make bench-peers` (case `grid`).

A point is what a user can set: batchSize x maxBatchDelay and workers (model-config.yaml, so
one archive copy per setting, served side by side) and the frontend's config.properties
additions (JVM collector and heap, netty threads: a TorchServe per setting). The points: every
batchSize x maxBatchDelay at the shipped workers and frontend, then at the shipped batch
setting each other worker count and each other frontend, one setting changed at a time.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench import archives, served_models
from bench.peers.servers import TORCHSERVE, Endpoint, torchserve_endpoint
from serving.server import TorchServe

DEFAULT_FRONTEND = "default"
# The JVM on 2 cores: a serial collector has no concurrent collector threads competing with
# the workers; 1 GiB of heap is ample for the frontend's queues (default: a quarter of RAM).
SERIAL_GC = {"vmargs": "-XX:+UseSerialGC -XX:-UsePerfData -Xmx1g"}
# Netty's default is one thread per core for each group; one each leaves the cores to workers.
NETTY_1 = {"number_of_netty_threads": 1, "netty_client_threads": 1}
FRONTENDS: dict[str, dict[str, object]] = {DEFAULT_FRONTEND: {}, "serial-gc": SERIAL_GC, "netty-1": NETTY_1,
                                            "serial-gc+netty-1": {**SERIAL_GC, **NETTY_1}}


@dataclass(frozen=True)
class GridPoint:
    """One TorchServe setting: batching and workers (model-config.yaml), frontend (config.properties)."""

    batch_size: int
    delay_ms: int
    workers: int
    frontend: str = DEFAULT_FRONTEND

    @property
    def model(self) -> str:
        """The model name its archive copy is served under."""
        return f"grid_b{self.batch_size}_d{self.delay_ms}_w{self.workers}"

    @property
    def label(self) -> str:
        """Its name in the results, unique across the TorchServes of a run."""
        where = "" if self.frontend == DEFAULT_FRONTEND else f"[{self.frontend}]"
        return f"{TORCHSERVE}{where}:{self.model}"

    def model_config(self, shipped: dict) -> dict:
        """The model-config.yaml entries its archive copy overrides."""
        return {"batchSize": self.batch_size, "maxBatchDelay": self.delay_ms, "minWorkers": self.workers,
                "maxWorkers": max(self.workers, int(shipped.get("maxWorkers", self.workers)))}


def points(shipped: dict, batch_points: Sequence[tuple[int, int]], workers: Sequence[int],
           frontends: Sequence[str]) -> list[GridPoint]:
    """The grid (see the module doc): `shipped` is news_cnn.mar's model-config."""
    base_workers = int(shipped.get("minWorkers", 1))
    base = (int(shipped["batchSize"]), int(shipped["maxBatchDelay"]))
    out = [GridPoint(b, d, base_workers) for b, d in batch_points]
    out += [GridPoint(*base, w) for w in (base_workers, *workers)]  # the shipped point always
    out += [GridPoint(*base, base_workers, f) for f in frontends]
    return list(dict.fromkeys(out))  # once each, in order


def build_archives(source: Path, store: Path, grid: Sequence[GridPoint], shipped: dict) -> None:
    """One copy of `source` per model setting of `grid` in `store`."""
    for point in {replace(p, frontend=DEFAULT_FRONTEND) for p in grid}:
        archives.with_model_config(source, store / f"{point.model}.mar", point.model_config(shipped))


def start_frontend(name: str, grid: Sequence[GridPoint], additions: dict, root: Path, base_config: Path,
                   timeout_s: float) -> TorchServe:
    """A TorchServe with the frontend setting `name` (config.properties plus `additions`),
    serving that frontend's points from `root`/store."""
    mine = [p for p in grid if p.frontend == name]
    return served_models.start(root / f"{TORCHSERVE}-{name}", root / "store",
                               {p.model: f"{p.model}.mar" for p in mine}, min(p.workers for p in mine),
                               timeout_s=timeout_s, base=base_config, **additions)


def wait_workers(torchserves: dict[str, TorchServe], grid: Sequence[GridPoint], timeout_s: float) -> None:
    """Until every point's model has its own number of READY workers."""
    for point in grid:
        served_models.wait_models(torchserves[point.frontend], [point.model], point.workers, timeout_s)


def endpoint(torchserves: dict[str, TorchServe], point: GridPoint) -> Endpoint:
    """Where to load `point`, named by its label."""
    return replace(torchserve_endpoint(torchserves[point.frontend], point.model), server=point.label)


def applied(torchserves: dict[str, TorchServe], point: GridPoint) -> dict:
    """What TorchServe says it applied to `point`: a setting it ignores would otherwise pass unnoticed."""
    described = torchserves[point.frontend].describe(point.model)
    return {"batchSize": described.get("batchSize"), "maxBatchDelay": described.get("maxBatchDelay"),
            "workers": len(described.get("workers", []))}


def row_fields(point: GridPoint, frontends: dict[str, dict]) -> dict:
    """The fields a grid row adds to a case row (bench/peers.json's `grid`)."""
    return {"batchSize": point.batch_size, "maxBatchDelay": point.delay_ms, "workers": point.workers,
            "frontend": point.frontend, "frontend_properties": dict(frontends[point.frontend])}
