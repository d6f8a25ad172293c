"""Command line: ``tandem-lsp`` serves LSP over stdio (default) or TCP; ``tandem-lsp doctor`` checks the set-up.

Heavy modules are imported only by the sub-command that needs them, so the server starts fast.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tandem_lsp import __version__


TOOLS = ("doctor", "models", "demo")


def build_parser(with_tools: bool = True) -> argparse.ArgumentParser:
    """The parser; without ``with_tools`` the sub-commands whose modules cost start-up time are left out."""
    parser = argparse.ArgumentParser(
        prog="tandem-lsp",
        description="Tandem language server: local-model completions on every keystroke, the cloud for hard problems.",
    )
    parser.add_argument("--version", action="version", version=f"tandem-lsp {__version__}")
    parser.add_argument("--stdio", action="store_true", help="serve LSP over stdin/stdout (the default)")
    parser.add_argument("--tcp", action="store_true", help="serve LSP over TCP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (default 2087)")
    parser.add_argument("--log-file", metavar="PATH", help="also write the log to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")
    doctor = sub.add_parser("doctor", help="check the local model server and the cloud key, then exit")
    doctor.add_argument("--backend", choices=["auto", "openai", "ollama", "llamacpp"], help="override local.backend")
    doctor.add_argument("--endpoint", help="override local.endpoint")
    doctor.add_argument("--model", help="override local.model")
    doctor.add_argument("--fim-template", help="override local.fimTemplate")
    doctor.add_argument("--settings", metavar="JSON", help="a `tandem` settings tree as JSON")
    if with_tools:
        from tandem_lsp import models
        from tandem_lsp.demo import add_parser as add_demo_parser

        models.add_parser(sub)
        add_demo_parser(sub)
    return parser


def setup_logging(log_file: str | None, verbose: bool) -> None:
    """Logs go to stderr and optionally a file, never stdout (stdout carries LSP)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    if not verbose:
        for noisy in ("pygls", "httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    with_tools = any(w in TOOLS or w in ("-h", "--help") for w in words)
    args = build_parser(with_tools).parse_args(argv)
    setup_logging(args.log_file, args.verbose)
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
        server.start_tcp(args.host, args.port)
    else:
        server.start_io()
    return 0
