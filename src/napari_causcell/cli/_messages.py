"""How the command line words what the library says: its keyword arguments as the command's
options (``log_normalized=True`` -> ``--log-normalized``, ``layer='counts'`` ->
``--layer counts``), warnings as one line ``warning: <message>`` (no file path of the module
that warned, e.g. inside torch), and ``--where`` labels checked against the data."""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd

from ._common import UsageError

#: a value after ``name=``: a quoted string, or a token up to a space, comma, bracket or period
_VALUE = r"""('[^']*'|"[^"]*"|[^\s,;:()\[\]]+?)(?=[\s,;:()\[\]]|\.(?:\s|$)|$)"""


def _options(parser: argparse.ArgumentParser) -> dict[str, tuple[str, bool]]:
    """``{python_name: (--option, is_flag)}`` over the parser and its subcommands."""
    out: dict[str, tuple[str, bool]] = {}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public listing
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                out.update(_options(sub))
            continue
        for opt in action.option_strings:
            if opt.startswith("--") and len(opt) > 3:
                flag = isinstance(action, (argparse._StoreTrueAction,  # noqa: SLF001
                                           argparse._StoreFalseAction))  # noqa: SLF001
                out[opt[2:].replace("-", "_")] = (opt, flag)
    return out


def cli_wording(text: str, parser: argparse.ArgumentParser) -> str:
    """``text`` with the library's keyword arguments written as this command's options:
    ``log_normalized=True`` -> ``--log-normalized``, ``with log_normalized=False`` ->
    ``without --log-normalized``, ``layer='counts'`` -> ``--layer counts``; names that are
    not options (e.g. ``do(age=90wk)``) stay as they are."""
    for name, (opt, flag) in sorted(_options(parser).items(), key=lambda kv: -len(kv[0])):
        if f"{name}=" not in text:
            continue
        if flag:
            text = re.sub(rf"(?:\bwith )?(?<![\w-]){name}=False\b", f"without {opt}", text)
            text = re.sub(rf"(?<![\w-]){name}=True\b", opt, text)
        else:
            text = re.sub(rf"(?<![\w-]){name}={_VALUE}",
                          lambda m: f"{opt} {m.group(1).strip(chr(39) + chr(34))}", text)
    return text


@contextmanager
def one_line_warnings(parser: argparse.ArgumentParser) -> Iterator[None]:
    """While the command runs, show each warning as one line ``warning: <message>`` on
    stderr, in the command's wording, without the file and line that warned."""

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        text = " ".join(str(message).split())
        print(f"warning: {cli_wording(text, parser)}", file=file or sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def check_where(obs: pd.DataFrame, where: Mapping[str, Any], max_shown: int = 40) -> None:
    """Every ``--where COLUMN=LABEL`` names a column of ``obs`` and labels it has; else a
    :class:`UsageError` listing the columns or that column's labels."""
    for col, want in where.items():
        if col not in obs.columns:
            raise UsageError(f"--where {col}: column {col!r} is not in obs; columns: "
                             f"{[str(c) for c in obs.columns]}")
        wanted = [want] if isinstance(want, str) else list(want)
        present = obs[col].astype(str)
        labels = sorted(set(present)) if not isinstance(obs[col].dtype, pd.CategoricalDtype) \
            else [str(c) for c in obs[col].cat.categories if (obs[col] == c).any()]
        missing = [w for w in wanted if w not in labels]
        if missing:
            shown = labels[:max_shown] + ([f"... {len(labels) - max_shown} more"]
                                          if len(labels) > max_shown else [])
            raise UsageError(f"--where {col}={','.join(wanted)}: no cell has {col} "
                             f"{', '.join(map(repr, missing))}; {col} labels: {shown}")
