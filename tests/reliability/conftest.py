"""Fixtures of the reliability suite: the archive under test, the headlines sent and their
in-process answers, servers of that archive, and the figures each case records.

    soak_sizes      SoakSizes from --soak-size (quick in `make test`, full in `make soak`)
    soak_archive    the .mar served, the training run it came from, its model-config
    headlines_sent  the headlines the load sends; reference: their in-process answers
    start_server    start_server(**overrides) -> a TorchServe serving the archive
    served          one server shared by the cases that leave it as they found it
    fresh_server    a server of the test's own (the stop cases stop it)
    record          record(case, figures) keeps a case's figures for --soak-out
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from bench import headlines, served_models
from bench.harness import loadavg, machine, write
from serving.archive import build_archive, read_model_config
from serving.polling import wait_for
from serving.properties import DEFAULT_CONFIG, MODEL_NAME, read_properties
from serving.server import TorchServe
from tests.helpers.badinput import edge_good_requests
from tests.helpers.soak_settings import SoakSizes
from tests.helpers.traffic import Reference, healthy_with

PASSED = pytest.StashKey[bool]()


@dataclass(frozen=True)
class ServedArchive:
    """The archive under test, copied into a model store of the suite's own."""

    mar: Path
    artifacts: Path  # the training run it came from: the in-process reference
    model_config: dict

    @property
    def workers(self) -> int:
        """The worker count its model-config asks for."""
        return int(self.model_config.get("minWorkers", 1))

    @property
    def max_chars(self) -> int:
        """Characters per headline the handler accepts."""
        return int((self.model_config.get("handler") or {}).get("max_chars", 1000))

    @property
    def max_texts(self) -> int:
        """Headlines per {"texts": [...]} request the handler accepts."""
        return int((self.model_config.get("handler") or {}).get("max_texts", 64))

    @property
    def max_request_size(self) -> int:
        """The largest body TorchServe's frontend reads (config.properties)."""
        return int(read_properties(DEFAULT_CONFIG).get("max_request_size", 6553500))


@pytest.fixture(scope="session")
def soak_sizes(pytestconfig) -> SoakSizes:
    return SoakSizes.named(pytestconfig.getoption("--soak-size"))


@pytest.fixture
def full_size_only(soak_sizes) -> None:
    """Skip an informative case at the quick size: it runs in `make soak`, not `make test`."""
    if soak_sizes.name != "full":
        pytest.skip("runs at --soak-size full (make soak)")


@pytest.fixture(scope="session")
def soak_archive(request, tmp_path_factory) -> ServedArchive:
    """--soak-mar with --soak-artifacts, else the tiny test artifacts archived with the
    project's model-config (handler/model-config.yaml)."""
    if shutil.which("java") is None:
        pytest.skip("TorchServe needs Java 17+")
    store = tmp_path_factory.mktemp("soak_store")
    mar, artifacts = request.config.getoption("--soak-mar"), request.config.getoption("--soak-artifacts")
    if mar:
        if not artifacts:
            raise pytest.UsageError("--soak-mar needs --soak-artifacts (the in-process reference)")
        copy = Path(shutil.copy2(mar, store / Path(mar).name))
        return ServedArchive(copy, Path(artifacts), read_model_config(copy))
    tiny = request.getfixturevalue("tiny_artifacts")
    built = build_archive(tiny, store)
    return ServedArchive(built, tiny, read_model_config(built))


@pytest.fixture(scope="session")
def headlines_sent(pytestconfig, soak_archive) -> list[str]:
    """Up to 500 headlines from --soak-data or the test split, else the built-in sample."""
    data = pytestconfig.getoption("--soak-data")
    split = soak_archive.artifacts / "test.csv"
    return headlines.load(data or (split if split.is_file() else None), limit=500)


@pytest.fixture(scope="session")
def reference(soak_archive, headlines_sent) -> Reference:
    """The in-process answers to the headlines sent and to the barrage's odd-but-valid ones."""
    edge = [text for _, text in edge_good_requests(soak_archive.max_chars)]
    return Reference(soak_archive.artifacts, headlines_sent + edge)


