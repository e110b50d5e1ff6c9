"""Static checks of the Docker image and KServe files (no Docker engine or cluster here) and
the KServe storage layout; tests/integration/test_kserve.py serves that layout."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from deploy import kserve_storage
from deploy.kserve_storage import StorageError, build_storage, read_properties
from serving import __main__ as serving_cli
from serving.archive import MODEL_NAME
from serving.properties import REPO_ROOT, open_management

DEPLOY = REPO_ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
MAR_NAME = f"{MODEL_NAME}.mar"
SERVING_LOCK = REPO_ROOT / "requirements" / "serving.txt"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with backslash continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def makefile_target_recipe(target: str) -> str:
    """The rule line and recipe of a Makefile target."""
    text = (REPO_ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:.*(?:\n\t.*)*", text, re.MULTILINE)
    assert match, f"the Makefile has no {target} target"
    return match.group(0)


# --- Docker image --------------------------------------------------------------------------

def test_the_image_runs_the_python_the_serving_lock_was_made_for():
    instructions = dockerfile_instructions()
    base = dict(arg.split("=", 1) for kind, arg in instructions if kind == "ARG" and "=" in arg)["BASE_IMAGE"]
    locked = re.search(r"pip-compile with Python (\d+\.\d+)", SERVING_LOCK.read_text()).group(1)
    assert re.fullmatch(rf"python:{re.escape(locked)}-slim-\w+", base), base
    assert ("FROM", "${BASE_IMAGE}") in instructions
    assert any("openjdk-17-jre-headless" in args for kind, args in instructions if kind == "RUN")  # Java 17


def test_dockerfile_copies_files_that_exist_or_make_archive_builds():
    copies = [args.split() for kind, args in dockerfile_instructions() if kind == "COPY"]
    assert copies
    sources = [src for *srcs, _dest in copies for src in srcs if not src.startswith("--")]
    built = [s for s in sources if not (REPO_ROOT / s).exists()]
    # The only source not in the repository is the archive, which `make archive` writes.
    assert built in ([], [f"model_store/{MAR_NAME}"])
    assert f"model_store/{MAR_NAME}" in sources
    # `make docker-image` first builds $(MAR), model_store/news_cnn.mar, with the archiver.
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^MODEL_STORE \?= model_store$", makefile, re.MULTILINE)
    assert re.search(rf"^MAR := \$\(MODEL_STORE\)/{re.escape(MAR_NAME)}$", makefile, re.MULTILINE)
    assert "$(MAR)" in makefile_target_recipe("docker-image").splitlines()[0]
    assert "$(ARCHIVE_CMD)" in makefile_target_recipe("$(MAR)")
    assert re.search(r"^ARCHIVE_CMD = .*-m serving\.archive .*--export-path \"\$\$NEWS_MODEL_STORE\"",
                     makefile, re.MULTILINE)


def test_dockerfile_keeps_token_authorization_and_drains_on_sigterm():
    entrypoint = dict(dockerfile_instructions())["ENTRYPOINT"]
    command = json.loads(entrypoint)
    # Our supervisor: TorchServe plus the health server, a drain on SIGTERM.
    assert command[:4] == ["python", "-m", "serving", "run"]
    assert serving_cli.build_parser().parse_args(command[3:]).notice > 0  # options `run` takes
    # The official image's own entry point passes --disable-token-auth: ours must not.
    assert "--disable-token-auth" not in command
    config = command[command.index("--config") + 1]
    copied = {dest: src for kind, args in dockerfile_instructions() if kind == "COPY"
              for src, dest in [args.split()[-2:]]}
    assert copied[config] == "deploy/config.properties"
    assert read_properties(DEPLOY / "config.properties")["disable_token_authorization"] == "false"
    assert copied["/home/model-server/app/serving"] == "serving"


def test_container_config_listens_everywhere_and_keeps_secure_defaults():
    props = read_properties(DEPLOY / "config.properties")
    for key in ("inference_address", "management_address", "metrics_address"):
        assert props[key].startswith("http://0.0.0.0:")
    assert props["grpc_inference_address"] == props["grpc_management_address"] == "127.0.0.1"
    assert props["disable_token_authorization"] == "false"
    assert props["enable_model_api"] == "false"
    assert props["load_models"].split("=")[-1] == MAR_NAME
    # The limits agree with the project's own config.properties.
    project = read_properties(REPO_ROOT / "config.properties")
    assert props["max_request_size"] == project["max_request_size"]
    # The model store and the metrics config are where the Dockerfile puts them.
    dests = {args.split()[-1] for kind, args in dockerfile_instructions() if kind == "COPY"}
    assert f"{props['model_store']}/{MAR_NAME}" in dests
    assert props["metrics_config"] in dests


def test_the_image_installs_a_locked_pip_then_only_the_hash_locked_serving_set_from_one_index():
    runs = [args for kind, args in dockerfile_instructions() if kind == "RUN"]
    run = next(r for r in runs if "pip install" in r)
    commands = [c.strip() for c in run.split("&&")]
    installs = [c for c in commands if "pip install" in c]
    assert [re.findall(r"-r (\S+)", c) for c in installs] == [
        ["/home/model-server/pip.txt"], ["/home/model-server/serving.txt"]]  # pip first
    for install in installs:
        for option in ("--require-hashes", "--no-deps", "--index-url https://pypi.org/simple"):
            assert option in install, option
        assert "--extra-index-url" not in install and install.count("--index-url") == 1
    # torch's CPU build comes from a page that lists torch files only, never a second index.
    assert re.findall(r"--find-links (\S+)", installs[1]) == ["https://download.pytorch.org/whl/cpu/torch/"]
    for lock in ("pip.txt", "serving.txt"):  # the build fails on a lost pin
        assert any(c.endswith(f"check_pins.py /home/model-server/{lock}") for c in commands), lock
    copies = [args.split() for kind, args in dockerfile_instructions() if kind == "COPY"]
    assert ["requirements/pip.txt", "requirements/serving.txt", "deploy/check_pins.py",
            "/home/model-server/"] in copies
    from deploy.check_pins import pins
    locked_pip = pins(REPO_ROOT / "requirements" / "pip.txt")
    assert locked_pip == {"pip": pins(REPO_ROOT / "requirements" / "dev.txt")["pip"]}


def test_check_pins_passes_here_and_names_a_pin_that_lost(tmp_path, capsys):
    from deploy import check_pins
    assert check_pins.main([str(REPO_ROOT / "requirements" / "dev.txt")]) == 0  # what the tests run on
    wrong = tmp_path / "serving.txt"
    wrong.write_text("requests==0.0.1 \\\n    --hash=sha256:00  # not what is installed\n"
                     "no-such-package-x==1.0\n")
    assert check_pins.main([str(wrong)]) == 1
    err = capsys.readouterr().err
    from importlib.metadata import version
    assert f"requests: {version('requests')} installed, 0.0.1 pinned" in err
    assert "no-such-package-x: not installed" in err


# --- Every shipped TorchServe config --------------------------------------------------------
DEPLOY_CONFIGS = sorted(DEPLOY.rglob("config.properties"))


def allowed_urls(props: dict[str, str]) -> re.Pattern:
    """allowed_urls as TorchServe reads it (a properties value: "\\\\" is one backslash), as
    the pattern it matches whole strings with (case-insensitive)."""
    (pattern,) = props["allowed_urls"].replace("\\\\", "\\").split(",")
    return re.compile(pattern, re.IGNORECASE)


@pytest.mark.parametrize("config", DEPLOY_CONFIGS, ids=[str(p.relative_to(DEPLOY)) for p in DEPLOY_CONFIGS])
def test_allowed_urls_admits_only_the_configs_own_model_store(config):
    props = read_properties(config)
    store = props["model_store"]
    pattern = allowed_urls(props)
    assert pattern.fullmatch(f"file://{store}/{MAR_NAME}")
    for url in (f"file:///tmp/x{store}/{MAR_NAME}", f"file:///tmp/model-store/{MAR_NAME}",
                f"file://{store}/sub/{MAR_NAME}", f"file://{store}/news_cnn.war", f"file://{store}/",
                f"http://attacker.example{store}/{MAR_NAME}", f"https://127.0.0.1/{MAR_NAME}",
                f"file://{store}/{MAR_NAME}?x=/evil.mar", MAR_NAME):
        assert not pattern.fullmatch(url), url
    assert props["enable_model_api"] == "false"


@pytest.mark.parametrize("config", DEPLOY_CONFIGS, ids=[str(p.relative_to(DEPLOY)) for p in DEPLOY_CONFIGS])
def test_no_shipped_config_opens_management_without_tokens(config):
    """Wherever token authorization is off, the management APIs listen on loopback only
    (the Kubernetes Deployment does it through its environment: test_deploy_k8s.py)."""
    assert open_management(read_properties(config), environ={}) is None


def test_the_kserve_config_keeps_torchserve_on_loopback():
    props = read_properties(DEPLOY / "kserve" / "config.properties")
    assert props["disable_token_authorization"] == "true"  # KServe's wrapper sends no key
    for key in ("inference_address", "management_address"):
        assert props[key].startswith("http://127.0.0.1:"), key
    assert props["grpc_inference_address"] == props["grpc_management_address"] == "127.0.0.1"


# --- KServe --------------------------------------------------------------------------------

def test_inferenceservice_manifest():
    manifest = yaml.safe_load((DEPLOY / "kserve" / "inferenceservice.yaml").read_text())
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    model = manifest["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "pytorch"
    assert model["protocolVersion"] in ("v1", "v2")
    assert re.match(r"^(gs|s3|pvc|https?)://", model["storageUri"])
    from deploy.check_pins import pins
    assert str(model["runtimeVersion"]) == pins(SERVING_LOCK)["torchserve"]


def test_kserve_config_names_the_archive():
    props = read_properties(DEPLOY / "kserve" / "config.properties")
    assert props["model_store"] == "/mnt/models/model-store"
    assert props["enable_envvars_config"] == "true"  # for the runtime's TS_SERVICE_ENVELOPE
    assert props["inference_address"].endswith(":8085")
    assert props["metrics_config"] == "/mnt/models/config/metrics.yaml"
    snapshot = json.loads(props["model_snapshot"])
    ((name, versions),) = snapshot["models"].items()
    ((_version, settings),) = versions.items()
    assert name == MODEL_NAME and settings["marName"] == MAR_NAME
    assert settings["defaultVersion"] is True and settings["batchSize"] == 1


def fake_mar(path: Path, name: str = MODEL_NAME, version: str = "3.1") -> Path:
    """A zip with the MANIFEST.json torch-model-archiver writes (enough for the layout)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("MAR-INF/MANIFEST.json", json.dumps(
            {"model": {"modelName": name, "modelVersion": version, "handler": "handler.py"}}))
    return path


