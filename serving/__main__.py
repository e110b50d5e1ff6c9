"""Run TorchServe for the Makefile: python -m serving {start,stop,status,keys,examples}.

Every command works on the TorchServe started from --workdir (default: the current
directory) with --config (default: config.properties there).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime

from serving.keys import RENEW_MARGIN
from serving.server import MODEL_NAME, ServerError, TorchServe, count_ready

EXAMPLE_TEXT = "The final tennis tournament starts next week."


def examples(server: TorchServe, model: str = MODEL_NAME) -> str:
    """Example calls with the current inference key."""
    keys = server.keys()
    auth = shlex.quote(f"Authorization: Bearer {keys.inference}")
    url = server.endpoints.inference
    body = shlex.quote(json.dumps({"text": EXAMPLE_TEXT}))
    several = shlex.quote(json.dumps({"texts": [EXAMPLE_TEXT, "Oil prices rise as stocks fall"]}))
    return "\n".join([
        f"Inference key (expires {_expiry(keys.inference_expires)}; `make keys` renews it "
        f"{int(RENEW_MARGIN.total_seconds() // 60)} min before and prints it) from {server.key_file}:",
        f"  curl -s -H {auth} -H 'Content-Type: application/json' -d {body} {url}/predictions/{model}",
        f"  curl -s -H {auth} -H 'Content-Type: text/plain' --data-binary {shlex.quote(EXAMPLE_TEXT)} "
        f"{url}/predictions/{model}",
        f"  curl -s -H {auth} -H 'Content-Type: application/json' -d {several} {url}/predictions/{model}",
        f"  curl -s -H {auth} -H 'Content-Type: application/json' -d {body} {url}/explanations/{model}",
        f"  make predict TEXT={shlex.quote(EXAMPLE_TEXT)}   |   make explain TEXT=...   |   make stop",
    ])


def _expiry(when: datetime | None) -> str:
    """When a key expires, to the second, or "never"."""
    return when.isoformat(timespec="seconds") if when else "never"


def _status(server: TorchServe, model: str) -> str:
    """One line: the served version, READY workers and the three API addresses."""
    description = server.describe(model)
    return (f"TorchServe is serving {model} version {description.get('modelVersion')} with "
            f"{count_ready(description)} "
            f"READY worker(s) at {server.endpoints.inference} (management "
            f"{server.endpoints.management}, metrics {server.endpoints.metrics}/metrics)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "keys", "examples"])
    parser.add_argument("--workdir", default=".", help="directory TorchServe runs from (key file, logs)")
    parser.add_argument("--config", default="config.properties",
                        help="TorchServe config, relative to --workdir")
    parser.add_argument("--model", default=MODEL_NAME, help="model to wait for and describe")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for a ready model")
    args = parser.parse_args(argv)
    server = TorchServe(args.workdir, args.config)
    try:
        if args.command == "start":
            if server.pid() is not None and server.ping():
                print("TorchServe is already running (`make stop` stops it).")
            else:
                print(f"Starting TorchServe from {server.workdir} (logs in {server.workdir / 'logs'}) ...")
                server.start(args.model, args.timeout)
            print(_status(server, args.model))
            print(examples(server, args.model))
        elif args.command == "stop":
            print("TorchServe stopped." if server.stop() else "TorchServe was not running.")
        elif args.command == "status":
            if server.pid() is None:
                print("TorchServe is not running (`make serve` starts it).")
                return 1
            print(_status(server, args.model))
        elif args.command == "keys":
            keys = server.keys()
            print(f"Key file: {server.key_file} (written by TorchServe, mode 0600)")
            for kind, key, when in (("inference", keys.inference, keys.inference_expires),
                                    ("management", keys.management, keys.management_expires)):
                print(f"  {kind:<10} {key}  expires {_expiry(when)}")
            print(f"  {'API':<10} {keys.api}  never expires; renews the others (POST /token?type=...)")
        elif args.command == "examples":
            print(examples(server, args.model))
    except (ServerError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # requests' connection errors are OSErrors too
        print(f"error: TorchServe did not answer ({err}); is it running? `make serve` starts it",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
