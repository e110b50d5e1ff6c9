"""`python -m bench.compare`: two archives of news_cnn side by side in one TorchServe.

A model change (new weights, new preprocessing, abstention, honest explanations) must keep
the serving cost: this loads a baseline archive (e.g. the previous release's .mar) next to the
candidate, each under its own name with its own model-config, and measures /predictions at
c=16 and c=64 and /explanations at c=16 for both, alternating the order round by round (best
round of each), so that both figures come from the same server, minutes apart.

    python -m bench.compare --baseline old/news_cnn.mar --mar model_store/news_cnn.mar \
        --data ../shared/data/ag_news/news.csv
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench import archives, headlines, load, server
from bench.benchmark import BenchSettings, _compare, machine
from serving.properties import MODEL_NAME

BASELINE = "baseline"
CONCURRENCIES = (16, 64)
EXPLAIN_CONCURRENCY = 16
BATCH_SETTINGS = ("batchSize", "maxBatchDelay")


def compare(baseline: Path, candidate: Path, bodies: list[str], settings: BenchSettings,
            workers: int, baseline_batching: bool = False) -> dict:
    """Rows for /predictions and /explanations of both archives, with candidate/baseline ratios.

    `baseline_batching` serves the candidate with the baseline's batchSize and maxBatchDelay,
    so that the ratio measures the model change alone, not a change of batch settings.
    """
    root = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    store = root / "store"
    if baseline_batching:
        own = archives.read_model_config(baseline)
        archives.with_model_config(candidate, store / candidate.name,
                                   {k: own[k] for k in BATCH_SETTINGS if k in own})
    else:
        archives.copy_into(candidate, store)
    shutil.copy2(baseline, store / f"{BASELINE}.mar")
    ts = server.start(root / "ts", store, {MODEL_NAME: candidate.name, BASELINE: f"{BASELINE}.mar"},
                      workers)
    rows = []
    try:
        plan = [("predictions", c) for c in CONCURRENCIES] + [("explanations", EXPLAIN_CONCURRENCY)]
        for kind, c in plan:
            base, cand = _compare(ts, [f"/{kind}/{BASELINE}", f"/{kind}/{MODEL_NAME}"], bodies, c,
                                  settings)
            rows.append({"endpoint": kind, "concurrency": c,
                         "baseline": base.as_dict(), "candidate": cand.as_dict(),
                         "rps_ratio": round(cand.rps / base.rps, 3) if base.rps else None,
                         "p99_ratio": round(cand.p99_ms / base.p99_ms, 3) if base.p99_ms else None})
        batching = {name: {k: archives.read_model_config(store / mar).get(k) for k in BATCH_SETTINGS}
                    for name, mar in (("baseline", f"{BASELINE}.mar"), ("candidate", candidate.name))}
    finally:
        ts.stop()
        shutil.rmtree(root, ignore_errors=True)
    by = {(r["endpoint"], r["concurrency"]): r for r in rows}
    explain_share = {name: round(by[("explanations", EXPLAIN_CONCURRENCY)][name]["rps"]
                                 / by[("predictions", EXPLAIN_CONCURRENCY)][name]["rps"], 3)
                     for name in ("baseline", "candidate")}
    return {"machine": machine(), "batching": batching, "rows": rows,
            "explanations_share_c16": explain_share}


def markdown(result: dict) -> str:
    """The comparison as a Markdown table."""
    lines = ["| endpoint | c | baseline req/s | candidate req/s | ratio | baseline p99 ms | "
             "candidate p99 ms |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['endpoint']} | {r['concurrency']} | {r['baseline']['rps']:.0f} | "
                     f"{r['candidate']['rps']:.0f} | {r['rps_ratio']} | {r['baseline']['p99_ms']:.2f} | "
                     f"{r['candidate']['p99_ms']:.2f} |")
    share = result["explanations_share_c16"]
    m = result["machine"]
    lines.append(f"\nMeasured on {m['cpus']} CPUs ({m.get('cpu_model', 'unknown')}), load average "
                 f"{m['loadavg_start']} at start.")
    lines.append(f"\nBatch settings: {result['batching']}.")
    lines.append(f"\n/explanations as a share of /predictions at c=16: baseline "
                 f"{share['baseline']}, candidate {share['candidate']}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the reference .mar")
    parser.add_argument("--mar", type=Path, default=Path("model_store") / f"{MODEL_NAME}.mar",
                        help="the candidate .mar")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--data", type=Path, default=None, help="headlines CSV for request bodies")
    parser.add_argument("--workers", type=int, default=2, help="workers per archive")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (best kept)")
    parser.add_argument("--baseline-batching", action="store_true",
                        help="serve the candidate with the baseline's batchSize and maxBatchDelay")
    parser.add_argument("--out", type=Path, default=Path("bench") / "compare")
    args = parser.parse_args(argv)
    for path in (args.baseline, args.mar):
        if not path.is_file():
            print(f"error: {path} is not a file; build it with `make archive`", file=sys.stderr)
            return 2
    load.wrk_path()  # fails early, with the install hint, when wrk is missing
    settings = BenchSettings(mar=args.mar, artifacts=args.artifacts, config=Path("config.properties"),
                             out_dir=args.out, duration_s=args.duration, rounds=args.rounds)
    bodies = headlines.json_bodies(headlines.load(args.data))
    result = compare(args.baseline, args.mar, bodies, settings, args.workers, args.baseline_batching)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