def test_storage_layout_uses_the_archive_version(tmp_path):
    out = tmp_path / "storage"
    (out / "model-store").mkdir(parents=True)
    (out / "model-store" / "stale.mar").write_bytes(b"old")  # KServe refuses two archives
    config = build_storage(fake_mar(tmp_path / "built.mar"), out)
    assert config == out / "config" / "config.properties"
    assert sorted(p.name for p in (out / "model-store").iterdir()) == [MAR_NAME]
    assert (out / "config" / "metrics.yaml").is_file()
    snapshot = json.loads(read_properties(config)["model_snapshot"])
    assert snapshot["models"] == {MODEL_NAME: {"3.1": {**json.loads(read_properties(
        kserve_storage.TEMPLATE)["model_snapshot"])["models"][MODEL_NAME]["1.0"], "marName": MAR_NAME}}}
    # Everything but the snapshot is the template, comments included.
    template = kserve_storage.TEMPLATE.read_text().splitlines()
    written = config.read_text().splitlines()
    assert [a for a, b in zip(template, written, strict=True) if a != b] == [
        line for line in template if line.startswith("model_snapshot=")]


@pytest.mark.parametrize("content, message", [(None, "make archive"),
                                              (b"not a zip", "not a torch-model-archiver")])
def test_storage_errors_name_the_fix(tmp_path, capsys, content, message):
    mar = tmp_path / "news_cnn.mar"
    if content is not None:
        mar.write_bytes(content)
    with pytest.raises(StorageError, match=message):
        build_storage(mar, tmp_path / "out")
    assert kserve_storage.main(["--mar", str(mar), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_make_kserve_storage_target():
    recipe = makefile_target_recipe("kserve-storage")
    assert "deploy.kserve_storage" in recipe and "$(MAR)" in recipe.splitlines()[0]


def test_the_image_s_supervisor_reads_the_archive_with_serving_alone(tmp_path):
    # The image copies only serving/ (no model/, no torch): what `python -m serving run` and
    # `status` import to read the archive's minWorkers must load from that alone.
    app = tmp_path / "app"
    shutil.copytree(REPO_ROOT / "serving", app / "serving",
                    ignore=shutil.ignore_patterns("__pycache__"))
    mar = tmp_path / MAR_NAME
    with zipfile.ZipFile(mar, "w") as z:
        z.writestr("MAR-INF/MANIFEST.json", json.dumps({"model": {"configFile": "model-config.yaml"}}))
        z.writestr("model-config.yaml", "minWorkers: 3\n")
    probe = ("import sys, serving.__main__; from serving.archive import read_model_config; "
             f"print(read_model_config({str(mar)!r})['minWorkers'], 'torch' in sys.modules, "
             "'model' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe],
                            cwd=app, env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["3", "False", "False"]
