"""Entry point: ``medviewer`` (GUI) and headless subcommands.

Qt is imported only on the GUI path (``medviewer``, ``medviewer open``, ``medviewer --sample``); ``scan`` and the
other headless subcommands never import PySide6, pyqtgraph or torch.
"""

from __future__ import annotations

import argparse
import sys

from medviewer import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medviewer",
        description="Radiology workstation with local AI. Without a subcommand, opens the viewer.",
    )
    parser.add_argument("--version", action="version", version=f"medviewer {__version__}")
    parser.add_argument("--sample", action="store_true", help="open the bundled sample study")
    parser.add_argument("--screenshot", metavar="FILE", help="save the window as PNG once the first image is "
                                                             "painted, then exit (with --sample; `open PATH "
                                                             "--screenshot FILE` for a path)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from medviewer.cli import (add_classify_note_parser, add_export_parser, add_scan_parser, add_score_parser,
                               add_worklist_parser)

    add_scan_parser(sub)
    add_score_parser(sub)
    add_classify_note_parser(sub)
    add_export_parser(sub)
    add_worklist_parser(sub)
    from medviewer.cli_pacs import add_pacs_parser
    from medviewer.cli_rescore import add_rescore_parser

    add_pacs_parser(sub)
    add_rescore_parser(sub)
    p_open = sub.add_parser("open", help="open the viewer with a folder, DICOMDIR or file loaded")
    p_open.add_argument("path", metavar="PATH")
    p_open.add_argument("--screenshot", metavar="FILE", help="save the window as PNG once the first image is "
                                                              "painted, then exit")
    p_open.add_argument("--run-ai", action="store_true", help="score the first image with the image model and "
                                                              "show its heat map (with --screenshot: capture it)")
    p_open.set_defaults(func=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from medviewer.logs import setup_logging

    setup_logging()  # <data dir>/medviewer.log, for the GUI and the headless commands alike
    func = getattr(args, "func", None)
    if func is not None:
        try:
            return int(func(args) or 0)
        except BrokenPipeError:  # e.g. `medviewer scan --json DIR | head`
            return 0
    # GUI path: the only place that imports medviewer.ui (and with it Qt).
    from medviewer.ui.app import run_gui

    path = getattr(args, "path", None)
    screenshot = getattr(args, "screenshot", None)
    if screenshot:
        from medviewer.report.export import check_output_target

        try:
            check_output_target(screenshot)
        except ValueError as exc:
            print(f"medviewer: {exc}", file=sys.stderr)
            return 2
    if args.sample and path is None:
        from medviewer.io.sample import build_sample_study, default_sample_dir

        path = str(build_sample_study(default_sample_dir()))
    return run_gui(path=path, screenshot=screenshot, run_ai=getattr(args, "run_ai", False))


if __name__ == "__main__":
    # The PyInstaller app is this script: the model process (medviewer.jobs.process, "spawn") re-runs the frozen
    # executable with --multiprocessing-fork, which freeze_support turns into the worker (a no-op unless frozen).
    import multiprocessing

    multiprocessing.freeze_support()
    sys.exit(main())
