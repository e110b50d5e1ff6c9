"""Prometheus for the served model: alert rules generated from the model's reference profile,
their promtool tests, the Kubernetes PrometheusRule, and a local Prometheus beside a server.

The reference profile (reference_profile.json: training's figures on the validation split,
archived with the model; model/monitoring.py) holds what the rules compare live traffic
with. `rules --profile <artifacts dir or .mar>` writes the committed rules.yml, rules_test.yml
and prometheusrule.yaml; `serve` is `make monitor`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from serving import cli
from serving.properties import REPO_ROOT, read_properties

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TEST = PROMETHEUS_DIR / "rules_test.yml"
K8S_RULE = REPO_ROOT / "deploy" / "k8s" / "monitoring" / "prometheusrule.yaml"
# model.artifacts.REFERENCE_PROFILE (serving/ reads archives without importing torch)
PROFILE_NAME = "reference_profile.json"
PROFILE_KEY = "reference"  # where rules.yml keeps the profile it was generated from
# The scrape job of prometheus.yml; in Kubernetes the PodMonitor's job is <namespace>/news-cnn.
JOB = "news-cnn"
JOB_MATCH = f'job=~"(.*/)?{JOB}"'
LOW_CONFIDENCE_BUCKET = "0.6"  # model.monitoring.LOW_CONFIDENCE, as its `le` label

# Thresholds (docs/monitoring.md says why each is where it is).
# Population stability index of the four label shares over an hour, against the reference:
# 0.1 is the usual "moderate shift" mark and 0.25 "major"; 0.2 sits between. Sampling noise
# alone gives PSI ~ (labels - 1) / headlines, 0.015 at the 200 headlines an alert needs.
PSI_THRESHOLD = 0.2
MIN_HEADLINES_PER_HOUR = 200  # below this an hour's shares are too noisy to alert on
DRIFT_FOR = "30m"
MEDIAN_DROP = 0.1  # confidence median this far below the reference's
LOW_CONFIDENCE_FACTOR = 2.0  # low-confidence share above twice the reference's
UNKNOWN_FACTOR, UNKNOWN_MARGIN = 2.0, 0.05  # unknown words above max(2 x, + 0.05) the reference's
ABSTENTION_MARGIN = 0.02  # abstentions above the reference's + 2 points
ERROR_RATIO = 0.01  # 5xx above 1 % of the answers over 5 minutes
# A worker reports every second; silent for 30 s it is lost. A silent worker's series stays in
# TorchServe's /metrics (frozen) until the server restarts: the alert looks back 15 minutes.
HEARTBEAT_LOST_S, HEARTBEAT_WINDOW_S = 30, 900
SHARE_FLOOR = 0.001  # a share of 0 would make the PSI infinite
RUNBOOK = "docs/monitoring.md"


class MonitoringError(RuntimeError):
    """A profile or configuration could not be read; the message names the fix."""


def read_profile(source: str | Path) -> dict:
    """The reference profile from an artifacts directory, the file itself, or a .mar archive."""
    source = Path(source)
    try:
        if source.is_dir():
            return json.loads((source / PROFILE_NAME).read_text())
        if source.suffix == ".mar":
            with zipfile.ZipFile(source) as archive:
                return json.loads(archive.read(PROFILE_NAME))
        return json.loads(source.read_text())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise MonitoringError(f"cannot read the reference profile from {source} ({err}): retrain "
                              f"(`make train`) and archive, so that it holds {PROFILE_NAME}") from None


def _fixed(value: float) -> float:
    """Values written into the rules: 4 decimals keep them readable and stable."""
    return round(float(value), 4)


def reference_rules(profile: dict) -> list[dict]:
    """Recording rules that hold the reference as constant series (one per label)."""
    return [{"record": "news:reference:label_share", "expr": f"vector({_fixed(max(share, SHARE_FLOOR))})",
             "labels": {"Label": label}} for label, share in profile["label_shares"].items()]


def recording_rules() -> list[dict]:
    """Live figures: label shares, confidence median, low-confidence, unknown-word and
    abstention shares, traffic, the label-mix PSI and the 5xx share."""
    headlines = "(sum(rate(NewsPredictions[1h])) + sum(rate(NewsAbstentions[1h])))"
    share = f'clamp_min(news:label_share:ratio_rate1h, {SHARE_FLOOR})'
    return [
        {"record": "news:predictions:rate5m", "expr": "sum by (Label) (rate(NewsPredictions[5m]))"},
        {"record": "news:label_share:ratio_rate5m", "expr": _label_shares("5m")},
        {"record": "news:label_share:ratio_rate1h", "expr": _label_shares("1h")},
        {"record": "news:confidence_median:1h",
         "expr": "histogram_quantile(0.5, sum by (le) (rate(NewsConfidence_bucket[1h])))"},
        {"record": "news:low_confidence:ratio_rate1h",
         "expr": f'sum(rate(NewsConfidence_bucket{{le="{LOW_CONFIDENCE_BUCKET}"}}[1h])) '
                 f'/ sum(rate(NewsConfidence_bucket{{le="+Inf"}}[1h]))'},
        {"record": "news:unknown_words:ratio_rate1h",
         "expr": "sum(rate(NewsUnknownWords[1h])) / sum(rate(NewsWords[1h]))"},
        {"record": "news:abstentions:ratio_rate1h", "expr": f"sum(rate(NewsAbstentions[1h])) / {headlines}"},
        {"record": "news:headlines:rate1h", "expr": headlines},
        {"record": "news:label_psi:1h",
         "expr": f"sum(({share} - on(Label) news:reference:label_share) "
                 f"* ln({share} / on(Label) news:reference:label_share))"},
        {"record": "news:workers:alive", "expr": f"count(time() - NewsWorkerHeartbeat < {HEARTBEAT_LOST_S})"},
        {"record": "news:http_5xx:ratio_rate5m",
         # A status TorchServe has not answered since it started has no series: `or vector(0)`
         # stands in (a server that has answered only 5xx still gets a share of 1).
         "expr": "sum(rate(Requests5XX[5m])) / ((sum(rate(Requests2XX[5m])) or vector(0)) "
                 "+ (sum(rate(Requests4XX[5m])) or vector(0)) + sum(rate(Requests5XX[5m])))"},
    ]


def _label_shares(window: str) -> str:
    """Each label's share of the labelled answers over `window`."""
    return (f"sum by (Label) (rate(NewsPredictions[{window}])) "
            f"/ ignoring(Label) group_left sum(rate(NewsPredictions[{window}]))")


