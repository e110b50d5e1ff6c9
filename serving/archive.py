"""Pack trained artifacts, the handler and the shared `model` package into news_cnn.mar.

model_store/news_cnn.mar is the archive `make serve` serves. A versioned build (`--versioned`,
what `make archive VERSION=2.0` runs) writes news_cnn_v2.0.mar beside it and leaves it alone,
unless `--promote` makes it the served one too. Reading an archive needs only serving/ (what
the serving image holds); building one imports the training side's `model` package (and
torch), so that import waits until a build.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

from serving import cli
from serving.health import CANARY_FILE, DEFAULT_CANARY_TEXT
from serving.properties import MODEL_NAME

REPO_ROOT = Path(__file__).resolve().parent.parent
HANDLER = REPO_ROOT / "handler" / "handler.py"
# Modules the handler imports from its own directory (TorchServe allows one class per handler file).
HANDLER_MODULES = (REPO_ROOT / "handler" / "request_parsing.py",)
MODEL_CONFIG_YAML = REPO_ROOT / "handler" / "model-config.yaml"
MODEL_PACKAGE = REPO_ROOT / "model"
MODEL_DEFINITION = MODEL_PACKAGE / "cnn.py"
# The archive's own manifest, written by torch-model-archiver (not the artifacts' manifest.json).
MAR_MANIFEST = "MAR-INF/MANIFEST.json"
# What a version may hold: it becomes part of a file name (news_cnn_v<version>.mar).
VERSION_PATTERN = re.compile(r"[A-Za-z0-9._-]+")


class ArchiveError(RuntimeError):
    """The archive could not be built; the message names the fix."""


def check_version(version: str) -> str:
    """`version` itself when it is letters, digits and . _ - only, else ArchiveError."""
    if not VERSION_PATTERN.fullmatch(version) or version in (".", ".."):
        raise ArchiveError(f"version {version!r} may hold only letters, digits and . _ - "
                           f"(it becomes part of the archive's file name), e.g. 2.0")
    return version


def artifact_version(artifacts_dir: str | Path) -> str:
    """The model version recorded by training in manifest.json."""
    from model import artifacts

    try:
        return str(artifacts.read_json(artifacts_dir, artifacts.MANIFEST)["version"])
    except (OSError, KeyError, ValueError) as err:
        raise ArchiveError(f"cannot read the version from {Path(artifacts_dir) / artifacts.MANIFEST} "
                           f"({err}): retrain (`make train`) or pass --version") from None


def versioned_name(model_name: str, version: str) -> str:
    """The file name of a versioned build: news_cnn_v2.0.mar."""
    return f"{model_name}_v{check_version(version)}.mar"


def write_canary(artifacts_dir: Path, dest: Path, text: str = DEFAULT_CANARY_TEXT) -> Path | None:
    """canary.json: a headline and the label this model gives it in process, which readiness
    (serving/health.py) expects the served model to give too. None when the model abstains."""
    from model.predictor import Predictor

    label = Predictor.from_dir(artifacts_dir).predict([text])[0].get("label")
    if label is None:
        print(f"warning: the model abstains on the canary {text!r}: readiness will not check labels",
              file=sys.stderr)
        return None
    dest.write_text(json.dumps({"text": text, "label": label}))
    return dest


def build_archive(artifacts_dir: str | Path, export_path: str | Path = "model_store",
                  version: str | None = None, model_name: str = MODEL_NAME,
                  model_config: str | Path = MODEL_CONFIG_YAML, file_name: str | None = None) -> Path:
    """Build `<export_path>/<file_name>` (default `<model_name>.mar`) from a training run's
    directory and return its path; `model_config` replaces handler/model-config.yaml. It is
    built aside and moved in whole: a failed build never leaves a broken served archive."""
    from model import artifacts

    artifacts_dir, export_path = Path(artifacts_dir), Path(export_path)
    # Artifacts the handler cannot work without; the reference profile is for monitoring only.
    required = tuple(n for n in artifacts.SERVING_FILES if n != artifacts.REFERENCE_PROFILE)
    missing = artifacts.missing_files(artifacts_dir, required)
    if missing:
        raise ArchiveError(f"{artifacts_dir} lacks {', '.join(missing)}: train first "
                           f"(`make train DATA=file.csv`)")
    version = check_version(version or artifact_version(artifacts_dir))
    files = [artifacts_dir / n for n in artifacts.SERVING_FILES
             if n != artifacts.WEIGHTS and (artifacts_dir / n).is_file()] + list(HANDLER_MODULES)
    export_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="news_cnn_archive_") as tmp:
        stage, built = Path(tmp) / "stage", Path(tmp) / "built"
        # --extra-files copies a directory's contents into the archive's root: `model` staged
        # as <stage>/model lands as model/ beside handler.py, where the worker imports it.
        shutil.copytree(MODEL_PACKAGE, stage / "model", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        canary = write_canary(artifacts_dir, Path(tmp) / CANARY_FILE)
        built.mkdir()
        archiver = Path(sys.executable).parent / "torch-model-archiver"
        # The weights are a plain state dict (the handler loads them with weights_only=True).
        command = [str(archiver) if archiver.exists() else "torch-model-archiver",
                   "--model-name", model_name, "--version", version, "--model-file", str(MODEL_DEFINITION),
                   "--serialized-file", str(artifacts_dir / artifacts.WEIGHTS), "--handler", str(HANDLER),
                   "--extra-files", ",".join(str(f) for f in [*files, *([canary] if canary else []), stage]),
                   "--config-file", str(Path(model_config)), "--export-path", str(built), "--force"]
        # The archiver stages in $TMPDIR/<model_name>: a private TMPDIR keeps parallel builds apart.
        result = subprocess.run(command, env={**os.environ, "TMPDIR": tmp}, capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise ArchiveError(f"torch-model-archiver failed:\n{result.stdout}{result.stderr}")
        target = export_path / (file_name or f"{model_name}.mar")
        shutil.move(str(built / f"{model_name}.mar"), target)
    return target


def model_config_member(mar: str | Path) -> str:
    """The archive member that holds the model-config, as the archive's manifest names it."""
    with zipfile.ZipFile(mar) as z:
        manifest = json.loads(z.read(MAR_MANIFEST))
    name = manifest.get("model", {}).get("configFile")
    if not name:
        raise ValueError(f"{mar} has no model-config file in its manifest")
    return name


