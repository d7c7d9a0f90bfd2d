"""The ``svimg`` command line: ``degrade``, ``restore``, ``evaluate``, ``demo``, ``train-prior`` (``svimg --help``).

Usage errors, and svimg's own ValueError/TypeError, file errors (missing,
existing, not writable: OSError) and refusals of runs that cannot fit in
memory (MemoryError), print ONE line ``svimg: error: ...`` on stderr and exit
with status 2.
Ctrl-C and SIGTERM stop the run with status 130 and leave no partial output
(every file is written under a temporary name and renamed when complete).
The operator spec parser is :func:`svimg.cli.opspec.parse_ops`.
"""

from __future__ import annotations

import signal
import sys

__all__ = ["main"]

_USER_ERRORS = (ValueError, TypeError, OSError, MemoryError)  # OSError: files, with the path; MemoryError: a refusal


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from ._parser import build_parser

    args = build_parser().parse_args(argv)
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
