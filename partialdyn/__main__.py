"""Command line: `python -m partialdyn demo`, `python -m partialdyn log view FILE` and
`python -m partialdyn build-native`.

Subcommands import their modules lazily, so `--help` works without touching the engine.
"""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="partialdyn",
        description="partialdyn: partial shape specialization for PyTorch.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser(
        "demo", add_help=False,
        help="compare partialdyn policies with torch.compile on a small transformer block "
             "(options: --quick; see `demo --help`)")

    sub.add_parser(
        "build-native",
        help="build the C++ tensor check guards use (otherwise built in the background on first use)")

    log = sub.add_parser("log", help="work with a partialdyn event log (JSON Lines)")
    log_sub = log.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    view = log_sub.add_parser("view", help="render a guard/recompile log as text, or as HTML")
    view.add_argument("file", metavar="FILE", help="log written via PARTIALDYN_LOG=FILE")
    view.add_argument("--html", metavar="OUT", help="also write a self-contained HTML report to OUT")
    view.add_argument("--full", action="store_true", help="list every guard (by default what never changes "
                                                          "is folded)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = _parser().parse_known_args(argv)

    if args.command == "demo":
        from partialdyn import demo
        return demo.main(rest)

    if rest:
        _parser().error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "build-native":
        return _build_native()
    if args.command == "log" and args.log_command == "view":
        from partialdyn.logs import viewer
        view_argv = ["view", args.file]
        if args.html:
            view_argv += ["--html", args.html]
        if args.full:
            view_argv.append("--full")
        return viewer.main(view_argv)
    return 2  # unreachable: argparse requires a known subcommand


def _build_native() -> int:
    import subprocess

    from partialdyn.guards import native
    try:
        print(native.ensure_built())
    except subprocess.CalledProcessError as error:
        print(f"the compiler failed ({' '.join(error.cmd)}):\n{error.stdout}{error.stderr}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
