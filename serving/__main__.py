"""Run TorchServe for the Makefile: python -m serving {start,stop,drain,status,ready,live,keys,...}.

Every command works on the TorchServe started from --workdir (default: the current
directory) with --config (default: config.properties there).

  ready    exit 0 when news_cnn has a READY worker that answers the canary headline right;
           else 1 and one line saying why (the exec probe; GET <health_address>/ready is the
           same check over HTTP, without a key)
  live     exit 0 when the frontend answers /ping
  status   exit 1 when fewer than minWorkers workers are READY
  keys     the key file's path, the inference and management keys (--api adds the API key;
           --show KIND prints one key bare; --renew KIND renews it: an operator's act)
  stop     readiness false, wait for in-flight requests (at most 30 s), then stop
  drain    readiness false and wait for in-flight requests, but leave TorchServe running
           (a Kubernetes preStop hook; SIGTERM then stops it)
  probe    run the health server in the foreground (serving/server.py starts it)
  run      start, then wait; SIGTERM/SIGINT stop gracefully (the container's entry point):
           drain unless a drain already began (preStop), then stop, all within
           SHUTDOWN_BOUND_S (serving/server.py) of the drain's start
"""
from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime
from urllib.parse import urlsplit

from serving import keys as keyfile
from serving.archive import read_model_config
from serving.health import HealthChecker, ProbeServer, model_archive
from serving.scaling import count_ready
from serving.server import DRAIN_BOUND_S, MODEL_NAME, ServerError, TorchServe

EXAMPLE_TEXT = "The final tennis tournament starts next week."
COMMANDS = ["start", "stop", "drain", "status", "ready", "live", "keys", "examples", "probe", "run"]


def examples(server: TorchServe, model: str = MODEL_NAME) -> str:
    """Example calls that read the current inference key from the key file when they run."""
    keys = server.keys()
    key = '"$(.venv/bin/python -m serving keys --show inference)"'
    auth = f'-H "Authorization: Bearer {key[1:-1]}"'
    url = server.endpoints.inference
    body = shlex.quote(json.dumps({"text": EXAMPLE_TEXT}))
    several = shlex.quote(json.dumps({"texts": [EXAMPLE_TEXT, "Oil prices rise as stocks fall"]}))
    return "\n".join([
        f"Keys in {server.key_file} (inference key expires {_expiry(keys.inference_expires)}; "
        f"`make keys` shows them, `make keys RENEW=inference` renews):",
        f"  curl -s {auth} -H 'Content-Type: application/json' -d {body} {url}/predictions/{model}",
        f"  curl -s {auth} -H 'Content-Type: text/plain' --data-binary {shlex.quote(EXAMPLE_TEXT)} "
        f"{url}/predictions/{model}",
        f"  curl -s {auth} -H 'Content-Type: application/json' -d {several} {url}/predictions/{model}",
        f"  curl -s {auth} -H 'Content-Type: application/json' -d {body} {url}/explanations/{model}",
        f"Health (no key): curl -s {server.endpoints.health}/ready   |   {server.endpoints.health}/live"
        f"   |   make ready",
        f"  make predict TEXT={shlex.quote(EXAMPLE_TEXT)}   |   make explain TEXT=...   |   make stop",
    ])


def _expiry(when: datetime | None) -> str:
    """When a key expires, to the second, or "never"."""
    return when.isoformat(timespec="seconds") if when else "never"


def _configured_min_workers(server: TorchServe, model: str, described: int) -> int:
    """minWorkers as deployed: the archive's model-config.yaml (a scaling call changes the
    live value, so `make scale WORKERS=0` must not make 0 workers look healthy), else the
    live value; at least 1."""
    try:
        archived = read_model_config(model_archive(server.config, model)).get("minWorkers")
    except (OSError, ValueError, KeyError):
        archived = None
    return max(1, int(archived) if archived is not None else described)


def _status(server: TorchServe, model: str) -> tuple[bool, str]:
    """(enough READY workers, one line: the served version, READY workers, the addresses)."""
    description = server.describe(model)
    ready = count_ready(description)
    wanted = _configured_min_workers(server, model, int(description.get("minWorkers", 1)))
    line = (f"TorchServe is serving {model} version {description.get('modelVersion')} with "
            f"{ready} READY worker(s) (minWorkers {wanted}) at {server.endpoints.inference} "
            f"(management {server.endpoints.management}, metrics {server.endpoints.metrics}/metrics, "
            f"health {server.endpoints.health}/ready)")
    if ready < wanted:
        return False, f"{line}: fewer READY workers than minWorkers"
    return True, line


def _settled_status(server: TorchServe, model: str, timeout: float) -> str:
    """The status line once minWorkers workers are READY (start returns at the first), or
    after `timeout` seconds, when the line says how many are missing."""
    deadline = time.monotonic() + timeout
    ok, line = _status(server, model)
    while not ok and time.monotonic() < deadline:
        time.sleep(0.5)
        ok, line = _status(server, model)
    return line


