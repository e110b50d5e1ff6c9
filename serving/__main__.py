"""Run TorchServe for the Makefile and the container: python -m serving COMMAND [options].

Every command works on the TorchServe started from --workdir (default: the current
directory) with --config (default: config.properties there); `python -m serving COMMAND
--help` lists a command's options. Exit status: 0 done or healthy, 1 not (one line says
why), 2 a usage error.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from serving import cli
from serving import keys as keyfile
from serving.health import DEFAULT_CANARY_TEXT, DRAIN_BOUND_S, SHUTDOWN_BOUND_S, HealthChecker
from serving.properties import MODEL_NAME
from serving.status import settled_status, status_line
from serving.supervisor import supervise

if TYPE_CHECKING:
    from serving.server import TorchServe

# The readiness canary's headline doubles as the example the start-up message shows.
EXAMPLE_TEXT = DEFAULT_CANARY_TEXT


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


def _start(server: TorchServe, args: argparse.Namespace) -> int:
    """`start`: start TorchServe in the background unless it runs, then its status and examples."""
    if server.pid() is not None and server.ping():
        print("TorchServe is already running (`make stop` stops it).")
    else:
        print(f"Starting TorchServe from {server.workdir} (logs in {server.workdir / 'logs'}) ...")
        server.start(args.model, args.timeout)
    print(settled_status(server, args.model, args.timeout))
    print(examples(server, args.model))
    return 0


def _stop(server: TorchServe, args: argparse.Namespace) -> int:
    """`stop`: readiness false, wait for in-flight requests (unless --no-drain), then stop."""
    if server.pid() is not None and not args.no_drain:
        print("Readiness false; waiting for in-flight requests ...", flush=True)
        print(f"  drained in {server.drained(server.drain(args.notice))}")
    print("TorchServe stopped." if server.stop() else "TorchServe was not running.")
    return 0


def _drain(server: TorchServe, args: argparse.Namespace) -> int:
    """`drain`: readiness false and wait for in-flight requests, leaving TorchServe running."""
    if server.pid() is None:
        print("TorchServe is not running: nothing to drain.")
        return 0
    print(f"Readiness false; drained in {server.drained(server.drain(args.notice))}.")
    return 0


def _check(server: TorchServe, args: argparse.Namespace) -> int:
    """`status`, `ready`, `live`: one line, on stdout when healthy (exit 0), else on stderr (1)."""
    if server.pid() is None:
        print("TorchServe is not running (`make serve` starts it).", file=sys.stderr)
        return 1
    if args.command == "status":
        ok, line = status_line(server, args.model)
    else:
        # One check, no history: a canary timeout is not tolerated here.
        checker = replace(HealthChecker.for_server(server.workdir, server.config, args.model),
                          tolerated_timeouts=0)
        verdict = checker.ready() if args.command == "ready" else checker.live()
        ok = verdict.ok
        line = f"{args.command if ok else 'not ' + args.command}: {verdict.reason}"
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


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


def _examples(server: TorchServe, args: argparse.Namespace) -> int:
    """`examples`: the example calls `start` prints."""
    print(examples(server, args.model))
    return 0


def _probe(server: TorchServe, args: argparse.Namespace) -> int:
    """`probe`: serve GET /ready and /live at the config's health_address until terminated."""
    # Imported here: asyncio is a fifth of the start-up time of every `news-cnn predict`.
    from serving.probe import serve_until_terminated

    serve_until_terminated(server, args.model)
    return 0


def _run(server: TorchServe, args: argparse.Namespace) -> int:
    """`run`: the container's entry point (serving/supervisor.py)."""
    return supervise(server, args.model, args.timeout, args.notice)