def _guarded(condition: str) -> str:
    """`condition` only while an hour has enough headlines for its shares to mean something."""
    return f"{condition} and on() news:headlines:rate1h * 3600 >= {MIN_HEADLINES_PER_HOUR}"


def alert_rules(profile: dict) -> list[dict]:
    """The alerts, each with its threshold taken from the reference profile."""
    median = _fixed(profile["confidence_median_from_buckets"] - MEDIAN_DROP)
    low = _fixed(LOW_CONFIDENCE_FACTOR * profile["low_confidence_share"])
    unknown = _fixed(max(UNKNOWN_FACTOR * profile["unknown_word_share"],
                         profile["unknown_word_share"] + UNKNOWN_MARGIN))
    abstentions = _fixed(profile["abstention_share"] + ABSTENTION_MARGIN)

    def alert(name: str, expr: str, duration: str, severity: str, summary: str) -> dict:
        return {"alert": name, "expr": expr, "for": duration, "labels": {"severity": severity},
                "annotations": {"summary": summary, "runbook": f"{RUNBOOK}#{name.lower()}"}}

    return [
        alert("NewsLabelMixDrift", _guarded(f"news:label_psi:1h > {PSI_THRESHOLD}"), DRIFT_FOR, "warning",
              f"The label mix of the last hour moved from the validation split's (PSI > {PSI_THRESHOLD})"),
        alert("NewsConfidenceDrop", _guarded(f"news:confidence_median:1h < {median}"), DRIFT_FOR, "warning",
              f"The median confidence of the last hour fell below {median} "
              f"(validation: {_fixed(profile['confidence_median_from_buckets'])})"),
        alert("NewsLowConfidenceRise", _guarded(f"news:low_confidence:ratio_rate1h > {low}"), DRIFT_FOR,
              "warning", f"More than {low} of the last hour's answers had confidence "
              f"<= {LOW_CONFIDENCE_BUCKET} "
              f"(validation: {_fixed(profile['low_confidence_share'])})"),
        alert("NewsUnknownWordsRise", _guarded(f"news:unknown_words:ratio_rate1h > {unknown}"), "15m",
              "warning", f"More than {unknown} of the last hour's words were unknown to the model "
              f"(validation: {_fixed(profile['unknown_word_share'])})"),
        alert("NewsAbstentionsRise", _guarded(f"news:abstentions:ratio_rate1h > {abstentions}"), "15m",
              "warning", f"More than {abstentions} of the last hour's headlines had no known word "
              f"(validation: {_fixed(profile['abstention_share'])})"),
        alert("NewsServerErrors", f"news:http_5xx:ratio_rate5m > {ERROR_RATIO}", "5m", "critical",
              f"More than {ERROR_RATIO:.0%} of the answers of the last 5 minutes were 5xx"),
        alert("NewsWorkerRestarted", "sum(increase(NewsWorkerStarts[15m])) > 0", "0m", "warning",
              "A worker started in the last 15 minutes: TorchServe replaced a dead one, or scaled up"),
        alert("NewsWorkerLost", f"time() - NewsWorkerHeartbeat > {HEARTBEAT_LOST_S} "
              f"and time() - NewsWorkerHeartbeat < {HEARTBEAT_WINDOW_S}", "1m", "warning",
              f"A worker stopped reporting more than {HEARTBEAT_LOST_S} s ago: it died, hung or "
              "was scaled down"),
        alert("NewsServerDown", f"up{{{JOB_MATCH}}} == 0", "2m", "critical",
              "Prometheus cannot scrape a news-cnn server's metrics"),
    ]


