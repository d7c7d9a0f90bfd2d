"""The ``svimg`` command line: ``degrade``, ``restore``, ``evaluate``, ``demo``, ``train-prior`` (``svimg --help``).

Usage errors, and svimg's own ValueError/TypeError, file errors (missing,
existing, not writable: OSError) and refusals of runs that cannot fit in
memory (MemoryError), print ONE line ``svimg: error: ...`` on stderr and exit
with status 2.
Ctrl-C and SIGTERM stop the run with status 130 and leave no partial output
(every file is written under a temporary name and renamed when complete).
The operator spec parser is :func:`svimg.cli.opspec.parse_ops`.
The console script is :func:`console`: :func:`main`, then the exit.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["console", "main"]

_USER_ERRORS = (ValueError, TypeError, OSError, MemoryError)  # OSError: files, with the path; MemoryError: a refusal


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from ._parser import build_parser

    return run(build_parser().parse_args(argv))


def console() -> None:
    """The ``svimg`` console script: :func:`main` on ``sys.argv``, then exit with its status.

    A dry run (``svimg restore --dry-run``) writes nothing and holds no open file, so it leaves
    through ``os._exit`` once its line is flushed: Python's teardown of torch and ONNX Runtime would
    take another 0.6 s of a forecast meant to cost about 3 s (measured, docs/long_videos.md).
    """
    from ._parser import build_parser

    args = build_parser().parse_args()
    status = run(args)
    if getattr(args, "dry_run", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def run(args) -> int:
    """Run the parsed command ``args``; returns the exit status (the errors as in the module docstring)."""
    from . import _commands

    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM unwinds like Ctrl-C: temporaries get removed
    try:
        return getattr(_commands, args.command.replace("-", "_"))(args, _commands.Status(args.quiet))
    except _USER_ERRORS as err:
        message = " ".join(str(err).split())  # one line
        print(f"svimg: error: {message}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"svimg: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("svimg: interrupted; no partial output was left", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
