"""The archived model answered in this process, through the handler TorchServe would run
(`news-cnn predict|explain --archive news_cnn.mar`, where no TorchServe runs).

handler/handler.py's `NewsHandler` is initialised on the unpacked .mar (or an artifacts
directory, with the checkout's model-config.yaml) with a `Context` built as TorchServe's
worker builds it (ts/service.py), no GPU and no metrics sink. Each call is one request of a
batch of one, answered (HTTP status, JSON) as the REST API would. The code that runs is
this checkout's, not the archive's: a warning names any of the archive's Python files that
differ, since the answers may then differ from the served ones.
"""
from __future__ import annotations

import filecmp
import json
import logging
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import IO

import yaml
from ts.context import Context, RequestProcessor

from serving.archive import HANDLER, HANDLER_MODULES, MAR_MANIFEST, MODEL_CONFIG_YAML, MODEL_PACKAGE
from serving.properties import MODEL_NAME


class OfflineError(RuntimeError):
    """The archive or directory cannot be loaded; the message says why."""


class OfflineModel:
    """The handler over an archive, called in process. Use as a context manager (the
    unpacked archive is removed on exit); calls are serialised (one handler, one context)."""

    def __init__(self, source: str | Path, model_config: dict | None = None,
                 warn: IO[str] | None = None, handler_settings: dict | None = None) -> None:
        """Load `source` (a .mar or an artifacts directory); `model_config` replaces its
        model-config.yaml (e.g. other handler limits), and `handler_settings` replace single
        keys of its `handler` section (e.g. {"max_texts": 512} for larger requests)."""
        # TorchServe's base handler warns on import about accelerators it did not find
        # (OpenVINO, ONNX Runtime, TensorRT): noise for a run in this process.
        logging.getLogger("ts.torch_handler.base_handler").setLevel(logging.ERROR)
        from handler.handler import NewsHandler  # torch and ts: only when a model is loaded

        self.source = Path(source)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._lock = threading.Lock()
        model_dir, manifest, archived_config = self._unpack()
        for name in self._differing_code(model_dir):
            print(f"warning: {self.source}'s {name} differs from this checkout's, whose code runs "
                  f"here: its answers may differ from the served ones", file=warn or sys.stderr)
        config = model_config or archived_config
        if handler_settings:
            config = {**config, "handler": {**(config.get("handler") or {}), **handler_settings}}
        self.context = Context(MODEL_NAME, str(model_dir), manifest, 1, None, "offline",
                               metrics=None, model_yaml_config=config)
        self.handler = NewsHandler()
        try:
            self.handler.initialize(self.context)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            self.close()
            raise OfflineError(f"cannot load the model from {self.source}: {err}") from err

    def _unpack(self) -> tuple[Path, dict | None, dict]:
        """(model directory, manifest, model-config) of a .mar or an artifacts directory."""
        if not self.source.exists():
            raise OfflineError(f"{self.source} does not exist: name a .mar (`make archive` builds "
                               f"model_store/news_cnn.mar) or a training run's artifacts directory")
        if self.source.is_dir():
            return self.source, None, yaml.safe_load(MODEL_CONFIG_YAML.read_text()) or {}
        if not zipfile.is_zipfile(self.source):
            raise OfflineError(f"{self.source} is neither a .mar archive nor an artifacts directory")
        self._tmp = tempfile.TemporaryDirectory(prefix="news_cnn_offline_")
        model_dir = Path(self._tmp.name)
        try:
            with zipfile.ZipFile(self.source) as archive:
                archive.extractall(model_dir)
            manifest = json.loads((model_dir / MAR_MANIFEST).read_text())
            config_file = manifest.get("model", {}).get("configFile")
            config = yaml.safe_load((model_dir / config_file).read_text()) if config_file else {}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, yaml.YAMLError) as err:
            self.close()
            raise OfflineError(f"cannot unpack {self.source}: {err}") from err
        return model_dir, manifest, config or {}

    def _differing_code(self, model_dir: Path) -> list[str]:
        """The archive's Python files that are not byte for byte this checkout's."""
        if self.source.is_dir():
            return []
        pairs = [(HANDLER.name, HANDLER)] + [(m.name, m) for m in HANDLER_MODULES]
        pairs += [(f"model/{p.name}", p) for p in sorted(MODEL_PACKAGE.glob("*.py"))]
        return [name for name, ours in pairs
                if (model_dir / name).is_file() and not filecmp.cmp(model_dir / name, ours, shallow=False)]

    def call(self, body: object, explain: bool = False, decode: bool = True) -> tuple[int, object]:
        """One request as TorchServe would hand it over: (HTTP status, decoded JSON answer;
        the JSON text as the handler wrote it when not `decode`)."""
        with self._lock:
            # What the worker hands the handler for a JSON body: its content type under the
            # parameter's name ("body"), and "explain" on requests to /explanations.
            headers = {"body": {"content-type": "application/json"}}
            if explain:
                headers["explain"] = "True"
            self.context.request_processor = [RequestProcessor(headers)]
            self.context.request_ids = {0: "offline"}
            output = self.handler.handle([{"body": body}], self.context)
            status, _ = self.context.get_response_status(0)
        answer = output[0]
        return status, json.loads(answer) if decode and isinstance(answer, (str, bytes)) else answer

    def metadata(self) -> dict:
        """What the served model's description shows as customizedMetadata."""
        return self.handler.describe_handle()

    def close(self) -> None:
        """Remove the unpacked archive."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> OfflineModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