@pytest.fixture(scope="package")
def start_server(soak_archive, tmp_path_factory) -> Iterator[Callable[..., TorchServe]]:
    """start_server(**overrides): a TorchServe serving the archive with its own worker count,
    the project's config.properties on free loopback ports (`overrides` replace entries),
    returned once every worker is READY. Whatever it started is stopped at the end."""
    started: list[TorchServe] = []

    def start(**overrides: object) -> TorchServe:
        ts = served_models.start(tmp_path_factory.mktemp("soak_server"), soak_archive.mar.parent,
                          {MODEL_NAME: soak_archive.mar.name}, soak_archive.workers, **overrides)
        started.append(ts)
        return ts
    yield start
    for ts in started:
        ts.stop()


@pytest.fixture(scope="package")
def _shared_server(start_server) -> TorchServe:
    return start_server()


@pytest.fixture
def served(_shared_server, soak_archive) -> TorchServe:
    """The server the cases share, with its configured workers READY (a case before may have
    killed or scaled them)."""
    wait_for(lambda: healthy_with(_shared_server, soak_archive.workers), 120,
             f"{soak_archive.workers} READY workers")
    return _shared_server


@pytest.fixture
def fresh_server(start_server) -> Iterator[TorchServe]:
    """A server of the test's own, stopped at its end if the test has not stopped it."""
    ts = start_server()
    yield ts
    ts.stop()


# --- the figures, for docs/reliability.md ----------------------------------------------------
@pytest.fixture(scope="package")
def soak_results(pytestconfig, soak_sizes, soak_archive) -> Iterator[dict]:
    """Every case's figures; written to --soak-out (JSON, and Markdown beside it) at the end."""
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "mar": str(pytestconfig.getoption("--soak-mar") or "tiny test artifacts"),
               "sizes": asdict(soak_sizes), "workers": soak_archive.workers, "cases": {}}
    yield results
    out = pytestconfig.getoption("--soak-out")
    if out:
        results["machine"]["loadavg_end"] = loadavg()
        out = Path(out)
        write(out.parent, out.stem, results, markdown(results))


@pytest.fixture
def record(request, soak_results) -> Iterator[Callable[..., None]]:
    """record(case, figures, part=None): keep a case's figures (under `part` of the case when
    given), printed now and marked afterwards with whether the test passed."""
    kept: list[dict] = []

    def keep(case: str, figures: dict, part: str | None = None) -> None:
        if part is None:
            soak_results["cases"][case] = figures
        else:
            soak_results["cases"].setdefault(case, {})[part] = figures
        kept.append(figures)
        print(f"{case}{'.' + part if part else ''}: {json.dumps(figures)[:2000]}")
    yield keep
    for figures in kept:
        figures["passed"] = request.node.stash.get(PASSED, False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[PASSED] = report.passed
    return report


def markdown(results: dict) -> str:
    """One table of figures per case (per part, for a case recorded in parts)."""
    m = results["machine"]
    lines = [f"Reliability suite of {results['started']} on {m['cpu_model']} ({m['cores_usable']} cores "
             f"usable), load average {m['loadavg_start']} at start, {m.get('loadavg_end')} at end; "
             f"{results['sizes']['name']} sizes, {results['mar']}, {results['workers']} workers.", ""]
    for case, figures in results["cases"].items():
        parts = figures if all(isinstance(v, dict) for v in figures.values()) else {"": figures}
        for part, sub in parts.items():
            lines += [f"**{case}{': ' + part if part else ''}**", "", "| figure | value |", "|---|---|"]
            lines += [f"| {key} | {_cell(value)} |" for key, value in sub.items()]
            lines.append("")
    return "\n".join(lines)


def _cell(value: object, limit: int = 300) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return (text if len(text) <= limit else text[:limit] + " ...").replace("|", "\\|")
