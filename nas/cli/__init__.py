"""The ``nas`` command: argument parsing and printing only.

Each command lives in a module of this package that defines ``register(subparsers)``; the
parser it adds sets ``run`` to a function taking the parsed arguments and returning an exit
status. User errors (:class:`nas.errors.NasError`) are printed as one line on stderr with exit
status 2, never as a traceback; so is a full disk (:func:`disk_full_message`). Every command
takes ``--plugin`` (repeatable), loaded before it runs (:mod:`nas.plugins`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nas.errors import NasError

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas", description="Neural architecture search over YAML genotypes."
    )
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


def exhausted_message(error: BaseException) -> str:
    """The line for an input that exhausted the stack or memory despite the checks."""
    return f"input too large or nested too deeply to process ({type(error).__name__})"


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    except OSError as error:
        from nas.io import is_disk_full

        if not is_disk_full(error):
            raise
        print(disk_full_message(error), file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
