"""The ``layersv`` command: a table of subcommands, each a few lines over one library function.

Every command group is one module (:mod:`.run`, :mod:`.infer`, :mod:`.data`, :mod:`.cache`,
:mod:`.analysis`, :mod:`.enrol`) whose ``add_parsers(sub)`` registers its commands with
``set_defaults(handler=handler)``; :func:`main` parses, calls the handler, and maps errors to exit codes
in one place (:data:`ERRORS`).  Adding a command = one parser + one handler in its group's module.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..config import ConfigError
from ..data.audio import AudioError
from ..data.dataset_folder import DatasetError
from ..export import ExportError
from . import analysis, cache, data, enrol, infer, run

GROUPS = (run, infer, data, cache, analysis, enrol)  # the order of `layersv --help`

# (exception types, exit code, message prefix): the one place that turns errors into exit codes
ERRORS = (
    ((ConfigError, DatasetError, AudioError, FileNotFoundError, FileExistsError, ValueError, FloatingPointError,
      ExportError), 2, ""),
    ((OSError,), 2, "cannot write or read a file: "),  # a full disk, a read-only folder: writes are atomic
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="layersv", description="Speaker verification on multi-layer encoder features.")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    a, rest = parser.parse_known_args(argv)
    if rest and not getattr(a, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    a.overrides = rest
    try:
        return int(a.handler(a) or 0)
    except KeyboardInterrupt:
        print("layersv: interrupted (a run can be continued with `layersv train --resume RUN`)", file=sys.stderr)
        return 130
    except Exception as e:
        for types, code, prefix in ERRORS:
            if isinstance(e, types):
                print(f"layersv: error: {prefix}{e}", file=sys.stderr)
                return code
        raise


if __name__ == "__main__":
    sys.exit(main())
