"""Copy weights between a built genotype and a reference implementation (torchvision, timm).

Tensors are paired in order: ours in execution order of the genotype's graph (each module's
own parameters and buffers in registration order), theirs in ``state_dict`` order. Zoo
genotypes write their nodes in the reference's registration order, so the pairing is exact;
every pair must agree in shape, and the counts must match, or nothing is copied.
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas._zip import unpacked_bytes
from nas.errors import ConfigError, NasError
from nas.genotype import INPUT

__all__ = ["load_torchvision_weights", "genotype_tensors", "load_state_dict_file", "load_torch_file",
           "check_tensors", "state_dict_bytes", "MAX_TORCH_FILE_BYTES"]

#: Largest file :func:`load_torch_file` reads when its caller knows no tighter bound.
MAX_TORCH_FILE_BYTES = 8 << 30


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s parameters and buffers: what its saved ``state_dict`` is about, so a
    file far larger can be refused unread (:func:`load_torch_file`'s ``max_bytes``)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def genotype_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` for every parameter and buffer of a built genotype, in execution
    order."""
    from nas.build import module_name

    graph = model.genotype.graph  # type: ignore[attr-defined]
    for node in graph.nodes:
        if node == INPUT:
            continue
        name = module_name(node)
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue  # functional or identity node
        yield from module.state_dict(prefix=f"{name}.", keep_vars=True).items()


