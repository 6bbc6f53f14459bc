"""Command line: ``napari-causcell demo | train | counterfactual | info``.

Exit codes: 0 success; 2 bad usage or bad input (one ``error: ...`` line on stderr, no
traceback; ``--traceback`` shows it); 130 interrupted. Heavy libraries are imported only
by the subcommand that needs them, so ``--help`` is quick.

One file per subcommand (``_demo_cmd``, ``_train``, ``_counterfactual``, ``_info``), the
parser in ``_parser``, the entry point :func:`main` in ``_main``.
"""

from ._common import UsageError
from ._main import main
from ._parser import build_parser

__all__ = ["UsageError", "build_parser", "main"]
