"""Checks of the values users write in config files and pass on the command line, in one place.

Every config (``nas search``, ``nas scale-search``, ``nas.train.TrainConfig``) and command that
takes one of these values calls the function here, so a value means the same and fails the
same everywhere: run names (:func:`folder_name`), numbers finite and in range (:func:`number`),
threads (:func:`threads`), seeds (:func:`seed`), options against a callable's signature and
annotated types (:func:`check_options`), a dataset reference (:func:`dataset`: normalised,
checked against the source and its files before anything is written), paths (:func:`user_path`,
:func:`resolved_path`), a genotype reference
(:func:`genotype`) and op-valued parameters (:func:`callable_names`).

Each raises :class:`~nas.errors.ConfigError` naming ``file`` and ``path`` (the key), and writes
nothing. Imports neither torch nor Optuna at the top.
"""

from __future__ import annotations

import ast
import errno
import inspect
import math
import numbers
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError, NasError

if TYPE_CHECKING:
    from nas.genotype import Genotype

__all__ = [
    "DATASET_PATHS",
    "DATASET_SOURCES",
    "LATENCY_BOUNDS",
    "MAX_BATCH",
    "MAX_SEED",
    "batch_size",
    "callable_names",
    "check_path_given",
    "check_options",
    "crop_padding",
    "cores",
    "dataset",
    "dataset_path",
    "finite",
    "device",
    "folder_name",
    "genotype",
    "max_processes",
    "name_list",
    "number",
    "plain_number",
    "resolved_path",
    "seed",
    "threads",
    "user_path",
]

#: Seeds lie in ``[0, MAX_SEED)`` (NumPy's and Optuna's samplers take 32-bit seeds).
MAX_SEED = 2**32
#: Most images in the batch a zero-cost proxy reads, a bound on its memory: the one bound of
#: ``nas.proxies.score``'s ``batch_size``, ``nas score --batch`` and a run's ``proxies.batch``.
MAX_BATCH = 4_096
#: The settings of one latency measurement (``nas.train.measure_latency``, a run's
#: ``latency`` section): ``{name: (lowest, highest)}``, the highest bounding its work.
LATENCY_BOUNDS = {"batch_size": (1, 1024), "repeats": (1, 1000), "warmup": (0, 1000)}

_FOLDER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,99}")


def folder_name(value: Any, *, file: str | None = None, path: str = "name") -> str:
    """A run name, used as a folder name: 1 to 100 characters from letters, digits and
    ``_ . + = -``, not starting with ``.``, ``+``, ``=`` or ``-``."""
    if not isinstance(value, str) or not _FOLDER_NAME.fullmatch(value):
        raise ConfigError(f"must be a folder name of letters, digits and _ . + = - (at most 100, "
                          f"not starting with . + = -), got {value!r}", file=file, path=path)
    return value


