"""Write `make bench-peers`' results: bench/peers.json (everything), peers.md and peers.png."""
from __future__ import annotations

import json
from pathlib import Path

from bench import harness
from bench.peers.choice import point_of
from bench.peers.servers import SERVERS

# What bench/peers.json's `cases` entries hold at least (what docs/benchmarks.md reads).
CASE_KEYS = ("server", "concurrency", "rps", "p50_ms", "p99_ms")


def _table(rows: list[dict]) -> list[str]:
    return ["| Server | c | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|"] + [
        f"| {r['server']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        for r in sorted(rows, key=lambda r: (r["concurrency"], _order(r["server"])))]


def _grid_table(rows: list[dict]) -> list[str]:
    """One line per TorchServe setting; req/s, p50 and p99 per concurrency side by side (the
    workers and frontend columns when the grid varied them)."""
    concurrencies = sorted({r["concurrency"] for r in rows})
    points = sorted({point_of(r) for r in rows}, key=str)
    varied = any(r.get("frontend") is not None for r in rows)
    head = "| batchSize | maxBatchDelay ms | " + ("workers | frontend | " if varied else "") + " | ".join(
        f"c={c} req/s | c={c} p50 ms | c={c} p99 ms" for c in concurrencies) + " | applied by TorchServe |"
    align = "|---:|---:|" + ("---:|---|" if varied else "") + "---:|" * (3 * len(concurrencies)) + "---|"
    lines = [head, align]
    for point in points:
        b, d, workers, frontend = point
        cells, applied = [], ""
        for c in concurrencies:
            r = next((r for r in rows if point_of(r) == point and r["concurrency"] == c), None)
            cells.append(f"{r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f}" if r else "- | - | -")
            if r and r.get("applied"):
                applied = f"{r['applied'].get('batchSize')} / {r['applied'].get('maxBatchDelay')} ms"
                if r["applied"].get("workers") is not None:
                    applied += f" / {r['applied']['workers']} workers"
        lead = f"| {b} | {d} | " + (f"{workers} | {frontend} | " if varied else "")
        lines.append(lead + " | ".join(cells) + f" | {applied} |")
    if varied:
        frontends = {r["frontend"]: r.get("frontend_properties") or {} for r in rows}
        lines += [""] + [f"- frontend {name}: " + (", ".join(f"`{k}={v}`" for k, v in props.items())
                                                   or "config.properties as shipped")
                         for name, props in frontends.items()]
    return lines


def _order(name: str) -> tuple:
    return (SERVERS.index(name) if name in SERVERS else len(SERVERS), name)


def markdown(results: dict) -> str:
    """The run's tables: peers, ratios, targets, explanations, the grid and the choice."""
    m, s = results["machine"], results["settings"]
    lines = [f"Peers benchmark of {results['started']} {harness.measured_on(m)}. {s['duration_s']} s per "
             f"measurement after {s['warmup_s']} s warm-up, best of {s['rounds']} round(s) in alternating "
             f"order (grid: {s['grid_rounds']}), `wrk` on loopback; "
             f"{s['processes']} processes per server; peers batch up to {s['peer_max_batch']} with "
             f"{s['peer_max_delay_ms']} ms delay (LitServe: batch_timeout "
             f"{s.get('litserve_batch_timeout_ms', '-')} ms; BentoML: adaptive within max_latency_ms "
             f"{s.get('bentoml_max_latency_ms', '-')}). news_cnn model-config: "
             f"`{json.dumps(results.get('model_config', {}))}`. Whole run: {results.get('total_s')} s.", ""]
    lines += [f"- **{name} not measured**: {why}" for name, why in results.get("unavailable", {}).items()]
    lines += [f"- **{name} refused** (answers differ from TorchServe's): {why}"
              for name, why in results.get("refused", {}).items()]
    if results.get("unavailable") or results.get("refused"):
        lines.append("")
    if results.get("cases"):
        lines += ["/predictions:", ""] + _table(results["cases"]) + [""]
    if results.get("ratios"):
        lines += ["| c | best peer (req/s) | ours / best peer req/s | our p50 - best peer p50 (ms) | "
                  "our p99 / best peer p99 |", "|---:|---|---:|---:|---:|"]
        lines += [f"| {r['concurrency']} | {r['best_peer']} | {r['rps_ratio']} | "
                  f"{r['p50_minus_best_peer_ms']} | {r['p99_ratio_to_best_peer']} |"
                  for r in results["ratios"]] + [""]
    if results.get("targets"):
        lines += ["| Target | Measured | Met |", "|---|---:|---|"]
        lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'no'} |"
                  for t in results["targets"]] + [""]
    if results.get("explanation_cases"):
        lines += ["/explanations:", ""] + _table(results["explanation_cases"]) + [""]
    if results.get("grid"):
        lines += ["TorchServe settings grid (/predictions):", ""] + _grid_table(results["grid"]) + [""]
    choice = results.get("choice")
    if choice:
        text = (f"Objective: {choice['objective']} (bound {choice['p50_bound_ms']} ms). Chosen: batchSize "
                f"{choice['batchSize']}, maxBatchDelay {choice['maxBatchDelay']}")
        if choice.get("workers") is not None:
            text += f", {choice['workers']} workers, frontend {choice['frontend']}"
        text += "." if choice["objective_met"] else \
            f" (no point met the objective; chosen by {choice['rule_applied']} instead)."
        for p in choice.get("not_applied", []):
            text += (f" Left out: {', '.join(f'{k} {v}' for k, v in p.items())} "
                     "(TorchServe did not apply it as written).")
        lines += [text, ""]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> bool:
    """req/s (left) and p50/p99 (right) per server and concurrency; False when nothing to draw."""
    rows = results.get("cases") or []
    if not rows:
        return False
    from matplotlib.figure import Figure  # no pyplot: no backend to pick, no figure to close

    servers = sorted({r["server"] for r in rows}, key=_order)
    concurrencies = sorted({r["concurrency"] for r in rows})
    width = 0.8 / len(servers)
    fig = Figure(figsize=(13, 4.5))
    left, right = fig.subplots(1, 2)
    for i, name in enumerate(servers):
        xs = [j + (i - (len(servers) - 1) / 2) * width for j in range(len(concurrencies))]
        mine = [next((r for r in rows if r["server"] == name and r["concurrency"] == c), None)
                for c in concurrencies]
        left.bar(xs, [r["rps"] if r else 0 for r in mine], width, label=name)
        right.bar(xs, [r["p50_ms"] if r else 0 for r in mine], width, label=f"{name} p50")
        right.scatter(xs, [r["p99_ms"] if r else 0 for r in mine], marker="_", s=200, color="black",
                      zorder=3, label="p99" if i == 0 else None)
    for axis in (left, right):
        axis.set_xticks(range(len(concurrencies)), [f"c={c}" for c in concurrencies])
    left.set_ylabel("requests/s")
    left.legend(fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("latency, ms (bars p50, ticks p99; log)")
    right.legend(fontsize=7, ncol=2)
    fig.suptitle(f"news_cnn /predictions: TorchServe vs peers ({results['machine'].get('cpu_model', '')}, "
                 f"{results['machine']['cpus']} CPUs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write(results: dict, out_dir: Path, stem: str = "peers") -> list[Path]:
    """peers.json, peers.md and (when there are /predictions cases) peers.png in `out_dir`."""
    paths = harness.write(out_dir, stem, results, markdown(results))
    png_path = out_dir / f"{stem}.png"
    return paths + ([png_path] if chart(results, png_path) else [])
