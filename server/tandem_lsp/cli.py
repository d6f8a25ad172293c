"""Command line: ``tandem-lsp`` serves LSP over stdio (default) or TCP; ``tandem-lsp doctor`` checks the
set-up, ``models`` manages model files, ``demo`` shows Tandem at work.

Heavy modules are imported only by the sub-command that needs them, so the server starts fast.

Every mistake on the command line (an unknown sub-command or option, a bad value, settings that are not a
JSON object, a log file that cannot be opened) ends in one line on stderr, ``tandem-lsp ...: error: ...``,
and exit code 2; never a traceback. ``--tcp`` prints ``listening on HOST:PORT`` on stderr once it listens
(with ``--port 0`` the system picks the port: this line is how an editor or a script learns it).
"""

from __future__ import annotations

import argparse
import logging
import sys

from tandem_lsp import __version__

TOOLS = ("doctor", "models", "demo")
TOOL_HELP = {
    "doctor": "check the local model server and the cloud key, then exit",
    "models": "list, download and remove local GGUF models",
    "demo": "type a function with live ghost text, explain a failing test, show the stats",
}
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and the way to the help), not the whole usage text."""

    def error(self, message: str):  # type: ignore[override]
        import re

        message = re.sub(r"^argument \{[^}]*\}: invalid choice: ", "unknown command ", message)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# -- option values ---------------------------------------------------------------------------------
def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0: any free port), not {port}")
    return port


def settings_json(text: str) -> dict:
    """``--settings``: a JSON object (the ``tandem`` settings tree, in any shape the server accepts)."""
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object such as '{{\"local\": {{\"backend\": \"ollama\"}}}}', not {type(value).__name__}")
    return value


def setting_value(key: str):
    """An option that sets one setting: checked by the settings' own validator, so the CLI accepts exactly
    what the settings accept."""

    def check(text: str) -> str:
        from tandem_lsp.config import parse_settings

        _settings, problems = parse_settings({key: text})
        if problems:
            raise argparse.ArgumentTypeError(problems[0].split("; using")[0])
        return text

    check.__name__ = key  # argparse names the type in some messages
    return check


def model_file(text: str) -> str:
    from pathlib import Path

    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"not a file: {text}")
    return str(path.resolve())


def _enum(key: str) -> list[str]:
    from tandem_lsp.config import SETTINGS_SCHEMA

    return list(next(spec.enum for spec in SETTINGS_SCHEMA if spec.key == key) or ())


def add_local_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose the local model, shared by ``doctor`` and ``demo``; they override
    ``--settings``."""
    parser.add_argument("--backend", choices=_enum("local.backend"), help="override local.backend")
    parser.add_argument("--endpoint", type=setting_value("local.endpoint"), help="override local.endpoint")
    parser.add_argument("--model", help="override local.model")
    parser.add_argument("--model-path", type=model_file, metavar="FILE",
                        help="a GGUF model file to run in-process (sets local.modelPath; backend embedded "
                             "unless --backend or --settings names one)")
    parser.add_argument("--fim-template", choices=_enum("local.fimTemplate"), help="override local.fimTemplate")
    parser.add_argument("--settings", type=settings_json, metavar="JSON",
                        help="a `tandem` settings tree as JSON, e.g. '{\"local\": {\"timeoutMs\": 4000}}'")


def settings_tree(args, base: dict | None = None) -> dict:
    """``base`` (defaults of the sub-command), then ``--settings``, then the single-setting options, as one
    raw settings tree (later keys win, as ``config.parse_settings`` reads them)."""
    tree: dict = {}
    for layer in (base or {}, getattr(args, "settings", None) or {}):
        tree = _merge(tree, layer)
    overrides = {"local.backend": getattr(args, "backend", None), "local.endpoint": getattr(args, "endpoint", None),
                 "local.model": getattr(args, "model", None), "local.modelPath": getattr(args, "model_path", None),
                 "local.fimTemplate": getattr(args, "fim_template", None)}
    if overrides["local.modelPath"] and not overrides["local.backend"] and not _names_backend(args):
        overrides["local.backend"] = "embedded"
    local = {key.split(".", 1)[1]: value for key, value in overrides.items() if value}
    return _merge(tree, {"local": local}) if local else tree