def rules_document(profile: dict) -> dict:
    """rules.yml: the reference, recording rules and alerts (Prometheus rule-file format)."""
    return {"groups": [
        {"name": "news-cnn-reference", "rules": reference_rules(profile)},
        {"name": "news-cnn-recording", "rules": recording_rules()},
        {"name": "news-cnn-alerts", "rules": alert_rules(profile)},
    ]}


def profile_from_rules(text: str) -> dict:
    """The profile a committed rules.yml was generated from, read from its header."""
    for line in text.splitlines():
        if line.startswith("# {") and f'"{PROFILE_KEY}"' in line:
            return json.loads(line[2:])[PROFILE_KEY]
    raise MonitoringError("rules.yml has no reference header: regenerate it with "
                          "python -m serving.monitoring rules --profile <artifacts or .mar>")


# -- promtool unit tests -------------------------------------------------------------------
TEST_MINUTES = 120  # series length; alerts are evaluated at 100 minutes
EVAL_AT = "100m"
PER_MINUTE = 100  # headlines a minute in the tests (6,000 an hour: above the traffic guard)
WORDS_PER_HEADLINE = 6


def _series(name: str, labels: dict[str, str], per_minute: float) -> dict:
    """A counter that grows by `per_minute` each minute for TEST_MINUTES minutes."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": f"0+{_fixed(per_minute)}x{TEST_MINUTES}"}


def traffic(profile: dict, label_shares: dict | None = None, buckets: dict | None = None,
            unknown_share: float | None = None, abstention_share: float | None = None,
            status_shares: dict | None = None, worker_starts: str = f"2x{TEST_MINUTES}",
            up: str = f"1x{TEST_MINUTES}", heartbeat: str = f"0+60x{TEST_MINUTES}") -> list[dict]:
    """Input series shaped like the reference, or drifted where an argument says so."""
    base = {"job": JOB, "ModelName": "news_cnn", "Level": "Model"}
    abstained = PER_MINUTE * (profile["abstention_share"] if abstention_share is None else abstention_share)
    labelled = PER_MINUTE - abstained
    shares = label_shares or profile["label_shares"]
    cumulative = buckets or profile["confidence_buckets"]
    unknown = profile["unknown_word_share"] if unknown_share is None else unknown_share
    words = PER_MINUTE * WORDS_PER_HEADLINE
    series = [_series("NewsPredictions", {**base, "Label": label, "Endpoint": "predictions"},
                      labelled * share) for label, share in shares.items()]
    series += [_series("NewsConfidence_bucket", {**base, "le": le}, labelled * share)
               for le, share in cumulative.items()]
    series += [_series("NewsAbstentions", base, abstained), _series("NewsWords", base, words),
               _series("NewsUnknownWords", base, words * unknown),
               {"series": f'NewsWorkerStarts{{job="{JOB}"}}', "values": worker_starts},
               # Two workers: the first always reports (a value of Unix time, which promtool's
               # time() starts at 0), the second as `heartbeat` says.
               {"series": f'NewsWorkerHeartbeat{{job="{JOB}",WorkerPid="100"}}',
                "values": f"0+60x{TEST_MINUTES}"},
               {"series": f'NewsWorkerHeartbeat{{job="{JOB}",WorkerPid="101"}}', "values": heartbeat},
               {"series": f'up{{job="{JOB}",instance="127.0.0.1:8082"}}', "values": up}]
    for status, share in (status_shares or {"2": 1.0}).items():
        series.append(_series(f"Requests{status}XX", {"job": JOB, "Level": "Host"}, PER_MINUTE * share))
    return series


def _expect(alerts: list[dict], firing: tuple[str, ...], extra_labels: dict | None = None) -> list[dict]:
    """alert_rule_test entries: the alerts named in `firing` fire (with their labels and
    annotations), the rest stay silent."""
    tests = []
    for rule in alerts:
        expected = []
        if rule["alert"] in firing:
            expected = [{"exp_labels": {**rule["labels"], **(extra_labels or {})},
                         "exp_annotations": rule["annotations"]}]
        tests.append({"eval_time": EVAL_AT, "alertname": rule["alert"], "exp_alerts": expected})
    return tests


def drifted_buckets(profile: dict) -> dict:
    """Confidence buckets of a model much less sure: confidences spread evenly over 0.3-0.9
    (median 0.6, half of the answers at or below 0.6)."""
    return {le: 1.0 if le == "+Inf" else _fixed(min(1.0, max(0.0, (float(le) - 0.3) / 0.6)))
            for le in profile["confidence_buckets"]}


def rules_tests_document(profile: dict) -> dict:
    """rules_test.yml: the reference's own traffic fires nothing; each drifted traffic fires
    its alert and only it; the recording rules read the reference back."""
    alerts = alert_rules(profile)
    labels = list(profile["label_shares"])
    tilted = {label: (0.7 if i == 0 else 0.3 / (len(labels) - 1)) for i, label in enumerate(labels)}
    less_sure = traffic(profile, buckets=drifted_buckets(profile))
    other_language = traffic(profile, unknown_share=min(1.0, 2 * profile["unknown_word_share"]
                                                        + 2 * UNKNOWN_MARGIN))
    empty_titles = traffic(profile, abstention_share=profile["abstention_share"] + 3 * ABSTENTION_MARGIN)
    instance = {"job": JOB, "instance": "127.0.0.1:8082"}
    cases = [
        ("the reference's own traffic", traffic(profile), (), None),
        ("one label takes 70 % of the answers", traffic(profile, label_shares=tilted),
         ("NewsLabelMixDrift",), None),
        ("the model is much less sure", less_sure, ("NewsConfidenceDrop", "NewsLowConfidenceRise"), None),
        ("a feed in another language: unknown words", other_language, ("NewsUnknownWordsRise",), None),
        ("empty titles: abstentions", empty_titles, ("NewsAbstentionsRise",), None),
        ("5 % of the answers are 5xx", traffic(profile, status_shares={"2": 0.95, "5": 0.05}),
         ("NewsServerErrors",), None),
        ("a restarted server answers only 5xx", traffic(profile, status_shares={"5": 1.0}),
         ("NewsServerErrors",), None),
        ("a worker died and was replaced", traffic(profile, worker_starts=f"2x90 3x{TEST_MINUTES - 90}"),
         ("NewsWorkerRestarted",), None),
        ("a worker stopped reporting", traffic(profile, heartbeat=f"0+60x90 5400x{TEST_MINUTES - 90}"),
         ("NewsWorkerLost",), {"job": JOB, "WorkerPid": "101"}),
        ("the server stopped answering scrapes", traffic(profile, up=f"1x90 0x{TEST_MINUTES - 90}"),
         ("NewsServerDown",), instance),
    ]
    tests = [{"name": name, "interval": "1m", "input_series": series,
              "alert_rule_test": _expect(alerts, firing, extra)} for name, series, firing, extra in cases]
    median = _fixed(profile["confidence_median_from_buckets"])
    tests[0]["promql_expr_test"] = [
        {"expr": f"abs(news:confidence_median:1h - {median}) < bool 0.001", "eval_time": EVAL_AT,
         "exp_samples": [{"labels": "{}", "value": 1}]},
        {"expr": "news:label_psi:1h < bool 0.001", "eval_time": EVAL_AT,
         "exp_samples": [{"labels": "{}", "value": 1}]},
        {"expr": "news:workers:alive", "eval_time": EVAL_AT, "exp_samples": [{"labels": "news:workers:alive",
                                                                              "value": 2}]},
    ]
    return {"rule_files": [RULES.name], "evaluation_interval": "1m", "tests": tests}


# -- the generated files -------------------------------------------------------------------
def generated_files(profile: dict) -> dict[Path, str]:
    """Every file `rules` writes, with its text. rules.yml's header holds the profile it came
    from (profile_from_rules); the PrometheusRule (Prometheus operator) holds its groups."""
    rules = rules_document(profile)
    k8s_rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                "metadata": {"name": JOB, "labels": {"app.kubernetes.io/name": JOB}}, "spec": rules}
    return {
        RULES: _header("deploy/prometheus/rules.yml") + f"# {json.dumps({PROFILE_KEY: profile})}\n"
        + _dump(rules),
        RULES_TEST: _header("deploy/prometheus/rules_test.yml") + _dump(rules_tests_document(profile)),
        K8S_RULE: _header("deploy/k8s/monitoring/prometheusrule.yaml, applied with deploy/k8s/monitoring/")
        + _dump(k8s_rule),
    }


def _header(what: str) -> str:
    return (f"# {what}: generated from the model's reference profile (validation split) by\n"
            "#   python -m serving.monitoring rules --profile <artifacts dir or .mar>\n"
            "# Do not edit: change serving/monitoring.py and regenerate. docs/monitoring.md explains it.\n")


def _dump(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, width=200, allow_unicode=True)


# -- a local Prometheus --------------------------------------------------------------------
def prometheus_config_for(metrics_url: str, rules: Path = RULES, scrape_interval: str | None = None) -> dict:
    """The shipped prometheus.yml pointed at `metrics_url` (e.g. a test server's free port)
    and at `rules` by absolute path."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    address = urlsplit(metrics_url)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == JOB)
    job["static_configs"] = [{"targets": [address.netloc]}]
    config["rule_files"] = [str(Path(rules).resolve())]
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
        config["global"]["evaluation_interval"] = scrape_interval
    return config


def prometheus_command(config: Path, storage: Path, listen: str) -> list[str]:
    """Prometheus on `listen` (host:port) with its data in `storage`."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise MonitoringError("prometheus is not installed: apt-get install prometheus (Debian's package)")
    return [binary, f"--config.file={config}", f"--storage.tsdb.path={storage}",
            f"--web.listen-address={listen}", "--log.level=warn"]


def serve(server_config: Path, workdir: Path, listen: str) -> int:
    """Run Prometheus in the foreground (in this process) against the server of `server_config`."""
    metrics = read_properties(server_config).get("metrics_address", "http://127.0.0.1:8082")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(_dump(prometheus_config_for(metrics)))
    command = prometheus_command(config, workdir / "data", listen)
    print(f"Prometheus at http://{listen} (scraping {metrics}/metrics; Ctrl-C stops it)", flush=True)
    # Prometheus replaces this process: a signal to it (Ctrl-C, a test's terminate) stops
    # Prometheus itself, and no child is left behind.
    os.execv(command[0], command)
    return 0  # not reached


def _rules(args: argparse.Namespace) -> int:
    """`rules`: write the generated files, or with --check say which are not current (exit 1)."""
    files = generated_files(read_profile(args.profile))
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(REPO_ROOT)} is not current", file=sys.stderr)
        return cli.FAILED if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {os.path.relpath(path)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `rules` and `serve` commands."""
    parser = cli.command_line("python -m serving.monitoring", __doc__)
    commands = cli.subcommands(parser)
    rules = cli.add_command(commands, "rules", _rules,
                            "write rules.yml, rules_test.yml and the PrometheusRule from a reference profile")
    rules.add_argument("--profile", required=True, type=Path,
                       help="artifacts directory, reference_profile.json or .mar")
    rules.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 when a file is not current")
    run = cli.add_command(commands, "serve", lambda args: serve(args.config, args.workdir, args.listen),
                          "Prometheus on loopback beside a running TorchServe, in the foreground")
    run.add_argument("--config", type=Path, default=REPO_ROOT / "config.properties",
                     help="the server's config.properties")
    run.add_argument("--workdir", type=Path, default=Path("logs") / "prometheus",
                     help="Prometheus's data and configuration")
    run.add_argument("--listen", default="127.0.0.1:9090", help="Prometheus's address")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m serving.monitoring rules|serve`; the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except MonitoringError as err:
        print(f"error: {err}", file=sys.stderr)
        return cli.USAGE


if __name__ == "__main__":
    sys.exit(main())
