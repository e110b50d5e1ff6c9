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
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from serving import keys as keyfile
from serving.health import DEFAULT_CANARY_TEXT, HealthChecker
from serving.probe import serve_until_terminated
from serving.server import DRAIN_BOUND_S, MODEL_NAME, ServerError, TorchServe
from serving.status import settled_status, status_line
from serving.supervisor import supervise

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
        started = time.monotonic()
        report = server.drain(args.notice)
        print(f"  drained in {time.monotonic() - started:.1f} s"
              f"{'' if report['quiet'] else ' (bound reached with requests still arriving)'}")
    print("TorchServe stopped." if server.stop() else "TorchServe was not running.")
    return 0


def _drain(server: TorchServe, args: argparse.Namespace) -> int:
    """`drain`: readiness false and wait for in-flight requests, leaving TorchServe running."""
    if server.pid() is None:
        print("TorchServe is not running: nothing to drain.")
        return 0
    report = server.drain(args.notice)
    print(f"Readiness false; drained in {report['waited_s']} s"
          f"{'' if report['quiet'] else ' (bound reached with requests still arriving)'}.")
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
    serve_until_terminated(server, args.model)
    return 0


def _run(server: TorchServe, args: argparse.Namespace) -> int:
    """`run`: the container's entry point (serving/supervisor.py)."""
    return supervise(server, args.model, args.timeout, args.notice)


# Options several commands share, each declared once; a command lists the ones it takes.
_WHERE = argparse.ArgumentParser(add_help=False)
_WHERE.add_argument("--workdir", default=".", help="directory TorchServe runs from (key file, logs)")
_WHERE.add_argument("--config", default="config.properties", help="TorchServe config, relative to --workdir")
_MODEL = argparse.ArgumentParser(add_help=False)
_MODEL.add_argument("--model", default=MODEL_NAME, help="model to wait for and describe")
_TIMEOUT = argparse.ArgumentParser(add_help=False)
_TIMEOUT.add_argument("--timeout", type=float, default=300, help="seconds to wait for a ready model")
_NOTICE = argparse.ArgumentParser(add_help=False)
_NOTICE.add_argument("--notice", type=float, default=2.0,
                     help=f"seconds for balancers to see readiness false before the in-flight wait "
                          f"(whole drain bounded by {DRAIN_BOUND_S:.0f} s)")


def _stop_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-drain", action="store_true", help="stop at once, without draining")


def _keys_options(parser: argparse.ArgumentParser) -> None:
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--api", action="store_true", help="also show the never-expiring API key")
    shown.add_argument("--show", choices=["inference", "management", "api"],
                       help="print only this key, bare (for $(...) in shell commands)")
    shown.add_argument("--renew", choices=list(keyfile.RENEWABLE),
                       help="renew this key (an operator's act): every caller holding the old one "
                            "must re-read the file")


@dataclass(frozen=True)
class Command:
    """A subcommand: what it does, its one-line help, the shared options it takes (besides
    --workdir and --config) and a function adding its own."""

    func: Callable[[TorchServe, argparse.Namespace], int]
    help: str
    options: tuple[argparse.ArgumentParser, ...] = ()
    own_options: Callable[[argparse.ArgumentParser], None] | None = None


COMMANDS = {
    "start": Command(_start, "start TorchServe in the background and wait for the model",
                     (_MODEL, _TIMEOUT)),
    "stop": Command(_stop, f"readiness false, wait for in-flight requests (at most {DRAIN_BOUND_S:.0f} s), "
                    "then stop", (_NOTICE,), _stop_options),
    "drain": Command(_drain, "readiness false and wait for in-flight requests, leaving TorchServe "
                     "running (a Kubernetes preStop hook; SIGTERM then stops it)", (_NOTICE,)),
    "status": Command(_check, "the served version and READY workers; exit 1 when fewer than "
                      "minWorkers are READY", (_MODEL,)),
    "ready": Command(_check, "exit 0 when a READY worker answers the canary headline right, else 1 "
                     "and why (GET <health_address>/ready: the same check, without a key)", (_MODEL,)),
    "live": Command(_check, "exit 0 when the TorchServe frontend answers /ping", (_MODEL,)),
    "keys": Command(_keys, "where TorchServe's key file is, and the inference and management keys",
                    own_options=_keys_options),
    "examples": Command(_examples, "example calls with the current addresses", (_MODEL,)),
    "probe": Command(_probe, "run the health server in the foreground (serving/server.py starts it)",
                     (_MODEL,)),
    "run": Command(_run, "start, then wait; SIGTERM/SIGINT stop gracefully (the container's entry "
                   "point): drain unless a drain already began (preStop), then stop, all within "
                   "SHUTDOWN_BOUND_S (serving/server.py) of the drain's start", (_MODEL, _TIMEOUT, _NOTICE)),
}


def add_commands(commands: argparse._SubParsersAction, names: Iterable[str] = COMMANDS) -> None:
    """Add the subcommands `names` (default: all), each with its options, to `commands`."""
    for name in names:
        command = COMMANDS[name]
        sub = commands.add_parser(name, help=command.help, description=command.help,
                                  parents=[_WHERE, *command.options])
        sub.set_defaults(func=command.func)
        if command.own_options:
            command.own_options(sub)


def build_parser(prog: str = "python -m serving", names: Iterable[str] = COMMANDS) -> argparse.ArgumentParser:
    """The command line (see the module docstring): one subcommand per entry of COMMANDS."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0],
                                     epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), names)
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m serving") -> int:
    """The entry point of `python -m serving` (and, with prog="news-cnn", of `news-cnn
    status|ready|keys`)."""
    args = build_parser(prog).parse_args(argv)
    try:
        return args.func(TorchServe(args.workdir, args.config), args)
    except (ServerError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # requests' connection errors are OSErrors too
        print(f"error: TorchServe did not answer ({err}); is it running? `make serve` starts it",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
