"""Monitoring: the handler's behaviour counters, the reference profile, the rules generated
from it (current, valid for promtool, tested by promtool) and their Kubernetes objects."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import jsonschema  # kubernetes-validate depends on it (requirements/dev.txt)
import pytest
import yaml
from ts.metrics.metric_type_enum import MetricTypes

import handler.handler as handler_module
from model.monitoring import BUCKET_NAMES, INF, Tally, bucket_quantile, profile
from serving import monitoring
from serving.properties import METRICS_CONFIG, REPO_ROOT
from tests.unit.test_handler import GOOD, json_request, make_context, set_batch, text_request

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="apt-get install prometheus (promtool)")
CRDS = json.loads((Path(__file__).parents[1] / "helpers" / "prometheus_operator_crds.json").read_text())


def answer(label: str | None, confidence: float = 0.0, words: int = 4, unknown: int = 0) -> dict:
    """An answer as Predictor.format writes it (only the fields the counts read)."""
    return {"label": label, "probabilities": {label: confidence} if label else None,
            "num_tokens": words, "unknown_tokens": unknown}


# -- counting ------------------------------------------------------------------------------
def test_a_tally_counts_labels_cumulative_buckets_words_and_abstentions():
    tally = Tally().add([answer("Sports", 0.97), answer("World", 0.55, unknown=1), answer("Sports", 0.5),
                         answer(None, words=2, unknown=2)])
    assert tally.labels == Counter({"Sports": 2, "World": 1}) and tally.abstentions == 1
    assert (tally.words, tally.unknown_words) == (14, 3)
    # le is inclusive, as in Prometheus: 0.5 falls in the 0.5 bucket.
    assert [tally.buckets[n] for n in BUCKET_NAMES] == [0, 0, 1, 2, 2, 2, 2, 2, 3, 3]
    assert tally.confidence_sum == pytest.approx(2.02)


def test_the_bucket_median_interpolates_like_histogram_quantile():
    # 10 answers: 4 at <= 0.9, all 10 at <= 0.95 -> rank 5 is 1/6 into the 0.9-0.95 bucket.
    cumulative = {n: 0 for n in BUCKET_NAMES} | {"0.9": 4, "0.95": 10, "0.99": 10, INF: 10}
    assert bucket_quantile(0.5, cumulative) == pytest.approx(0.9 + 0.05 / 6)
    assert bucket_quantile(0.5, {n: 10 for n in BUCKET_NAMES}) == pytest.approx(0.15)  # 0 to 0.3


def test_the_profile_of_answers():
    answers = [answer("Sports", 0.95)] * 6 + [answer("World", 0.45, unknown=2)] * 2 + [answer(None)] * 2
    found = profile(answers, ["Business", "Sci/Tech", "Sports", "World"])
    assert found["label_shares"] == {"Business": 0.0, "Sci/Tech": 0.0, "Sports": 0.75, "World": 0.25}
    assert found["abstention_share"] == 0.2 and found["unknown_word_share"] == pytest.approx(4 / 40)
    assert found["low_confidence_share"] == 0.25 and found["confidence_quantiles"]["0.5"] == 0.95
    with pytest.raises(ValueError, match="no headline"):
        profile([answer(None)], ["Sports"])


# -- the handler's counters ----------------------------------------------------------------
class RecordingMetrics:
    """Stands in for context.metrics: keeps each add_metric call, or fails every one."""

    def __init__(self, fail: bool = False):
        self.calls, self.fail = [], fail

    def add_metric(self, name, value, unit, idx, dimensions, metric_type):
        if self.fail:
            raise RuntimeError("metrics backend down")
        self.calls.append((name, value, {d.name: d.value for d in dimensions}, metric_type))

    def total(self, name: str, **dims) -> float:
        return sum(v for n, v, d, _ in self.calls
                   if n == name and all(d.get(k) == x for k, x in dims.items()))


@pytest.fixture()
def handler(tiny_artifacts):
    news = handler_module.NewsHandler()
    context = make_context(tiny_artifacts, [{}])
    context.metrics = RecordingMetrics()
    news.initialize(context)
    return news


def run_batch(news, *requests) -> list:
    """The handler's answers to one batch of (row, headers) requests."""
    set_batch(news.context, [h for _, h in requests])
    return news.handle([r for r, _ in requests], news.context)


def test_every_series_exists_from_the_worker_start_at_zero(handler):
    calls = handler.context.metrics.calls
    assert handler.context.metrics.total(handler_module.METRIC_WORKER_STARTS) == 1
    series = {(n, tuple(sorted(d.items()))) for n, v, d, _ in calls if v == 0}
    labels = handler.predictor.labels.classes
    for label in labels:
        for endpoint in handler_module.ENDPOINTS:
            assert any(n == handler_module.METRIC_PREDICTIONS and ("Label", label) in d
                       and ("Endpoint", endpoint) in d for n, d in series)
    buckets = {dict(d)["le"] for n, d in series if n == handler_module.METRIC_CONFIDENCE_BUCKET}
    assert buckets == set(BUCKET_NAMES)


