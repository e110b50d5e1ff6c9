"""`make bench`: TorchServe's cost and our model's, each figure next to its reference from the
same server, measured minutes apart. Cases: startup (first correct answer, .mar size, memory);
floor (/predictions against the echo handler with news_cnn's model-config, /explanations
against /predictions); batching and workers (news_cnn.mar copies with other batch settings or
workers x threads, against news_cnn); inprocess (the handler and bare model, no HTTP).
"""
from __future__ import annotations

import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import archives, harness, headlines, load, served_models
from serving import rest
from serving.archive import read_model_config
from serving.polling import wait_for
from serving.properties import MODEL_NAME
from serving.server import TorchServe, config_on_free_ports

ECHO = "echo"
# The echo handler without batching: TorchServe's floor at batchSize 1, for context.
ECHO_B1 = "echo_b1"
# The serving goals, reported and never asserted (goals() says what each bounds).
GOAL_FLOOR_SHARE = 0.9
GOAL_FLOOR_P99_RATIO = 1.5
GOAL_INPROCESS_US = 1000.0
GOAL_EXPLAIN_SHARE = 0.5


@dataclass
class Variant:
    """A copy of news_cnn.mar with some model-config settings changed."""

    name: str
    overrides: dict
    note: str  # how its rows are named


@dataclass
class BenchSettings(harness.LoadSettings):
    """What `make bench` measures and for how long (the shared part: `LoadSettings`)."""

    explain_concurrency: int = 16
    batch_concurrency: int = 64
    inprocess_seconds: float = 2.0
    # (batchSize, maxBatchDelay ms); batchSize 1 is no batching.
    batch_points: list[tuple[int, int]] = field(default_factory=lambda: [(1, 0), (8, 2), (32, 5), (64, 10)])
    # (workers, torch threads per worker); the project's settings are the reference.
    worker_threads: list[tuple[int, int]] = field(default_factory=lambda: [(1, 1), (2, 1), (1, 2), (2, 2)])
    worker_concurrencies: tuple[int, ...] = (16, 64)

    @classmethod
    def quick(cls, **kwargs) -> BenchSettings:
        """A short run (figures are rough)."""
        return super().quick(inprocess_seconds=0.5, **kwargs)


@dataclass
class BenchRun:
    """What every case of one run shares."""

    settings: BenchSettings
    root: Path  # temporary; each case starts its server in a folder of its own below
    store: Path  # the model store: news_cnn.mar, the echo archives, the variants
    bodies: list[str]
    text: str
    expected: dict  # the in-process answer for `text`
    model_config: dict

    @property
    def workers(self) -> int:
        """news_cnn's own worker count."""
        return int(self.model_config.get("minWorkers", 1))


def _compare(ts: TorchServe, paths: list[str], bench_run: BenchRun, c: int) -> list[load.LoadResult]:
    """Each path of `ts` measured in alternating rounds; the best round of each."""
    return harness.measure_rounds([served_models.target(ts, p) for p in paths], bench_run.bodies, c,
                                  bench_run.settings)


def _check_answer(ts: TorchServe, model: str, text: str, expected: dict) -> dict:
    """One request through HTTP must give the in-process answer (else figures are moot);
    returns that answer."""
    answer = rest.request("POST", f"{ts.endpoints.inference}/predictions/{model}", 30,
                          ts.keys().headers("inference"), json_body={"text": text}).checked().json()
    why = harness.disagreement(expected, answer)
    if why:
        raise RuntimeError(f"{model} answered {text!r} unlike the in-process model: {why}")
    return answer


def _ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference else None


def _row(case: str, name: str, result: load.LoadResult, reference: load.LoadResult | None,
         reference_name: str = "") -> dict:
    """One table row: the figures, and the ratios to the reference run."""
    row = {"case": case, "name": name, **asdict(result)}
    if reference is not None:
        row.update(reference=reference_name, rps_share=_ratio(result.rps, reference.rps),
                   p99_ratio=_ratio(result.p99_ms, reference.p99_ms),
                   reference_rps=reference.rps, reference_p99_ms=reference.p99_ms)
    return row


def _start(bench_run: BenchRun, name: str, models: dict[str, str], workers: int = 1) -> TorchServe:
    """Start a bench server in `<root>/<name>` and warm every model up (the JVM compiles its
    hot paths during the first seconds of load, which would handicap whatever runs first)."""
    ts = served_models.start(bench_run.root / name, bench_run.store, models, workers,
                             base=bench_run.settings.config)
    if bench_run.settings.warmup_s > 0:
        for model in models:
            warm = served_models.target(ts, f"/predictions/{model}")
            load.run_wrk(warm.url, bench_run.bodies, 16, 2 * bench_run.settings.warmup_s, 10**6, warm.auth())
    return ts


def _rss_mib(ts: TorchServe) -> list[float]:
    return [round(mib, 1) for mib in served_models.worker_rss(ts, MODEL_NAME).values()]


