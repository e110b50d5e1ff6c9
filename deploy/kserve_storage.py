"""Lay out a KServe model storage directory from a built TorchServe archive.

KServe's TorchServe runtime mounts its storageUri at /mnt/models and expects:

    config/config.properties     TorchServe's config, with the model in `model_snapshot`
    config/metrics.yaml          the metrics the handler reports (serving/metrics.yaml)
    model-store/<name>.mar       exactly one archive (KServe's loader refuses several)

TorchServe restores `model_snapshot` by model version, so the snapshot must name the
archive's real version: this script reads it from the archive's MANIFEST.json and writes
the config with it. Run as `make kserve-storage` (after `make archive`), or:

    python -m deploy.kserve_storage --mar model_store/news_cnn.mar --out model_store/kserve
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import zipfile
from pathlib import Path

from serving import cli
from serving.properties import METRICS_CONFIG as METRICS
from serving.properties import read_properties  # noqa: F401 - tests read the configs with it

TEMPLATE = Path(__file__).parent / "kserve" / "config.properties"
SNAPSHOT_KEY = "model_snapshot"


class StorageError(Exception):
    """A problem with the inputs, with a message that names the fix."""


def read_manifest(mar: Path) -> dict:
    """The MANIFEST.json that torch-model-archiver writes into every .mar."""
    if not mar.is_file():
        raise StorageError(f"{mar} does not exist: run `make archive` first")
    try:
        with zipfile.ZipFile(mar) as archive:
            return json.loads(archive.read("MAR-INF/MANIFEST.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise StorageError(f"{mar} is not a torch-model-archiver archive ({error}): "
                           "rebuild it with `make archive`") from error


def snapshot_for(snapshot: dict, model_name: str, version: str, mar_name: str) -> dict:
    """The template's snapshot, re-keyed to the archive's model name and version."""
    models = snapshot["models"]
    if len(models) != 1:
        raise StorageError(f"the template's model_snapshot must hold one model, it holds {sorted(models)}")
    (versions,) = models.values()
    if len(versions) != 1:
        raise StorageError("the template's model_snapshot must hold one version, "
                           f"it holds {sorted(versions)}")
    (settings,) = versions.values()
    settings = {**settings, "marName": mar_name, "defaultVersion": True}
    return {**snapshot, "modelCount": 1, "models": {model_name: {version: settings}}}


def render_config(template: Path, model_name: str, version: str, mar_name: str) -> str:
    """The template's text with only its model_snapshot line rewritten."""
    lines = []
    for line in template.read_text().splitlines():
        if line.startswith(SNAPSHOT_KEY + "="):
            snapshot = json.loads(line.split("=", 1)[1])
            line = SNAPSHOT_KEY + "=" + json.dumps(snapshot_for(snapshot, model_name, version, mar_name),
                                                   separators=(",", ":"))
        lines.append(line)
    return "\n".join(lines) + "\n"


def build_storage(mar: Path, out: Path, template: Path = TEMPLATE) -> Path:
    """Write <out>/config/{config.properties,metrics.yaml} and <out>/model-store/<name>.mar;
    return the config path."""
    manifest = read_manifest(mar)["model"]
    model_name, version = manifest["modelName"], manifest["modelVersion"]
    store = out / "model-store"
    # Start from an empty store: KServe refuses to load when it finds more than one .mar.
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    shutil.copy2(mar, store / f"{model_name}.mar")
    config = out / "config" / "config.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(render_config(template, model_name, version, f"{model_name}.mar"))
    shutil.copy2(METRICS, config.parent / METRICS.name)
    return config


def build_parser() -> argparse.ArgumentParser:
    """`python -m deploy.kserve_storage`'s options."""
    parser = cli.command_line("python -m deploy.kserve_storage", __doc__.split("\n\n")[0])
    parser.add_argument("--mar", type=Path, default=Path("model_store/news_cnn.mar"),
                        help="archive built by `make archive`")
    parser.add_argument("--out", type=Path, default=Path("model_store/kserve"),
                        help="storage directory to write")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="TorchServe config for KServe")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Lay out the storage; one line and exit 2 when the archive or the directory will not do."""
    args = build_parser().parse_args(argv)
    try:
        config = build_storage(args.mar, args.out, args.template)
    except StorageError as error:
        print(f"error: {error}", file=sys.stderr)
        return cli.USAGE
    print(f"KServe storage ready in {args.out}/ ({config.relative_to(args.out)}, model-store/):")
    print(f"  upload it, e.g. gsutil cp -r {args.out}/* gs://YOUR_BUCKET/news_cnn/, then point "
          "storageUri in deploy/kserve/inferenceservice.yaml at it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
