"""`make bench-compare`: a baseline archive (e.g. the previous release's .mar) beside the
candidate in one TorchServe, each with its own model-config: /predictions at c=16 and c=64 and
/explanations at c=16, in alternating rounds (best of each), so that a model change is
measured against the same server, minutes apart.
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import archives, headlines, load, served_models
from bench.harness import LoadSettings, machine, measure_rounds, temp_root
from serving.archive import read_model_config
from serving.properties import MODEL_NAME

BASELINE = "baseline"
BATCH_SETTINGS = ("batchSize", "maxBatchDelay")


@dataclass
class CompareSettings(LoadSettings):
    """What `make bench-compare` measures (the shared part: `LoadSettings`)."""

    rounds: int = 3
    concurrencies: tuple[int, ...] = (16, 64)
    explain_concurrency: int = 16
    workers: int = 2  # per archive
    # Serve the candidate with the baseline's batchSize and maxBatchDelay, so that the ratio
    # measures the model change alone, not a change of batch settings.
    baseline_batching: bool = False


def run(baseline: Path, settings: CompareSettings) -> dict:
    """Rows for /predictions and /explanations of `baseline` and `settings.mar` (the candidate),
    with candidate/baseline ratios."""
    load.wrk_path()  # fail early with the install hint
    bodies = headlines.json_bodies(headlines.load(settings.data))
    candidate = settings.mar
    result = {"machine": machine()}
    with temp_root("bench-compare-") as root:
        store = root / "store"
        if settings.baseline_batching:
            own = read_model_config(baseline)
            archives.with_model_config(candidate, store / candidate.name,
                                       {k: own[k] for k in BATCH_SETTINGS if k in own})
        else:
            archives.copy_into(candidate, store)
        shutil.copy2(baseline, store / f"{BASELINE}.mar")
        rows = []
        models = {MODEL_NAME: candidate.name, BASELINE: f"{BASELINE}.mar"}
        with served_models.start(root / "ts", store, models, settings.workers, base=settings.config) as ts:
            plan = [("predictions", c) for c in settings.concurrencies]
            for kind, c in plan + [("explanations", settings.explain_concurrency)]:
                paths = (f"/{kind}/{BASELINE}", f"/{kind}/{MODEL_NAME}")
                base, cand = measure_rounds([served_models.target(ts, p) for p in paths], bodies, c, settings)
                rows.append({"endpoint": kind, "concurrency": c,
                             "baseline": asdict(base), "candidate": asdict(cand),
                             "rps_ratio": round(cand.rps / base.rps, 3) if base.rps else None,
                             "p99_ratio": round(cand.p99_ms / base.p99_ms, 3) if base.p99_ms else None})
        result["batching"] = {name: {k: read_model_config(store / mar).get(k) for k in BATCH_SETTINGS}
                              for name, mar in (("baseline", f"{BASELINE}.mar"),
                                                ("candidate", candidate.name))}
    by = {(r["endpoint"], r["concurrency"]): r for r in rows}
    c = settings.explain_concurrency
    result["rows"] = rows
    result["explanations_share_c16"] = {
        name: round(by[("explanations", c)][name]["rps"] / by[("predictions", c)][name]["rps"], 3)
        for name in ("baseline", "candidate")}
    return result


def markdown(result: dict) -> str:
    """The comparison as a Markdown table."""
    lines = ["| endpoint | c | baseline req/s | candidate req/s | ratio | baseline p99 ms | "
             "candidate p99 ms |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['endpoint']} | {r['concurrency']} | {r['baseline']['rps']:.0f} | "
                     f"{r['candidate']['rps']:.0f} | {r['rps_ratio']} | {r['baseline']['p99_ms']:.2f} | "
                     f"{r['candidate']['p99_ms']:.2f} |")
    share, m = result["explanations_share_c16"], result["machine"]
    lines += [f"\nMeasured on {m['cpus']} CPUs ({m.get('cpu_model', 'unknown')}), load average "
              f"{m['loadavg_start']} at start.", f"\nBatch settings: {result['batching']}.",
              f"\n/explanations as a share of /predictions at c=16: baseline {share['baseline']}, candidate "
              f"{share['candidate']}."]
    return "\n".join(lines) + "\n"