def _show(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _describe_range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(-inf" if low is None else f"{'(' if low_open else '['}{_show(low)}"
    right = "inf)" if high is None else f"{_show(high)}{')' if high_open else ']'}"
    return f"{left}, {right}"


def plain_number(value: Any) -> Any:
    """``value``, made the Python int or float it equals when it is another library's real
    number (a NumPy scalar such as ``numpy.int64(3)``, which is no ``int``); anything else,
    bools included, as it is."""
    if isinstance(value, (bool, int, float)) or not isinstance(value, numbers.Real):
        return value
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def finite(value: Any) -> bool:
    """Whether ``value`` is an int (not a bool) or a finite float (never raises)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def number(value: Any, *, path: str, file: str | None = None, low: float | None = None,
           high: float | None = None, low_open: bool = False, high_open: bool = False,
           integer: bool = False) -> Any:
    """``value`` if it is a finite number (an integer when ``integer``; an integral float such
    as ``1.0e6`` counts and is returned as an int; a NumPy scalar is returned as the Python
    number it equals) within the bounds; ``True`` and ``False`` are not numbers here.

    Raises:
        ConfigError: naming ``file`` and ``path``.
    """
    kind = "an integer" if integer else "a number"
    where = _describe_range(low, high, low_open, high_open)
    value = plain_number(value)
    ok = finite(value)
    if ok and integer:
        ok = isinstance(value, int) or float(value).is_integer()
        value = int(value) if ok else value
    if ok:
        ok = not ((low is not None and (value <= low if low_open else value < low))
                  or (high is not None and (value >= high if high_open else value > high)))
    if not ok:
        raise ConfigError(f"must be {kind} in {where}, got {value!r}", file=file, path=path)
    return value


def batch_size(value: Any, *, path: str, file: str | None = None) -> int:
    """``value`` as the images of a zero-cost proxy's batch: an integer in ``[2, MAX_BATCH]``
    (a proxy needs two images to compare; see :data:`MAX_BATCH`).

    Raises:
        ConfigError: naming ``file`` and ``path``.
    """
    return number(value, path=path, file=file, low=2, high=MAX_BATCH, integer=True)


def crop_padding(value: Any, *, image: tuple[int, ...], path: str, file: str | None = None) -> int:
    """``value`` as the padding of a random crop of ``image`` ``(H, W)``-sized images: an
    integer from 0 to the image's larger side. Padded wider than the image, a crop may hold
    none of it, and the padded copy of the split (kept on the device) grows with the
    padding's square: bounded at 9 times.

    Raises:
        ConfigError: naming ``file`` and ``path``.
    """
    return number(value, path=path, file=file, low=0, high=max(image), integer=True)


def name_list(value: Any, *, path: str, error: Callable[[str], Exception] = ConfigError) -> None:
    """Refuse one string where a list of names is expected: iterating it takes its letters for
    names (``"synflow"`` as the proxies ``'s'``, ``'y'``, ...).

    Raises:
        error: naming ``path`` and suggesting the list of one name.
    """
    if isinstance(value, (str, bytes)):
        raise error(f"{path} must be a list of names, got the string {value!r} (for one: [{value!r}])")


def section(value: Any, *, path: str, file: str | None = None, what: str = "a mapping") -> Mapping[str, Any]:
    """A config section that must be a mapping; ``None`` (the key given empty or not at all)
    is an empty one. Any other value is refused, empty ones too (``0``, ``""``, ``false``).

    Raises:
        ConfigError: ``must be WHAT``, naming ``file`` and ``path``.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be {what}", file=file, path=path)
    return value


def text_keys(value: Mapping[Any, Any], *, what: str, path: str, file: str | None = None) -> None:
    """Refuse a key of ``value`` that is not text where keys name parameters or options
    (YAML reads ``1: 2`` as the number 1; passed on as ``**value`` it was a TypeError).

    Raises:
        ConfigError: ``WHAT must be text, got KEY``, naming ``file`` and ``path``.
    """
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{what} must be text, got {key!r}", file=file, path=path)


def known_keys(value: Mapping[str, Any], keys: Iterable[str], *, path: str,
               file: str | None = None) -> None:
    """Raise :class:`ConfigError` at ``PATH.KEY`` for the first key of the config section
    ``value`` that is not in ``keys`` (the message lists the valid ones)."""
    keys = tuple(keys)
    for key in value:
        if key not in keys:
            raise ConfigError(f"unknown key {key!r}; valid: {', '.join(keys)}", file=file,
                              path=f"{path}.{key}")


def cores() -> int:
    """The machine's CPU cores (``os.cpu_count()``, at least 1)."""
    return os.cpu_count() or 1


def max_processes() -> int:
    """Worker processes allowed on this machine: its cores, and at least 4 (a worker trains,
    decodes or retrains one thing at a time; more processes than cores only slow each other
    down, and thousands exhaust the OS)."""
    return max(4, cores())


def threads(value: Any, *, path: str, file: str | None = None) -> int | None:
    """``None`` (the default) or an integer from 1 to the machine's cores: more threads than
    cores only slow each other down (and thousands exhaust the OS)."""
    if value is None:
        return None
    return number(value, path=path, file=file, low=1, high=cores(), integer=True)


def seed(value: Any, *, path: str, file: str | None = None, span: int = 1) -> int:
    """An integer in ``[0, 2**32 - span]``: ``span`` consecutive seeds (one per worker) must
    all be valid 32-bit seeds."""
    return number(value, path=path, file=file, low=0, high=MAX_SEED - span, integer=True)


def device(value: Any, *, path: str, file: str | None = None) -> str:
    """A torch device this machine has: ``cpu``, ``cuda`` or ``cuda:N`` (N below its GPU
    count; torch is imported only for a CUDA name).

    Raises:
        ConfigError: another name, or a GPU this machine lacks (saying how many it has).
    """
    match = re.fullmatch(r"cuda(?::(\d{1,4}))?", value) if isinstance(value, str) else None
    if value == "cpu":
        return value
    if match is None:
        raise ConfigError(f"must be cpu, cuda or cuda:N, got {value!r}", file=file, path=path)
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(match[1] or 0) >= have:
        raise ConfigError(f"{value}: this machine has {have} GPU{'s' * (have != 1)}", file=file, path=path)
    return value


# --------------------------------------------------------------------------- options by signature

def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _annotation_text(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _matches(text: str, value: Any) -> bool | None:
    """Whether ``value`` (plain YAML data) fits the annotation ``text``; ``None`` when the
    annotation names a Python object a config file cannot give."""
    results = []
    for part in _split_top(text, "|"):
        base, _, inner = part.partition("[")
        inner = inner[:-1] if inner.endswith("]") else inner
        if base == "Optional":
            results.append(value is None or _matches(inner, value))
        elif base == "Union":
            results.append(any(_matches(p, value) for p in _split_top(inner, ",")))
        elif base == "int":
            results.append(isinstance(value, int) and not isinstance(value, bool))
        elif base == "float":
            results.append(finite(value))
        elif base == "bool":
            results.append(isinstance(value, bool))
        elif base == "str":
            results.append(isinstance(value, str))
        elif base == "Path":
            results.append(isinstance(value, (str, os.PathLike)))
        elif base == "None":
            results.append(value is None)
        elif base in ("list", "tuple", "Sequence"):
            item = _split_top(inner, ",")[0] if inner else None
            results.append(isinstance(value, (list, tuple))
                           and all(item is None or _matches(item, v) is not False for v in value))
        elif base in ("dict", "Mapping"):
            results.append(isinstance(value, Mapping))
        elif base == "Literal":
            try:
                allowed = ast.literal_eval(f"[{inner}]")
            except (ValueError, SyntaxError):
                allowed = []
            results.append(value in allowed)
        elif base == "Any":
            results.append(True)
        else:
            results.append(None)  # Callable, a class: not something YAML can hold
    if any(r is True for r in results):
        return True
    return False if any(r is False for r in results) else None


def check_options(target: Callable[..., Any], given: Mapping[str, Any], *, path: str | None,
                  file: str | None = None, skip: Iterable[str] = ()) -> None:
    """Check the keyword options ``given`` for ``target`` (a class or function) against its
    signature: every name must be a parameter (``skip`` lists those the caller sets itself),
    and every value must fit the parameter's annotation (``int``, ``float``, ``bool``,
    ``str``, ``None``, lists, mappings, literals and unions of them; a parameter annotated
    with a Python type such as a callable cannot be given in a file).

    Raises:
        ConfigError: naming ``path.OPTION`` (``OPTION`` when ``path`` is None).
    """
    skip = set(skip)
    parameters = {name: p for name, p in inspect.signature(target).parameters.items()
                  if name not in skip and name != "self"
                  and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
    for key, value in given.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in parameters:
            raise ConfigError(f"unknown option {key!r}; valid: {', '.join(sorted(parameters)) or 'none'}",
                              file=file, path=where)
        text = _annotation_text(parameters[key].annotation)
        if text is None:
            continue
        fits = _matches(text, value)
        if fits is False and all(_matches(part, value) is None for part in _split_top(text, "|")
                                 if part != "None"):
            fits = None  # only null or a Python object: say the latter
            raise ConfigError(f"takes a Python object ({text}), which a config file cannot give",
                              file=file, path=where)
        if not fits:
            raise ConfigError(f"must be {text}, got {value!r}", file=file, path=where)


def check_not_negative(given: Mapping[str, Any], *, path: str | None, file: str | None = None) -> None:
    """Every number in ``given`` (or in a list value) is at least 0: counts, sizes, rates and
    probabilities of datasets and samplers, where Optuna and torch would take a negative one
    silently (``n_startup_trials: -5`` ran as 0).

    Raises:
        ConfigError: naming ``path.OPTION`` (``OPTION`` when ``path`` is None).
    """
    for key, value in given.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and item < 0:
                raise ConfigError(f"must not be negative, got {value!r}", file=file,
                                  path=f"{path}.{key}" if path else str(key))


# --------------------------------------------------------------------------- datasets


#: Dataset options that are paths: relative ones are resolved against the config's folder.
DATASET_PATHS = ("root", "val_root", "cache")
#: Of those, the ones that must exist: found, as a tabular table is, relative to the config's
#: folder, else to the working folder.
DATASET_SOURCES = ("root", "val_root")


def user_path(value: str | Path, *, path: str | None, file: str | None = None,
              error: type[NasError] = ConfigError) -> Path:
    """``Path(value)`` with a leading ``~`` or ``~USER`` expanded (:meth:`Path.expanduser`), a
    name the operating system can look up (:func:`_check_lookup`).

    Raises:
        error: ``~USER`` names no user, or ``~`` has no home folder (pathlib's
            ``RuntimeError``), or a name no file can have (too long, a NUL byte: ``nas train
            --root`` of 5,000 characters was 'NAME: name too long' without the flag), naming
            ``file`` and ``path`` (the key).
    """
    try:
        expanded = Path(value).expanduser()
    except RuntimeError:
        problem = "no home folder" if Path(value).parts[0] == "~" else "no such user"
        raise error(f"{str(value)!r}: {problem}", file=file, path=path) from None
    except ValueError:  # a NUL byte in ~USER
        expanded = Path(value)
    _check_lookup(expanded, value, loops=False, path=path, file=file, error=error)
    return expanded


def _shown(value: str | Path) -> str:
    """``repr`` of a path for a message, cut to 200 characters."""
    shown = repr(str(value))
    return shown if len(shown) <= 200 else shown[:197] + "..."


def _check_lookup(target: Path, value: str | Path, *, loops: bool, path: str | None, file: str | None,
                  error: type[NasError]) -> None:
    """Refuse ``target`` (shown as ``value``) when the system cannot look it up: a name or part
    longer than it takes (``ENAMETOOLONG``, which escapes every ``exists()`` and ``is_file()``
    as an ``OSError``), a NUL byte, or (``loops``) a symlink loop. A missing file is fine.

    Raises:
        error: naming ``file`` and ``path``.
    """
    try:
        os.stat(target)
    except OSError as problem:
        if loops and problem.errno == errno.ELOOP:
            raise error(f"{_shown(value)}: symlink loop", file=file, path=path) from None
        if problem.errno == errno.ENAMETOOLONG:
            raise error(f"{_shown(value)}: name too long", file=file, path=path) from None
    except ValueError:  # a NUL byte ('unexpected ValueError' in a dataset's root)
        raise error(f"{_shown(value)}: not a valid file name (a NUL byte)", file=file, path=path) from None


def resolved_path(value: str | Path, *, path: str | None, file: str | None = None,
                  error: type[NasError] = ConfigError) -> Path:
    """``Path(value).resolve()`` (absolute, symlinks followed, ``..`` removed), a name the
    operating system can look up (:func:`_check_lookup`).

    Raises:
        error: a symlink loop on the way (pathlib's ``RuntimeError`` before Python 3.13, which
            returns the path instead: ``stat`` then says ``ELOOP``), a name or part longer than
            the system takes, or a NUL byte, naming ``file`` and ``path``.
    """
    try:
        resolved = Path(value).resolve()
    except RuntimeError:
        raise error(f"{_shown(value)}: symlink loop", file=file, path=path) from None
    except ValueError:
        resolved = Path(value)
    _check_lookup(resolved, value, loops=True, path=path, file=file, error=error)
    return resolved


def check_path_given(value: Any, key: str, *, file: str | None = None,
                     path: str | None = None) -> None:
    """Refuse an empty (or blank) string as the path option ``key``: ``Path('')`` is the
    working folder, which nobody means (``cache: ''`` wrote an entry there).

    Raises:
        ConfigError: ``must be a folder path, got ''`` (``cache``) or ``must be a path, got
            ''``, naming ``file`` and ``path`` (default ``key``).
    """
    if isinstance(value, str) and not value.strip():
        kind = "folder path" if key == "cache" else "path"
        raise ConfigError(f"must be a {kind}, got {value!r}", file=file, path=path or key)


def dataset_path(value: str, key: str, base: Path, *, file: str | None = None,
                 path: str | None = None) -> Path:
    """A dataset path option made absolute: relative to the config's folder ``base``; a source
    (``root``, ``val_root``) missing there but present relative to the working folder is taken
    from there (the rule of a tabular ``table``).

    Raises:
        ConfigError: naming ``path`` (default ``key``): an empty ``value`` (it would be
            ``base`` itself), ``~USER`` names no user (:func:`user_path`), or a symlink loop
            on the way (:func:`resolved_path`).
    """
    where = path or key
    check_path_given(value, key, file=file, path=where)
    given = user_path(value, path=where, file=file)
    beside = resolved_path(base / given, path=where, file=file)
    if key in DATASET_SOURCES and not beside.exists() and (Path.cwd() / given).exists():
        return resolved_path(Path.cwd() / given, path=where, file=file)
    return beside


def dataset(value: Any, *, base: Path, file: str | None = None, path: str = "dataset") -> dict[str, Any]:
    """A config's ``dataset``: a name or a mapping with ``name`` and options, as a mapping with
    the paths (:data:`DATASET_PATHS`) made absolute (relative to ``base``, the config's folder), checked against the
    source's options and files (:func:`nas.data.check_dataset`) without reading or writing
    anything else. Imports torch (through :mod:`nas.data`).

    Raises:
        ConfigError: naming ``path`` or ``path.OPTION``.
    """
    from nas.data import check_dataset

    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise ConfigError("must be a dataset name or a mapping with 'name' and options",
                          file=file, path=path)
    text_keys(value, what="an option name", path=path, file=file)
    out = dict(value)
    for key in DATASET_PATHS:  # relative to the config file, like every path in it
        if isinstance(out.get(key), str):
            out[key] = str(dataset_path(out[key], key, base, file=file, path=f"{path}.{key}"))
    options = {k: v for k, v in out.items() if k != "name"}
    try:
        check_dataset(out["name"], **options)
    except NasError as error:  # at "dataset", "dataset.OPTION" or "OPTION": under path
        error.file = error.file or file
        where = "" if error.path in (None, "dataset") else error.path.removeprefix("dataset.")
        error.path = f"{path}.{where}" if where else path
        raise
    return out


# --------------------------------------------------------------------------- genotypes


def genotype(ref: Any, *, base: Path, file: str | None = None, path: str = "genotype") -> Genotype:
    """The genotype a config names: a file relative to ``base`` (the config's folder), else to
    the working folder, else a zoo name.

    Raises:
        ConfigError: no such file or zoo name, or the file is not a valid genotype; the
            message is the genotype's own error.
    """
    from nas.genotype import load_genotype

    if not isinstance(ref, str) or not ref:
        raise ConfigError("must be a genotype file or a zoo name", file=file, path=path)
    for candidate in (base / ref, Path(ref)):
        if resolved_path(candidate, file=file, path=path).is_file():
            try:
                return load_genotype(candidate)
            except NasError as error:
                raise ConfigError(str(error), file=file, path=path) from None
    if "/" in ref or ref.endswith((".yaml", ".yml")):
        raise ConfigError(f"no genotype file {ref!r} (relative to {base} or the working folder)",
                          file=file, path=path)
    try:
        return load_genotype(ref)
    except NasError as error:
        raise ConfigError(error.message, file=file, path=path) from None


def _is_callable_name(name: Any, genotype: Genotype) -> bool:
    from nas import ops
    from nas.genotype._model import FORMS

    return isinstance(name, str) and (ops.canonical_name(name) is not None
                                      or name in genotype.blocks or name in FORMS)


def callable_names(param: str, values: Iterable[Any], genotype: Genotype, *, path: str,
                   file: str | None = None) -> None:
    """When ``genotype``'s parameter ``param`` holds an op or block name (it is op-valued),
    every string in ``values`` must name a registered op or one of the genotype's blocks.

    Raises:
        ConfigError: naming ``path`` and listing the valid names.
    """
    default = genotype.params.get(param)
    defaults = default if isinstance(default, (list, tuple)) else [default]
    if not any(_is_callable_name(d, genotype) for d in defaults):
        return
    for value in values:
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, str) and not _is_callable_name(item, genotype):
                from nas import ops

                raise ConfigError(
                    f"{item!r} names no op or block (parameter {param!r} is op-valued); ops: "
                    f"{', '.join(ops.names())}; blocks: {', '.join(sorted(genotype.blocks)) or 'none'}",
                    file=file, path=path)

