"""The ``nas`` command: argument parsing and printing only.

Each command lives in a module of this package that defines ``register(subparsers)``; the
parser it adds sets ``run`` to a function taking the parsed arguments and returning an exit
status. User errors (:class:`nas.errors.NasError`) are printed as one line on stderr with exit
status 2, never as a traceback; so are a full disk (:func:`disk_full_message`) and any other
path the command cannot use (:func:`os_error_message`: an output folder that is a file, a
folder without permission), a usage error (:class:`_Parser`), and any other exception: an
input no check foresaw, or a bug (:func:`unexpected_message`; ``NAS_DEBUG=1`` re-raises it
with its traceback). Every command takes ``--plugin`` (repeatable), loaded before it
runs (:mod:`nas.plugins`).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from nas.errors import ConfigError, NasError

# Modules are imported when the parser is built; keep their top level free of heavy imports
# (torch, pandas, optuna): `nas summary` must start quickly.
_COMMAND_MODULES = (
    "nas.cli._genotype",
    "nas.cli._train",
    "nas.cli._search",
    "nas.cli._zoo",
    "nas.cli._ops",
    "nas.cli._scaling",
    "nas.cli._results",
    "nas.cli._configs",
    "nas.cli._proxies",
    "nas.cli._retrain",
    "nas.cli._check_op",
)


def _version() -> str:
    from nas._version import version

    return version()


class _Parser(argparse.ArgumentParser):
    """argparse's parser with a usage error on one line (``nas retrain: argument --epochs:
    invalid int value: '1e3' (nas retrain --help)``), exit status 2; subcommand parsers are
    made of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} ({self.prog} --help)\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        """argparse's, refusing an empty value (``nas validate ""`` would read the folder ``.``)."""
        namespace, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(namespace, action.dest, None)
            if value == "" or (isinstance(value, list) and "" in value):
                name = "/".join(action.option_strings) or action.metavar or action.dest
                self.error(f"argument {name}: an empty value")
        return namespace, extras


def seed_option(text: str) -> int:
    """The argparse ``type`` of every ``--seed``: an integer in ``[0, 2**32 - 1]``
    (:func:`nas._checks.seed`), refused as a one-line usage error otherwise.

    Raises:
        argparse.ArgumentTypeError: not an integer, or out of that range.
    """
    from nas import _checks

    try:
        return _checks.seed(int(text), path="--seed")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    except NasError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def output_file(text: str, flag: str = "--out") -> Path:
    """The path of an option that names a file to write. ``Path`` drops a trailing separator,
    so ``--out model.onnx/`` (a folder, as the shell and ``open`` read it) wrote the file
    ``model.onnx``.

    Raises:
        ConfigError: ``text`` ends in a path separator.
    """
    if text.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        raise ConfigError(f"'{text}' names a folder (it ends in '{text[-1]}'); give a file name", path=flag)
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description="Neural architecture search over YAML genotypes.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for command in subparsers.choices.values():
        command.add_argument(
            "--plugin", action="append", default=[], metavar="FILE|MODULE",
            help="load a plugin first: a .py file or package folder, or a module name, that "
                 "registers ops, datasets, samplers or block libraries (repeatable; nas.plugins)")
    return parser


def disk_full_message(error: OSError) -> str:
    """One line for a full disk, naming the file that could not be written."""
    where = f"{error.filename}: " if error.filename else ""
    return (f"{where}no space left on device; nothing finished is lost: free some space, then "
            "run the command again (nas search and nas train: add --resume)")


_OS_PROBLEMS = {
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "name too long",
}


def os_error_message(error: OSError) -> str:
    """One line for an operating-system error: the path it names and the problem in words (a
    full disk: :func:`disk_full_message`)."""
    from nas.io import is_disk_full

    if is_disk_full(error):
        return disk_full_message(error)
    problem = _OS_PROBLEMS.get(error.errno) or error.strerror or type(error).__name__
    if error.errno == errno.EEXIST:  # most often a folder to make where a file is
        taken = error.filename is not None and Path(error.filename).exists() and not Path(error.filename).is_dir()
        problem = "exists and is not a folder" if taken else "already exists"
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return str(NasError(problem, file=" -> ".join(paths) or None))


def exhausted_message(error: BaseException) -> str:
    """The line for an input that exhausted the stack or memory despite the checks."""
    return f"input too large or nested too deeply to process ({type(error).__name__})"


def unexpected_message(error: BaseException) -> str:
    """The line for an exception no check raised as a :class:`NasError`: its type and the first
    line of its message (at most 300 characters)."""
    text = (str(error).strip().splitlines() or [""])[0]
    text = text if len(text) <= 300 else text[:297] + "..."
    return (f"unexpected {type(error).__name__}{': ' + text if text else ''} (an input nas does "
            "not check, or a bug; NAS_DEBUG=1 shows the traceback)")


def named_input(args: argparse.Namespace) -> str | None:
    """The file or folder a command reads (its first positional input), for an error line that
    cannot say more; ``None`` when it reads several or none."""
    for key in ("file", "config", "genotype", "run_dir", "files", "run_dirs"):
        value = getattr(args, key, None)
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else None
        if value:
            return str(value)
    return None


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the CLI: one line, ``warning: MESSAGE``, without the source
    line Python adds (a library's warning is no traceback either)."""
    print(f"warning: {' '.join(str(message).split())[:300]}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        os.getcwd()
    except FileNotFoundError:  # relative paths, zoo names and caches all start from it
        print("the current folder no longer exists (it was deleted): change to another one", file=sys.stderr)
        return 2
    try:
        if args.plugin:
            from nas.plugins import load_plugins

            load_plugins(args.plugin, path="--plugin")
        status = args.run(args)
    except NasError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RecursionError, MemoryError) as error:  # a limit the input checks did not foresee
        print(NasError(exhausted_message(error), file=named_input(args)), file=sys.stderr)
        return 2
    except OSError as error:  # a path the command cannot use: one line, as for bad input
        print(os_error_message(error), file=sys.stderr)
        return 2
    except Exception as error:  # no input gets a traceback; a developer asks for it
        if os.environ.get("NAS_DEBUG"):
            raise
        print(NasError(unexpected_message(error), file=named_input(args)), file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
