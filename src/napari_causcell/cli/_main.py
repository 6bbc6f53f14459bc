"""The entry point ``napari-causcell`` (``napari_causcell.cli:main``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ._common import UsageError, user_errors
from ._messages import cli_wording, one_line_warnings
from ._parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad usage or input)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 0
    args.argv = argv  # re-used by --devices/--nodes to launch the same command under torchrun
    try:
        import torch

        if args.threads < 0:
            raise UsageError(f"--threads must be >= 0, got {args.threads}")
        if args.threads:
            torch.set_num_threads(args.threads)
        with one_line_warnings(parser):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - filtered just below
        if args.traceback or not isinstance(err, user_errors()):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {cli_wording(msg, parser)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