def read_model_config(mar: str | Path) -> dict:
    """The model-config.yaml packed in `mar` (batchSize, maxBatchDelay, workers, ...)."""
    with zipfile.ZipFile(mar) as z:
        return yaml.safe_load(z.read(model_config_member(mar))) or {}


def build_parser() -> argparse.ArgumentParser:
    """`python -m serving.archive`'s options."""
    parser = cli.command_line("python -m serving.archive", __doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default="artifacts", help="training output directory")
    parser.add_argument("--export-path", default="model_store", help="where the .mar goes")
    parser.add_argument("--version", default=None,
                        help="archive version (default: manifest.json's version)")
    parser.add_argument("--model-name", default=MODEL_NAME, help="TorchServe model name")
    parser.add_argument("--config-file", default=str(MODEL_CONFIG_YAML),
                        help="TorchServe model-config.yaml (batching, workers, handler settings)")
    parser.add_argument("--versioned", action="store_true",
                        help="write <model-name>_v<version>.mar and leave the served <model-name>.mar alone")
    parser.add_argument("--promote", action="store_true",
                        help="with --versioned: also copy it to <model-name>.mar, "
                             "the archive `make serve` serves")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build the archive (and promote it); one JSON line per archive written, exit 2 for a bad
    option, 1 when the artifacts cannot be packed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.promote and not args.versioned:
        parser.error("--promote goes with --versioned (a plain build already is the served archive)")
    if args.version is not None:
        try:
            check_version(args.version)
        except ArchiveError as err:
            parser.error(str(err))  # exit 2: the command line is wrong
    try:
        version = args.version or artifact_version(args.artifacts)
        name = versioned_name(args.model_name, version) if args.versioned else None
        mar = build_archive(args.artifacts, args.export_path, version, args.model_name,
                            args.config_file, file_name=name)
    except ArchiveError as err:
        print(f"error: {err}", file=sys.stderr)
        return cli.FAILED
    written = [mar]
    if args.promote:
        served = mar.with_name(f"{args.model_name}.mar")
        shutil.copyfile(mar, served)
        written.append(served)
    for path in written:
        print(json.dumps({"archive": str(path), "bytes": path.stat().st_size, "version": version}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
