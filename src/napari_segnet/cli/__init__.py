"""The ``napari-segnet`` command line: the same engine as the napari widgets.

One module per sub-command (``segment``, ``measure``, ``train``, ``evaluate``,
``export-model``, ``info`` with ``models``); what they share is in ``common``. Errors a user can
cause end in one sentence on stderr and exit status 1 (2 for wrong arguments);
``--debug`` shows the traceback instead. When the reader of the output goes away
(``napari-segnet models | head -1``), the command stops quietly with status 141, as
command-line tools killed by SIGPIPE do.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from napari_segnet import __version__

from . import evaluate, export_model, info, measure, segment, train
from .common import UserError

__all__ = ["UserError", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        status = args.run(args) or 0
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return status
    except KeyboardInterrupt:
        print("napari-segnet: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Nothing reads the output any more: no message, and no second error when Python
        # flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:
        if args.debug:
            raise
        from napari_segnet.messages import one_sentence

        message = one_sentence(error)
        if not isinstance(error, UserError | ValueError | OSError):
            message = f"unexpected {type(error).__name__}: {message} (run with --debug for details)"
        print(f"napari-segnet: error: {message}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="napari-segnet",
        description="Segment nuclei and cells, measure them, export labels and tables.",
    )
    parser.add_argument("--version", action="version", version=f"napari-segnet {__version__}")
    parser.set_defaults(command=None, debug=False)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    segment.add_parser(commands, common)
    measure.add_parser(commands, common)
    train.add_parser(commands, common)
    evaluate.add_parser(commands, common)
    export_model.add_parser(commands, common)
    info.add_parsers(commands, common)
    return parser