@torch.no_grad()
def load_torchvision_weights(model: nn.Module, reference: nn.Module | dict[str, torch.Tensor]) -> nn.Module:
    """Copy every parameter and buffer of ``reference`` (a module or a ``state_dict``) into
    ``model``, a module built by :func:`nas.build_model`. Returns ``model``.

    Raises :class:`nas.NasError` naming the first pair whose shapes differ, or the counts;
    ``TypeError`` when ``model`` was not built by :func:`nas.build_model` (e.g. the two
    arguments swapped) or ``reference`` is neither a module nor a mapping.
    """
    from nas.build import GenotypeModule

    if not isinstance(model, GenotypeModule):
        raise TypeError(f"model must be built by nas.build_model, got {type(model).__name__}")
    if not isinstance(reference, (nn.Module, Mapping)):
        raise TypeError(f"reference must be a torch.nn.Module or a state_dict, got {type(reference).__name__}")
    theirs = list((reference.state_dict() if isinstance(reference, nn.Module) else reference).items())
    ours = list(genotype_tensors(model))
    if len(ours) != len(theirs):
        raise NasError(
            f"cannot copy weights: the genotype has {len(ours)} tensors, the reference {len(theirs)}"
        )
    for (our_name, our_tensor), (their_name, their_tensor) in zip(ours, theirs):
        if our_tensor.shape != their_tensor.shape:
            raise NasError(
                f"cannot copy weights: {our_name} {tuple(our_tensor.shape)} does not match "
                f"{their_name} {tuple(their_tensor.shape)}"
            )
    for (_, our_tensor), (_, their_tensor) in zip(ours, theirs):
        our_tensor.copy_(their_tensor)
    return model


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _unpacked_bytes(raw: bytes) -> int:
    """The bytes the records of ``raw``, a file in ``torch.save``'s zip format, hold
    uncompressed, as its central directory declares them (torch allocates each record at its
    declared size and refuses data beyond it); ``0`` for anything else (the legacy format
    stores tensors uncompressed; a damaged file is torch.load's to report)."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            return unpacked_bytes(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError):
        return 0


#: How a file ``torch.save`` wrote begins: a zip archive (its format since torch 1.6), or a
#: pickle (protocol 2 or later: the legacy format).
_TORCH_FORMATS = (b"PK\x03\x04", b"\x80")


def load_torch_file(path: str | Path, *, max_bytes: int = MAX_TORCH_FILE_BYTES,
                    what: str = "a checkpoint") -> Any:
    """The object ``torch.save`` wrote to ``path``, read with ``torch.load(weights_only=True)``
    (tensors, numbers, strings, lists and dicts only: no code runs).

    The file is read whole first (:func:`nas._yaml.read_bounded`: a regular file of at most
    ``max_bytes`` bytes, so a FIFO, a device or a huge file is refused before any work), its
    records may hold at most ``max_bytes`` bytes uncompressed (torch reads deflated records:
    a 1 MB file inflating to gigabytes is refused from its central directory), and
    torch's warnings are silenced, so the only output is the error.

    Raises:
        ConfigError: one line naming the file: not a regular file, too large (packed or
            unpacked), or not ``what`` saved by ``torch.save`` (a pickle that would run code,
            a truncated or foreign file; whatever torch raises while decoding it).
    """
    from nas._yaml import read_bounded

    name = str(path)
    raw = read_bounded(path, limit=max_bytes, error=ConfigError)
    if not raw.startswith(_TORCH_FORMATS):
        start = f"starts with {raw[:12]!r}" if raw else "is empty"
        raise ConfigError(f"not {what} saved by torch.save: neither a zip archive (its format) nor a "
                          f"pickle (its legacy format); the file {start}", file=name)
    unpacked = _unpacked_bytes(raw)
    if unpacked > max_bytes:
        raise ConfigError(
            f"its records hold {unpacked:,} bytes uncompressed, more than {max_bytes:,} "
            "(a compression bomb?)", file=name,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": not one line
            return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"not {what} saved by torch.save (or it holds more than tensors, which "
            "weights_only loading refuses)", file=name,
        ) from None
    except Exception as error:  # noqa: BLE001 - any failure to decode is the file's
        reason = " ".join(str(error).split()).split(". ")[0][:200] or type(error).__name__  # its first sentence
        raise ConfigError(f"not {what} saved by torch.save: {reason}", file=name) from None


def _dtype_kind(tensor: torch.Tensor) -> str:
    """``"floating-point"``, ``"complex"``, ``"boolean"`` or ``"integer"``: dtypes of one kind
    copy into each other without losing what the values mean."""
    if tensor.is_floating_point():
        return "floating-point"
    if tensor.is_complex():
        return "complex"
    return "boolean" if tensor.dtype == torch.bool else "integer"


def _not_plain(tensor: torch.Tensor) -> str | None:
    """What makes ``tensor`` other than a dense tensor holding its values (``None``: nothing)."""
    if tensor.is_meta:
        return "a meta tensor (a shape without values)"
    if tensor.is_quantized:
        return "a quantized tensor"
    if tensor.layout != torch.strided:
        return f"a {str(tensor.layout).removeprefix('torch.')} tensor"
    return None


@torch.no_grad()
def check_tensors(state: Mapping[str, Any], *, file: str, path: str = "",
                  like: Mapping[str, torch.Tensor] | None = None) -> None:
    """Refuse a ``state_dict`` holding a tensor a model cannot take: not a dense tensor of
    values (sparse, meta, quantized: loading it, or reading its values, failed with
    'unexpected NotImplementedError'), of another kind of dtype than the tensor of the same
    key in ``like`` (the model's ``state_dict``: complex weights lost their imaginary part
    with a warning, integer or boolean weights loaded as numbers), a floating-point
    tensor holding NaN or an infinity, or a batch norm's ``running_var`` holding a negative
    value (both: a model that would only ever output NaN). ``path`` prefixes the key in the
    error.

    Values are read only once the shape is known to fit: a tensor of another shape than the
    one of its key in ``like`` (or, for a key ``like`` lacks, holding more elements than its
    storage: a view whose zero strides repeat one number, ``torch.zeros(1).expand(10**11)``,
    saves in a few bytes) is refused from its shape, so the work is bounded by the model and
    the file.

    Raises:
        ConfigError: naming ``file`` and the first such tensor's key.
    """
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        where = f"{path}{key}"
        problem = _not_plain(tensor)
        if problem is not None:
            raise ConfigError(f"is {problem}, not a dense tensor of values", file=file, path=where)
        own = like.get(key) if like is not None else None
        if isinstance(own, torch.Tensor) and own.shape != tensor.shape:
            raise ConfigError(f"has shape {tuple(tensor.shape)}; the model's tensor has "
                              f"{tuple(own.shape)}", file=file, path=where)
        stored = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
        if own is None and tensor.numel() > stored:
            raise ConfigError(f"holds {tensor.numel():,} elements over a storage of {stored:,} "
                              "(a view repeating its values), not a tensor of its own values",
                              file=file, path=where)
        if isinstance(own, torch.Tensor) and _dtype_kind(own) != _dtype_kind(tensor):
            raise ConfigError(
                f"holds {str(tensor.dtype).removeprefix('torch.')} values ({_dtype_kind(tensor)}); "
                f"the model's tensor holds {str(own.dtype).removeprefix('torch.')} "
                f"({_dtype_kind(own)})",
                file=file, path=where,
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ConfigError("holds NaN or infinite values", file=file, path=where)
        if key.rpartition(".")[2] == "running_var" and tensor.is_floating_point() and bool((tensor < 0).any()):
            raise ConfigError("holds a negative batch-norm variance (every output after it would be NaN)",
                              file=file, path=where)


@torch.no_grad()
def load_state_dict_file(model: nn.Module, path: str | Path, *, max_bytes: int) -> nn.Module:
    """Load the ``state_dict`` saved at ``path`` into ``model`` (every key, every shape).

    The file must be a regular file of at most ``max_bytes`` bytes; it is read with
    ``torch.load(weights_only=True)``, so no code runs. A training checkpoint (a dict whose
    ``"model"`` entry is the ``state_dict``) is accepted too. Returns ``model``.

    Raises :class:`ConfigError` (one line naming the file) when the file cannot be read or is
    not a ``state_dict``, when its keys or shapes differ from the model's (the first few
    missing, unexpected and mismatched keys are named), or when a tensor is not dense, of
    another kind of dtype than the model's, or holds NaN or an infinity
    (:func:`check_tensors`, naming its key).
    """
    name = str(path)
    state = load_torch_file(path, max_bytes=max_bytes, what="a state_dict")
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ConfigError("not a state_dict (expected a mapping of names to tensors)", file=name)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if mismatched:
        first = mismatched[0]
        problems.append(
            f"{len(mismatched)} shape mismatch(es), first {first}: file {tuple(state[first].shape)}, "
            f"model {tuple(own[first].shape)}"
        )
    if problems:
        raise ConfigError("does not match the genotype: " + "; ".join(problems), file=name)
    check_tensors(state, file=name, like=own)
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as error:  # e.g. a dtype that cannot be copied
        raise ConfigError(f"cannot load: {' '.join(str(error).split())[:200]}", file=name) from None
    return model
