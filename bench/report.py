"""Write the benchmark's results: JSON (everything), a Markdown table and a PNG chart."""
from __future__ import annotations

import json
from pathlib import Path

from bench import harness


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(results: dict) -> str:
    """The tables for the README: throughput and latency with ratios, in-process, start-up, goals."""
    m, s = results["machine"], results["settings"]
    lines = [f"Benchmark of {results['started']} {harness.measured_on(m)}. {s['duration_s']} s per "
             f"measurement after {s['warmup_s']} s warm-up, best of {s.get('rounds', 1)} rounds in "
             f"alternating order, load from `wrk` on loopback. "
             f"news_cnn model-config: `{json.dumps(results.get('model_config', {}))}`.", ""]
    if results.get("throughput"):
        lines += ["| Case | Run | req/s | share of reference | p50 ms | p99 ms | p99 / reference "
                  "| reference |", "|---|---|---:|---:|---:|---:|---:|---|"]
        lines += [f"| {r['case']} | {r['name']} | {r['rps']:.0f} | {_fmt(r.get('rps_share'))} | "
                  f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {_fmt(r.get('p99_ratio'))} | "
                  f"{r.get('reference', '')} |" for r in results["throughput"]] + [""]
    inproc = results.get("inprocess")
    if inproc:
        lines += [f"In-process (no HTTP; torch threads: {inproc.get('torch_threads')}), microseconds per "
                  "headline (median of 5 rounds):", "", "| What | 1 headline | batch of 32 |",
                  "|---|---:|---:|"]
        for key, label in (("handler", "handler: parse + preprocess + forward + format"),
                           ("encode", "preprocess + tokenize + pad"), ("forward", "bare model forward pass"),
                           ("explain", "handler with explanation")):
            one, many = inproc.get(f"{key}_1"), inproc.get(f"{key}_32")
            if one and many:
                lines.append(f"| {label} | {one['us_per_headline_median']:.0f} | "
                             f"{many['us_per_headline_median']:.0f} |")
        lines.append("")
    start = results.get("startup")
    if start:
        lines += ["| Start-up and size | |", "|---|---:|",
                  f"| `torchserve --start` to first correct answer | {start['first_answer_s']:.1f} s |",
                  f"| ... to all {start['workers']} workers ready | {start['all_workers_ready_s']:.1f} s |",
                  f"| news_cnn.mar | {start['mar_bytes'] / 2**20:.2f} MiB |",
                  f"| worker resident memory (idle) | {', '.join(map(str, start['worker_rss_mib_idle']))} "
                  f"MiB |", "| worker resident memory (after load) | "
                  f"{', '.join(map(str, start['worker_rss_mib_after_load']))} MiB |", ""]
    if results.get("goals"):
        lines += ["| Goal | Measured | Met |", "|---|---:|---|"]
        lines += [f"| {g['goal']} | {_fmt(g['value'])} | {'yes' if g['met'] else 'no'} |"
                  for g in results["goals"]] + [""]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> None:
    """Throughput (left) and p50/p99 latency (right) for every throughput run."""
    from matplotlib.figure import Figure  # no pyplot: no backend to pick, no figure to close

    # Rows that repeat a run against a second reference add no bar of their own.
    rows = [r for r in results.get("throughput") or [] if " vs " not in r["name"]]
    if not rows:
        return
    names = [f"{r['case']}: {r['name']}" for r in rows]
    y = list(range(len(rows)))
    fig = Figure(figsize=(14, 0.35 * len(rows) + 1.5))
    left, right = fig.subplots(1, 2, sharey=True)
    colors = {"floor": "tab:blue", "explanations": "tab:orange", "batching": "tab:green",
              "workers": "tab:purple"}
    left.barh(y, [r["rps"] for r in rows], color=[colors.get(r["case"], "gray") for r in rows])
    left.set_xlabel("requests/s")
    left.set_yticks(y, names, fontsize=8)
    left.invert_yaxis()
    height = 0.4
    right.barh([i - height / 2 for i in y], [r["p50_ms"] for r in rows], height, label="p50")
    right.barh([i + height / 2 for i in y], [r["p99_ms"] for r in rows], height, label="p99")
    right.set_xscale("log")
    right.set_xlabel("latency, ms (log scale)")
    right.legend(loc="lower right")
    fig.suptitle("news_cnn on TorchServe: throughput and latency per case")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write(results: dict, out_dir: Path, stem: str = "results") -> list[Path]:
    """results.json, results.md and results.png in `out_dir`."""
    paths = harness.write(out_dir, stem, results, markdown(results))
    paths.append(out_dir / f"{stem}.png")
    chart(results, paths[-1])
    return paths