def test_the_counters_count_what_was_answered(handler):
    metrics = handler.context.metrics
    metrics.calls.clear()
    texts = [GOOD, "Oil prices and stocks market", "zzz qqq", "President election vote"]
    output = run_batch(handler, json_request({"texts": texts}), text_request(""),
                       text_request("Rocket space software talks", explain=True), json_request({"texts": []}))
    answered = json.loads(output[0]) + [json.loads(output[2])]
    handler.flush_counts()  # the worker's thread sends them every METRICS_FLUSH_S seconds
    assert [handler.context.get_response_status(i)[0] for i in range(4)] == [200, 400, 200, 400]
    expected = Tally().add(answered)
    labels = handler.predictor.labels.classes
    for label in labels:
        assert metrics.total("NewsPredictions", Label=label) == expected.labels.get(label, 0)
    explained = json.loads(output[2])["label"]
    assert metrics.total("NewsPredictions", Endpoint="explanations") == 1
    assert metrics.total("NewsPredictions", Endpoint="explanations", Label=explained) == 1
    assert metrics.total("NewsPredictions", Endpoint="predictions") == 3  # "zzz qqq" abstained
    for name in BUCKET_NAMES:
        assert metrics.total("NewsConfidence_bucket", le=name) == expected.buckets.get(name, 0)
    assert metrics.total("NewsConfidence_bucket", le=INF) == 4
    assert metrics.total("NewsWords") == expected.words
    assert metrics.total("NewsUnknownWords") == expected.unknown_words
    assert metrics.total("NewsConfidence_sum") == pytest.approx(expected.confidence_sum, abs=1e-5)
    assert metrics.total(handler_module.METRIC_ABSTENTIONS) == 1


def test_a_failing_metrics_backend_fails_no_request(handler):
    expected = json.loads(run_batch(handler, text_request(GOOD))[0])
    handler.context.metrics = RecordingMetrics(fail=True)
    output = run_batch(handler, text_request(GOOD), text_request(GOOD, explain=True))
    assert json.loads(output[0]) == expected and json.loads(output[1])["label"] == expected["label"]
    assert [handler.context.get_response_status(i)[0] for i in range(2)] == [200, 200]


def test_the_metrics_are_declared_with_the_dimensions_in_the_order_the_handler_sends(handler):
    handler.context.metrics.calls.clear()
    run_batch(handler, text_request(GOOD), text_request("zzz qqq"))
    handler.flush_counts()
    handler._add_metric(handler_module.METRIC_HEARTBEAT, 1.0, "s", MetricTypes.GAUGE, {"WorkerPid": "1"})
    declared = {(m["name"], kind.upper()): m for kind, entries in
                yaml.safe_load(METRICS_CONFIG.read_text())["model_metrics"].items() for m in entries}
    sent = handler.context.metrics.calls
    assert {n for n, *_ in sent} >= {"NewsPredictions", "NewsConfidence_bucket", "NewsWorkerHeartbeat"}
    for name, _, dims, metric_type in sent:
        assert (name, metric_type.name) in declared, f"{name} is not a {metric_type.name} in {METRICS_CONFIG}"
        # TorchServe's frontend maps dimension values to names by position.
        assert list(dims) == declared[(name, metric_type.name)]["dimensions"], name


# -- rules -----------------------------------------------------------------------------------
def committed_profile() -> dict:
    return monitoring.profile_from_rules(monitoring.RULES.read_text())


def test_the_committed_rules_tests_and_prometheusrule_are_generated_from_the_rules_reference():
    for path, text in monitoring.generated_files(committed_profile()).items():
        assert path.read_text() == text, f"{path} is not current: python -m serving.monitoring rules"


def test_the_rules_compare_with_the_profile_they_were_generated_from():
    reference = committed_profile()
    rules = monitoring.rules_document(reference)
    shares = {r["labels"]["Label"]: r["expr"] for r in rules["groups"][0]["rules"]}
    assert shares == {label: f"vector({round(share, 4)})"
                      for label, share in reference["label_shares"].items()}
    drop = next(r for r in rules["groups"][2]["rules"] if r["alert"] == "NewsConfidenceDrop")
    threshold = round(reference["confidence_median_from_buckets"] - monitoring.MEDIAN_DROP, 4)
    assert f"< {threshold}" in drop["expr"]
    other = copy.deepcopy(reference)
    other["label_shares"] = {label: 0.25 for label in reference["label_shares"]}
    assert monitoring.rules_document(other) != rules


