"""Readiness and liveness of a TorchServe serving news_cnn, checked for real.

TorchServe's own `/ping` says "Healthy" with every worker dead or scaled to 0
(pytorch/serve#2099). Here live means the frontend answers `/ping`, and ready means not
draining, at least one READY worker, and a canary headline answered with the label the
archive recorded for it (canary.json, written by serving/archive.py).

Each check asks TorchServe afresh, within about CHECK_BUDGET_S, so that a lost last worker
shows within 2 s. A verdict's reason names no file or directory: anyone who reaches the
probe server (serving/probe.py) reads it without a key.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from serving import keys as keyfile
from serving import management, rest
from serving.management import count_ready
from serving.properties import MODEL_NAME, Endpoints, read_properties, token_auth_enabled

CANARY_FILE = "canary.json"
# Used when an archive carries no canary.json: the label is then not checked.
DEFAULT_CANARY_TEXT = "The final tennis tournament starts next week."
# Drain marker in TorchServe's logs/: while it exists, readiness is false.
DRAIN_FILE = "draining"
# Graceful stop: readiness false, then wait for in-flight requests at most this long; they
# are over when none arrived and none is queued for DRAIN_QUIET_S.
DRAIN_BOUND_S = 30.0
DRAIN_QUIET_S = 1.0
# `torchserve --stop` and the wait for the frontend to exit share this bound, then the
# process group is killed; the health server then gets at most PROBE_STOP_S.
STOP_BOUND_S = 10.0
PROBE_STOP_S = 5.0
# A graceful stop ends within this long of the drain's start, wherever the drain ran (a
# Kubernetes preStop hook, or `TorchServe.graceful_stop` on SIGTERM).
SHUTDOWN_BOUND_S = DRAIN_BOUND_S + STOP_BOUND_S + PROBE_STOP_S
# Polls inside the drain's loop answer within this, so the loop ends close to its bound.
DRAIN_POLL_TIMEOUT_S = 2.0
CHECK_BUDGET_S = 1.5
# The canary waits in the job queue with real traffic: under heavy load it can time out while
# the model is healthy. A checker that keeps state (the probe server) tolerates this many
# timeouts in a row while workers are READY; a wrong label, an error status or 0 READY
# workers are never tolerated.
CANARY_TIMEOUT_S = CHECK_BUDGET_S / 2
TOLERATED_CANARY_TIMEOUTS = 2


@dataclass(frozen=True)
class Canary:
    """A headline and the label the archived model gives it (None: not checked)."""

    text: str = DEFAULT_CANARY_TEXT
    label: str | None = None

    @classmethod
    def from_archive(cls, mar: str | Path) -> Canary:
        """The canary.json inside a .mar, else the default headline with no label check."""
        try:
            with zipfile.ZipFile(mar) as archive:
                data = json.loads(archive.read(CANARY_FILE))
            return cls(str(data["text"]), str(data["label"]))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return cls()


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: ok, and one line saying why (or what was seen)."""

    ok: bool
    reason: str


def model_archive(config: str | Path, model: str = MODEL_NAME) -> Path:
    """The .mar that `config`'s load_models loads as `model` (model_store relative to the
    config's directory when not absolute)."""
    config = Path(config)
    properties = read_properties(config)
    store = Path(properties.get("model_store", "model_store"))
    if not store.is_absolute():
        store = config.parent / store
    for entry in properties.get("load_models", f"{model}.mar").split(","):
        name, _, mar = entry.strip().rpartition("=")
        if (name or Path(mar).stem) == model:
            return store / mar
    return store / f"{model}.mar"