def _names_backend(args) -> bool:
    """Whether ``--settings`` sets ``local.backend`` (in any of the shapes the settings accept)."""
    return _mentions(getattr(args, "settings", None), "backend")


def _mentions(tree, key: str) -> bool:
    return isinstance(tree, dict) and any(
        isinstance(k, str) and (k.split(".")[-1] == key or _mentions(v, key)) for k, v in tree.items())


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out.pop(key, None)  # re-inserted last: later keys win
            out[key] = value
    return out


# -- the parser ------------------------------------------------------------------------------------
def build_parser(with_tools: bool = True) -> argparse.ArgumentParser:
    """The parser; without ``with_tools`` the sub-commands whose modules cost start-up time get no options
    (they are still listed, so a typo shows every sub-command)."""
    parser = Parser(
        prog="tandem-lsp",
        description="Tandem language server: local-model completions on every keystroke, the cloud for hard problems.",
    )
    parser.add_argument("--version", action="version", version=f"tandem-lsp {__version__}")
    parser.add_argument("--stdio", action="store_true", help="serve LSP over stdin/stdout (the default)")
    parser.add_argument("--tcp", action="store_true",
                        help="serve LSP over TCP instead of stdio (prints `listening on HOST:PORT` on stderr)")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=2087, help="TCP port (default 2087; 0: any free port)")
    parser.add_argument("--log-file", metavar="PATH", help="also write the log to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(TOOLS) + "}")
    doctor = sub.add_parser("doctor", help=TOOL_HELP["doctor"],
                            description="Check the local model (server or model file) and the cloud key.")
    add_local_options(doctor)
    if with_tools:
        from tandem_lsp import models
        from tandem_lsp.demo import add_parser as add_demo_parser

        models.add_parser(sub)
        add_demo_parser(sub)
    else:
        for name in TOOLS[1:]:
            sub.add_parser(name, help=TOOL_HELP[name])
    return parser


def setup_logging(log_file: str | None, verbose: bool, level: int = logging.INFO) -> None:
    """Logs go to stderr and optionally a file, never stdout (stdout carries LSP). ``level`` when not
    ``verbose``: the tools log only warnings, since they print what matters themselves."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    if not verbose:
        for noisy in ("pygls", "httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def serve_tcp(server, host: str, port: int, announce) -> None:
    """pygls's own ``start_tcp``; its listening sockets' addresses go to ``announce`` once they are bound
    (pygls keeps the asyncio server in ``_server`` and tells no one the port it got)."""
    import threading

    done = threading.Event()

    def wait_until_bound() -> None:
        while not done.is_set():
            listening = getattr(server, "_server", None)
            if listening is not None:
                for sock in listening.sockets:
                    announce(sock.getsockname())
                return
            done.wait(0.01)

    threading.Thread(target=wait_until_bound, name="tcp-announce", daemon=True).start()
    try:
        server.start_tcp(host, port)
    finally:
        done.set()


def _address(sockname) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    with_tools = any(w in TOOLS or w in ("-h", "--help") for w in words)
    args = build_parser(with_tools).parse_args(words)
    tool = args.command in TOOLS
    try:
        setup_logging(args.log_file, args.verbose, logging.WARNING if tool else logging.INFO)
    except OSError as exc:
        sys.stderr.write(f"tandem-lsp: error: cannot write the log file {args.log_file}: {exc.strerror or exc}\n")
        return EXIT_USAGE
    if args.command == "doctor":
        from tandem_lsp.doctor import run_doctor

        return run_doctor(args)
    if args.command == "demo":
        from tandem_lsp.demo import run as run_demo

        return run_demo(args)
    if args.command == "models":
        from tandem_lsp import models

        return models.run(args)
    from tandem_lsp.lsp.server import server

    if args.tcp:
        import socket

        def announce(sockname) -> None:
            print(f"listening on {_address(sockname)}", file=sys.stderr, flush=True)

        try:
            serve_tcp(server, args.host, args.port, announce)
        except socket.gaierror as exc:
            sys.stderr.write(f"tandem-lsp: error: --host {args.host}: {exc.strerror or exc}\n")
            return EXIT_USAGE
        except OSError as exc:
            import os

            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            sys.stderr.write(f"tandem-lsp: error: cannot listen on {args.host}:{args.port}: {reason}\n")
            return 1
        except KeyboardInterrupt:
            return 130
    else:
        server.start_io()
    return 0