def test_the_profile_is_read_from_artifacts_an_archive_or_the_file(tmp_path):
    import zipfile

    reference = committed_profile()
    (tmp_path / monitoring.PROFILE_NAME).write_text(json.dumps(reference))
    with zipfile.ZipFile(tmp_path / "m.mar", "w") as mar:
        mar.write(tmp_path / monitoring.PROFILE_NAME, monitoring.PROFILE_NAME)
    for source in (tmp_path, tmp_path / monitoring.PROFILE_NAME, tmp_path / "m.mar"):
        assert monitoring.read_profile(source) == reference
    with pytest.raises(monitoring.MonitoringError, match="retrain"):
        monitoring.read_profile(tmp_path / "missing")
    assert monitoring.main(["rules", "--profile", str(tmp_path / "missing"), "--check"]) == 2


def promtool(*args: str, cwd: Path = monitoring.PROMETHEUS_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_promtool_accepts_the_config_and_rules_and_their_tests_pass():
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "rules.yml"),
                 ("test", "rules", "rules_test.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_promtool_tests_fail_on_rules_that_never_fire(tmp_path):
    rules = monitoring.rules_document(committed_profile())
    for rule in rules["groups"][2]["rules"]:
        rule["expr"] = "vector(0) > 1"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(monitoring.RULES_TEST, tmp_path / "rules_test.yml")
    result = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    for rule in rules["groups"][2]["rules"]:
        assert f"alertname: {rule['alert']}," in result.stdout + result.stderr, rule["alert"]


def test_each_alert_fires_in_one_case_and_none_in_the_references():
    tests = yaml.safe_load(monitoring.RULES_TEST.read_text())["tests"]
    alerts = [r["alert"] for r in monitoring.alert_rules(committed_profile())]
    fired = {t["alertname"] for case in tests[1:] for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert fired == set(alerts)
    assert {t["alertname"] for t in tests[0]["alert_rule_test"]} == set(alerts)
    assert not any(t["exp_alerts"] for t in tests[0]["alert_rule_test"])


# -- Kubernetes ------------------------------------------------------------------------------
def strict(schema: dict) -> dict:
    """The CRD schema as the API server's strict field validation reads it: an object's
    unknown fields are refused unless it preserves them."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node \
                    and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(schema)
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def monitoring_manifests() -> dict[str, dict]:
    found = {}
    for path in sorted((REPO_ROOT / "deploy" / "k8s" / "monitoring").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        found[doc["kind"]] = doc
    return found


@pytest.mark.parametrize("kind", ["PodMonitor", "PrometheusRule"])
def test_the_monitoring_objects_are_valid_for_the_operators_crds(kind):
    manifest = monitoring_manifests()[kind]
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    # Not jsonschema.validate: it checks the schema too, and the CRDs hold Go regular
    # expressions (`^(?i)...`) that Python's cannot compile (none applies to these objects).
    validator = jsonschema.Draft7Validator(strict(CRDS["schemas"][kind]))
    validator.validate(manifest)
    broken = copy.deepcopy(manifest)
    broken["spec"]["selectorr" if kind == "PodMonitor" else "groupz"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    broken = copy.deepcopy(manifest)
    if kind == "PodMonitor":
        broken["spec"]["podMetricsEndpoints"][0]["interval"] = "thirty seconds"
    else:
        broken["spec"]["groups"][0]["rules"][0]["expr"] = ["not", "a", "query"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_the_prometheusrule_holds_rules_yml_and_the_podmonitor_scrapes_the_metrics_port():
    found = monitoring_manifests()
    assert found["PrometheusRule"]["spec"] == yaml.safe_load(monitoring.RULES.read_text())
    deployment = yaml.safe_load((REPO_ROOT / "deploy" / "k8s" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]
    (endpoint,) = found["PodMonitor"]["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
    assert ports[endpoint["port"]] == 8082 and endpoint["path"] == "/metrics"
    assert found["PodMonitor"]["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    policy = yaml.safe_load((REPO_ROOT / "deploy" / "k8s" / "networkpolicy.yaml").read_text())
    metrics_rules = [r for r in policy["spec"]["ingress"] if {"port": 8082} in r["ports"]]
    assert metrics_rules == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}], "ports": [{"port": 8082}]}]


def test_the_local_config_points_at_the_server_and_the_rules_by_absolute_path(tmp_path):
    config = monitoring.prometheus_config_for("http://127.0.0.1:18082", scrape_interval="1s")
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:18082"]}]
    assert config["rule_files"] == [str(monitoring.RULES)] and config["global"]["scrape_interval"] == "1s"
    shipped = yaml.safe_load(monitoring.PROMETHEUS_CONFIG.read_text())
    assert shipped["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:8082"]}]