# Options several commands share, each declared once; a command lists the ones it takes.
_WHERE = cli.shared_options()
_WHERE.add_argument("--workdir", default=".", help="directory TorchServe runs from (key file, logs)")
_WHERE.add_argument("--config", default="config.properties", help="TorchServe config, relative to --workdir")
_MODEL = cli.shared_options()
_MODEL.add_argument("--model", default=MODEL_NAME, help="model to wait for and describe")
_TIMEOUT = cli.shared_options()
_TIMEOUT.add_argument("--timeout", type=float, default=300, help="seconds to wait for a ready model")
_NOTICE = cli.shared_options()
_NOTICE.add_argument("--notice", type=float, default=2.0,
                     help=f"seconds for balancers to see readiness false before the in-flight wait "
                          f"(whole drain bounded by {DRAIN_BOUND_S:.0f} s)")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add the server's commands to `commands` (this module's, and `news-cnn`'s)."""
    def command(name: str, run: Callable[[TorchServe, argparse.Namespace], int], help: str,
                *options: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub = cli.add_command(commands, name, run, help, (_WHERE, *options))
        sub.set_defaults(server_command=True)  # `news-cnn` tells them from the client's by it
        return sub

    command("start", _start, "start TorchServe in the background and wait for the model", _MODEL, _TIMEOUT)
    command("stop", _stop, f"readiness false, wait for in-flight requests (at most {DRAIN_BOUND_S:.0f} s), "
            "then stop", _NOTICE).add_argument("--no-drain", action="store_true",
                                               help="stop at once, without draining")
    command("drain", _drain, "readiness false and wait for in-flight requests, leaving TorchServe running "
            "(a Kubernetes preStop hook; SIGTERM then stops it)", _NOTICE)
    command("status", _check, "the served version and READY workers; exit 1 when fewer than minWorkers "
            "are READY", _MODEL)
    command("ready", _check, "exit 0 when a READY worker answers the canary headline right, else 1 and why "
            "(GET <health_address>/ready: the same check, without a key)", _MODEL)
    command("live", _check, "exit 0 when the TorchServe frontend answers /ping", _MODEL)
    shown = command("keys", _keys, "where TorchServe's key file is, and the inference and management "
                    "keys").add_mutually_exclusive_group()
    shown.add_argument("--api", action="store_true", help="also show the never-expiring API key")
    shown.add_argument("--show", choices=["inference", "management", "api"],
                       help="print only this key, bare (for $(...) in shell commands)")
    shown.add_argument("--renew", choices=list(keyfile.RENEWABLE),
                       help="renew this key (an operator's act): every caller holding the old one "
                            "must re-read the file")
    command("examples", _examples, "example calls with the current addresses", _MODEL)
    command("probe", _probe, "run the health server in the foreground (serving/server.py starts it)", _MODEL)
    command("run", _run, "start, then wait; SIGTERM/SIGINT stop gracefully (the container's entry point): "
            f"drain unless a drain already began (preStop), then stop, all within {SHUTDOWN_BOUND_S:.0f} s "
            "of the drain's start", _MODEL, _TIMEOUT, _NOTICE)


def build_parser(prog: str = "python -m serving") -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = cli.command_line(prog, __doc__)
    add_commands(cli.subcommands(parser))
    return parser


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed server command (this module's or `news-cnn`'s); one line and
    exit 1 when TorchServe or its files are not there."""
    # Imported here: psutil and process control are a sixth of the start-up of every
    # `news-cnn predict`, which parses with these commands but never runs one.
    from serving.server import ServerError, TorchServe

    try:
        return args.run(TorchServe(args.workdir, args.config), args)
    except (ServerError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return cli.FAILED
    except BrokenPipeError:  # `... keys | head`: our reader went away, the server is fine
        return cli.stdout_closed()
    except OSError as err:  # connection errors are OSErrors too
        print(f"error: TorchServe did not answer ({err}); is it running? `make serve` starts it",
              file=sys.stderr)
        return cli.FAILED


def main(argv: list[str] | None = None) -> int:
    """`python -m serving COMMAND [options]`; returns the exit status."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