@dataclass
class HealthChecker:
    """Checks one TorchServe: its addresses, key file, model and canary."""

    endpoints: Endpoints
    key_file: Path
    canary: Canary
    model: str = MODEL_NAME
    # False where TorchServe runs without keys (a cluster whose gateway authenticates).
    token_auth: bool = True
    # Consecutive canary timeouts (with READY workers) still called ready; 0 for a one-shot
    # check (`python -m serving ready`), which has no history to tell a busy queue by.
    tolerated_timeouts: int = TOLERATED_CANARY_TIMEOUTS
    _timeouts: int = field(default=0, init=False, repr=False, compare=False)

    @classmethod
    def for_server(cls, workdir: str | Path, config: str | Path, model: str = MODEL_NAME) -> HealthChecker:
        """The checker for the TorchServe started from `workdir` with `config`."""
        workdir = Path(workdir).resolve()
        config = Path(config) if Path(config).is_absolute() else workdir / config
        return cls(Endpoints.from_file(config), workdir / keyfile.KEY_FILE,
                   Canary.from_archive(model_archive(config, model)), model,
                   token_auth_enabled(read_properties(config)))

    def _headers(self) -> dict[str, dict[str, str]]:
        """{"inference": ..., "management": ...} Authorization headers ({} without token auth)."""
        keys = keyfile.read_keys(self.key_file) if self.token_auth else None
        return {kind: keys.headers(kind) if keys else {} for kind in ("inference", "management")}

    @property
    def drain_file(self) -> Path:
        """The marker whose presence makes readiness false (see `drain`)."""
        return self.key_file.parent / "logs" / DRAIN_FILE

    def live(self) -> Verdict:
        """The frontend answers /ping (workers are readiness's business)."""
        try:
            response = rest.request("GET", f"{self.endpoints.inference}/ping", CHECK_BUDGET_S,
                                    self._headers()["inference"])
        except FileNotFoundError:
            return Verdict(False, "no key file: TorchServe is not running")
        except (OSError, ValueError, KeyError) as err:
            return Verdict(False, f"the frontend does not answer /ping ({_why(err)})")
        if response.status != 200:
            return Verdict(False, f"/ping answered HTTP {response.status}")
        return Verdict(True, "the frontend answers /ping")

    def ready(self) -> Verdict:
        """Not draining, >= 1 READY worker, and the canary answered with its label (a canary
        that only timed out is tolerated `tolerated_timeouts` times in a row)."""
        if self.drain_file.exists():
            return Verdict(False, "draining: TorchServe is being stopped")
        try:
            headers = self._headers()
        except FileNotFoundError:
            return Verdict(False, "no key file: TorchServe is not running")
        except (OSError, ValueError, KeyError) as err:
            return Verdict(False, f"cannot read the key file ({type(err).__name__})")
        # The worker count comes first and fast: a lost last worker shows without a canary.
        try:
            described = management.describe(self.endpoints.management, self.model, headers["management"],
                                            CHECK_BUDGET_S / 2)
            ready, workers = count_ready(described), len(described.get("workers", []))
        except rest.Refused as err:
            return Verdict(False, f"describing {self.model} answered HTTP {err.status}")
        except OSError as err:
            return Verdict(False, f"TorchServe did not answer in time ({_why(err)})")
        except (ValueError, IndexError, AttributeError):
            return Verdict(False, f"describing {self.model} gave an unreadable answer")
        if ready == 0:
            return Verdict(False, f"{self.model} has 0 READY workers (of {workers})")
        try:
            answer = rest.request("POST", f"{self.endpoints.inference}/predictions/{self.model}",
                                  CANARY_TIMEOUT_S, headers["inference"],
                                  json_body={"text": self.canary.text})
        except OSError as err:
            if isinstance(err, rest.NoAnswer) and err.timed_out:
                return self._canary_timed_out(ready)
            self._timeouts = 0
            return Verdict(False, f"the canary headline got no answer ({_why(err)})")
        self._timeouts = 0
        return self._judge_canary(answer, ready)

    def _canary_timed_out(self, ready: int) -> Verdict:
        """Workers are READY but the canary is still queued: ready until too many in a row."""
        self._timeouts += 1
        seen = f"the canary headline got no answer in {CANARY_TIMEOUT_S} s"
        if self._timeouts > self.tolerated_timeouts:
            return Verdict(False, f"{seen}, {self._timeouts} checks in a row, with {ready} READY worker(s)")
        return Verdict(True, f"{self.model} has {ready} READY worker(s); {seen} (busy? timeout "
                             f"{self._timeouts} of {self.tolerated_timeouts} tolerated in a row)")

    def _judge_canary(self, answer: rest.Response, ready: int) -> Verdict:
        """Ready when the canary's answer carries the expected label (any label without one)."""
        if answer.status != 200:
            return Verdict(False, f"the canary headline got HTTP {answer.status}")
        body = answer.decoded()
        label = body.get("label") if isinstance(body, dict) else None
        if label is None:
            return Verdict(False, "the canary headline got no label")
        if self.canary.label is not None and label != self.canary.label:
            return Verdict(False, f"the canary headline got {label!r}, expected {self.canary.label!r}")
        checked = "" if self.canary.label is not None else " (archive has no canary.json: label not checked)"
        return Verdict(True, f"{self.model} has {ready} READY worker(s); canary answered {label!r}{checked}")

    def drain(self) -> None:
        """Make readiness false from now on (until `undrain`)."""
        self.drain_file.parent.mkdir(parents=True, exist_ok=True)
        self.drain_file.touch()

    def undrain(self) -> None:
        """Readiness follows the model again."""
        self.drain_file.unlink(missing_ok=True)


def _why(err: OSError) -> str:
    """The kind of failure, by name only: a probe's reason is public, paths and hosts are not."""
    return type(err.reason if isinstance(err, rest.NoAnswer) else err).__name__