def _keys(server: TorchServe, args: argparse.Namespace) -> int:
    """`keys`: show the key file and keys, one key bare, or renew one (operator command)."""
    if args.renew:
        keys = keyfile.renew(args.renew, server.key_file, server.endpoints.management)
        print(f"Renewed the {args.renew} key (expires "
              f"{_expiry(getattr(keys, args.renew + '_expires'))}); callers holding the old one get "
              f"400 until they re-read {server.key_file}.")
        return 0
    keys = server.keys()
    if args.show:
        print(keys.key(args.show))
        return 0
    print(f"Key file: {server.key_file} (written by TorchServe, mode 0600)")
    for kind, key, when in (("inference", keys.inference, keys.inference_expires),
                            ("management", keys.management, keys.management_expires)):
        print(f"  {kind:<10} {key}  expires {_expiry(when)}")
    if args.api:
        print(f"  {'API':<10} {keys.api}  never expires; renews the others (make keys RENEW=...)")
    for kind in keys.expiring():
        print(f"warning: the {kind} key expires soon: `make keys RENEW={kind}` renews it", file=sys.stderr)
    return 0


def _probe(server: TorchServe, model: str) -> int:
    """Serve GET /ready and /live at the config's health_address until terminated."""
    address = urlsplit(server.endpoints.health)
    checker = HealthChecker.for_server(server.workdir, server.config, model)
    httpd = ProbeServer((address.hostname or "127.0.0.1", address.port or 8083), checker)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
    print(f"health server at {server.endpoints.health}/ready and /live; canary {checker.canary}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
    return 0


def _run(server: TorchServe, args: argparse.Namespace) -> int:
    """Start TorchServe and stay until SIGTERM/SIGINT (then drain, unless a preStop hook already
    did, and stop, within SHUTDOWN_BOUND_S of the drain's start) or until it dies."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server.start(args.model, args.timeout)
    print(_settled_status(server, args.model, args.timeout), flush=True)
    while not stopping.wait(2.0):
        if server.pid() is None:
            print("error: TorchServe exited on its own; see logs/", file=sys.stderr)
            server.stop_probe()
            return 1
    if server.drain_started() is None:
        print("SIGTERM: readiness false, waiting for in-flight requests ...", flush=True)
    else:
        print("SIGTERM after a drain (preStop hook): stopping without a second drain ...", flush=True)
    report = server.graceful_stop(args.notice)
    if report["drained_before"]:
        print(f"TorchServe stopped; the drain had begun {report['waited_s']} s before.", flush=True)
    else:
        print(f"TorchServe stopped after draining {report['waited_s']} s"
              f"{'' if report['quiet'] else ' (bound reached with requests still arriving)'}.", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.splitlines()[0],
                                     epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--workdir", default=".", help="directory TorchServe runs from (key file, logs)")
    parser.add_argument("--config", default="config.properties",
                        help="TorchServe config, relative to --workdir")
    parser.add_argument("--model", default=MODEL_NAME, help="model to wait for and describe")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for a ready model")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--api", action="store_true", help="keys: also show the never-expiring API key")
    keys.add_argument("--show", choices=["inference", "management", "api"],
                      help="keys: print only this key, bare (for $(...) in shell commands)")
    keys.add_argument("--renew", choices=list(keyfile.RENEWABLE),
                      help="keys: renew this key; every caller holding the old one must re-read the file")
    parser.add_argument("--no-drain", action="store_true", help="stop: stop at once, without draining")
    parser.add_argument("--notice", type=float, default=2.0,
                        help=f"stop/run: seconds for balancers to see readiness false before the "
                             f"in-flight wait (whole drain bounded by {DRAIN_BOUND_S:.0f} s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The entry point of `python -m serving` (and of `news-cnn status|ready|keys`)."""
    args = build_parser().parse_args(argv)
    server = TorchServe(args.workdir, args.config)
    try:
        if args.command == "start":
            if server.pid() is not None and server.ping():
                print("TorchServe is already running (`make stop` stops it).")
            else:
                print(f"Starting TorchServe from {server.workdir} (logs in {server.workdir / 'logs'}) ...")
                server.start(args.model, args.timeout)
            print(_settled_status(server, args.model, args.timeout))
            print(examples(server, args.model))
        elif args.command == "stop":
            if server.pid() is not None and not args.no_drain:
                print("Readiness false; waiting for in-flight requests ...", flush=True)
                started = time.monotonic()
                report = server.drain(args.notice)
                print(f"  drained in {time.monotonic() - started:.1f} s"
                      f"{'' if report['quiet'] else ' (bound reached with requests still arriving)'}")
            print("TorchServe stopped." if server.stop() else "TorchServe was not running.")
        elif args.command == "drain":
            if server.pid() is None:
                print("TorchServe is not running: nothing to drain.")
                return 0
            report = server.drain(args.notice)
            print(f"Readiness false; drained in {report['waited_s']} s"
                  f"{'' if report['quiet'] else ' (bound reached with requests still arriving)'}.")
        elif args.command in ("status", "ready", "live"):
            if server.pid() is None:
                print("TorchServe is not running (`make serve` starts it).", file=sys.stderr)
                return 1
            if args.command == "status":
                ok, line = _status(server, args.model)
            else:
                # One check, no history: a canary timeout is not tolerated here.
                checker = replace(HealthChecker.for_server(server.workdir, server.config, args.model),
                                  tolerated_timeouts=0)
                verdict = checker.ready() if args.command == "ready" else checker.live()
                ok = verdict.ok
                line = f"{args.command if ok else 'not ' + args.command}: {verdict.reason}"
            print(line, file=sys.stdout if ok else sys.stderr)
            return 0 if ok else 1
        elif args.command == "keys":
            return _keys(server, args)
        elif args.command == "examples":
            print(examples(server, args.model))
        elif args.command == "probe":
            return _probe(server, args.model)
        elif args.command == "run":
            return _run(server, args)
    except (ServerError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # requests' connection errors are OSErrors too
        print(f"error: TorchServe did not answer ({err}); is it running? `make serve` starts it",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