def run_startup(bench_run: BenchRun) -> dict:
    """Seconds from `torchserve --start` to the first correct answer; size; memory."""
    print("start-up: news_cnn alone")
    workdir = bench_run.root / "startup"
    workdir.mkdir(parents=True)
    # Not served_models.start: it returns only once every worker is READY, after the first answer.
    config = config_on_free_ports(workdir, bench_run.store, workers=bench_run.workers,
                                  base=bench_run.settings.config,
                                  load_models=f"{MODEL_NAME}={MODEL_NAME}.mar")
    ts = TorchServe(workdir, config)
    started = time.monotonic()
    with ts.start(model=None):  # returns when /ping is healthy
        wait_for(lambda: _check_answer(ts, MODEL_NAME, bench_run.text, bench_run.expected), 300,
                 f"news_cnn's first answer (see {workdir / 'logs'})",
                 not_yet=(OSError, KeyError, ValueError),
                 gone=lambda: None if ts.pid() else "TorchServe exited")
        seconds = time.monotonic() - started
        served_models.wait_models(ts, [MODEL_NAME], bench_run.workers)
        ready_seconds = time.monotonic() - started
        rss_idle = _rss_mib(ts)
        harness.measure(served_models.target(ts, f"/predictions/{MODEL_NAME}"), bench_run.bodies, 16,
                        bench_run.settings)
        rss_loaded = _rss_mib(ts)
    result = {"first_answer_s": round(seconds, 2), "all_workers_ready_s": round(ready_seconds, 2),
              "mar_bytes": (bench_run.store / f"{MODEL_NAME}.mar").stat().st_size, "workers": len(rss_loaded),
              "worker_rss_mib_idle": rss_idle, "worker_rss_mib_after_load": rss_loaded}
    print(f"  first answer after {result['first_answer_s']} s, all workers after "
          f"{result['all_workers_ready_s']} s; .mar {result['mar_bytes'] / 2**20:.1f} MiB; "
          f"worker RSS {result['worker_rss_mib_after_load']} MiB")
    return result


def run_floor(bench_run: BenchRun) -> list[dict]:
    """/predictions vs the echo floor at each concurrency, then /explanations vs /predictions."""
    print("floor: news_cnn vs echo (same config.properties and model-config)")
    settings = bench_run.settings
    models = {MODEL_NAME: f"{MODEL_NAME}.mar", ECHO: f"{ECHO}.mar", ECHO_B1: f"{ECHO_B1}.mar"}
    rows = []
    with _start(bench_run, "floor", models, bench_run.workers) as ts:
        _check_answer(ts, MODEL_NAME, bench_run.text, bench_run.expected)
        for c in settings.concurrencies:
            echo, pred = _compare(ts, [f"/predictions/{ECHO}", f"/predictions/{MODEL_NAME}"], bench_run, c)
            rows.append(_row("floor", f"echo c={c}", echo, None))
            rows.append(_row("floor", f"predictions c={c}", pred, echo, f"echo c={c}"))
            if c == settings.explain_concurrency:
                echo_b1, = _compare(ts, [f"/predictions/{ECHO_B1}"], bench_run, c)
                rows.append(_row("floor", f"echo batchSize 1 c={c}", echo_b1, None))
                rows.append(_row("floor", f"predictions vs echo batchSize 1 c={c}", pred, echo_b1,
                                 f"echo batchSize 1 c={c}"))
        c = settings.explain_concurrency
        pred, explain = _compare(ts, [f"/predictions/{MODEL_NAME}", f"/explanations/{MODEL_NAME}"],
                                 bench_run, c)
        rows.append(_row("explanations", f"explanations c={c}", explain, pred, f"predictions c={c}"))
    return rows


def _variant_overrides(base: dict, overrides: dict) -> dict:
    """Merge overrides into a model-config, one level deep for the `handler` section."""
    merged = dict(overrides)
    if "handler" in overrides:
        merged["handler"] = {**(base.get("handler") or {}), **overrides["handler"]}
    return merged


def run_variants(bench_run: BenchRun, case: str, variants: list[Variant], concurrencies: Sequence[int],
                 reference: str) -> list[dict]:
    """news_cnn (named `reference`) and one archive per variant in one server, compared at
    each concurrency; a row per archive and concurrency, the variants' against news_cnn's."""
    base_mar = bench_run.store / f"{MODEL_NAME}.mar"
    models = {MODEL_NAME: f"{MODEL_NAME}.mar"}
    for v in variants:
        archives.with_model_config(base_mar, bench_run.store / f"{v.name}.mar",
                                   _variant_overrides(bench_run.model_config, v.overrides))
        models[v.name] = f"{v.name}.mar"
    print(f"{case}: {', '.join(models)} (reference: news_cnn with {bench_run.model_config})")
    rows = []
    with _start(bench_run, case, models, 1) as ts:
        for m in models:
            _check_answer(ts, m, bench_run.text, bench_run.expected)
        for c in concurrencies:
            ours, *results = _compare(ts, [f"/predictions/{m}" for m in models], bench_run, c)
            ref_name = f"{reference} c={c}"
            rows.append(_row(case, ref_name, ours, None))
            rows += [_row(case, f"{v.note} c={c}", result, ours, ref_name)
                     for v, result in zip(variants, results, strict=True)]
    return rows


def run_batching(bench_run: BenchRun) -> list[dict]:
    """batchSize/maxBatchDelay variants at high concurrency, against news_cnn's own settings."""
    base = bench_run.model_config
    variants = [Variant(f"b{b}_d{d}", {"batchSize": b, "maxBatchDelay": d},
                        f"batchSize {b}, maxBatchDelay {d}") for b, d in bench_run.settings.batch_points]
    return run_variants(bench_run, "batching", variants, [bench_run.settings.batch_concurrency],
                        f"news_cnn (batchSize {base.get('batchSize')}, "
                        f"maxBatchDelay {base.get('maxBatchDelay')})")


def run_workers(bench_run: BenchRun) -> list[dict]:
    """Workers x torch threads per worker, against news_cnn's own settings."""
    settings = bench_run.settings
    own = (bench_run.workers, int((bench_run.model_config.get("handler") or {}).get("num_threads", 1)))
    variants = [Variant(f"w{w}_t{t}", {"minWorkers": w, "maxWorkers": w, "handler": {"num_threads": t}},
                        f"{w} worker(s) x {t} thread(s)")
                for w, t in settings.worker_threads if (w, t) != own]
    return run_variants(bench_run, "workers", variants, settings.worker_concurrencies,
                        f"news_cnn ({own[0]} workers x {own[1]} thread)")


def run_inprocess(settings: BenchSettings, titles: list[str], model_config: dict) -> dict:
    """The handler and the bare model without HTTP (see bench.inprocess)."""
    from bench import inprocess  # imports torch and the handler: only when measuring
    print("in-process: handler and bare forward pass")
    result = inprocess.measure(settings.artifacts, titles, batch=32,
                               min_seconds=settings.inprocess_seconds, model_yaml_config=model_config)
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"  {key:<12} {value['us_per_headline_median']:9.1f} us/headline")
    return result


def goals(results: dict) -> list[dict]:
    """Each serving goal (GOAL_*) with the measured figure and whether it was met."""
    pred16 = next((r for r in results["throughput"] if r["name"] == "predictions c=16"), None)
    inproc = results.get("inprocess", {}).get("handler_1")
    explain = next((r for r in results["throughput"] if r["case"] == "explanations"), None)
    out = []

    def goal(text: str, value: float | None, compare: Callable, bound: float) -> None:
        out.append({"goal": text, "value": value, "met": value is not None and compare(value, bound)})
    if pred16:
        goal(f"predictions c=16 >= {GOAL_FLOOR_SHARE:g} x echo req/s", pred16["rps_share"], operator.ge,
             GOAL_FLOOR_SHARE)
        goal(f"predictions c=16 p99 <= {GOAL_FLOOR_P99_RATIO:g} x echo p99", pred16["p99_ratio"], operator.le,
             GOAL_FLOOR_P99_RATIO)
    if inproc:
        goal(f"handler in-process <= {GOAL_INPROCESS_US:g} us per headline (1 headline)",
             inproc["us_per_headline_median"], operator.le, GOAL_INPROCESS_US)
    if explain:
        goal(f"explanations >= {GOAL_EXPLAIN_SHARE:g} x predictions req/s", explain["rps_share"], operator.ge,
             GOAL_EXPLAIN_SHARE)
    return out


CASES = ("startup", "floor", "batching", "workers", "inprocess")


def run(settings: BenchSettings, cases: Sequence[str] = CASES) -> dict:
    """Build the bench archives, run the cases, return everything (also written by `report`)."""
    if not settings.mar.is_file():
        raise FileNotFoundError(f"{settings.mar} is missing: run `make archive` first")
    load.wrk_path()  # fail early with the install hint
    titles = headlines.load(settings.data)
    bodies = headlines.json_bodies(titles)
    text = titles[0]
    results: dict = {"machine": harness.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "settings": {"duration_s": settings.duration_s, "warmup_s": settings.warmup_s,
                                  "rounds": settings.rounds,
                                  "headlines": len(titles), "mar": str(settings.mar)},
                     "throughput": []}
    with harness.temp_root("bench-") as root:
        store = root / "store"
        archives.copy_into(settings.mar, store)
        base = read_model_config(store / f"{MODEL_NAME}.mar")
        results["model_config"] = base
        echo_config = {k: v for k, v in base.items() if k != "handler"}
        archives.build_echo(store, echo_config, ECHO)
        archives.build_echo(store, echo_config | {"batchSize": 1, "maxBatchDelay": 0}, ECHO_B1)
        bench_run = BenchRun(settings, root, store, bodies, text,
                             harness.reference_answers(settings.artifacts, [text])[text], base)
        if "startup" in cases:
            results["startup"] = run_startup(bench_run)
        for case, run_case in (("floor", run_floor), ("batching", run_batching), ("workers", run_workers)):
            if case in cases:
                results["throughput"] += run_case(bench_run)
        if "inprocess" in cases:
            results["inprocess"] = run_inprocess(settings, titles, base)
    results["machine"]["loadavg_end"] = harness.loadavg()
    results["goals"] = goals(results)
    return results
