"""Save a genotype's model in a deployable format, chosen by the file suffix.

``.onnx`` (ONNX, dynamic batch), ``.pt`` (TorchScript, loads without this package),
``.pt2`` (``torch.export`` program, dynamic batch) and ``.pth`` (``state_dict`` only; load it
with ``torch.load(path, weights_only=True)``). Files are written atomically.

With a :class:`~nas.preprocessing.Preprocessing` (a trained model), the ONNX, TorchScript and
``.pt2`` graphs take images as users have them, float in [0, 1], NCHW, any batch, and apply
the training normalisation inside the graph; the class names and the normalisation go into
the ONNX ``metadata_props`` (keys ``nas.classes``, ``nas.mean``, ``nas.std``, ``nas.input``,
...) and into a JSON file next to the model (``model.onnx`` -> ``model.json``).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from nas.analysis import MAX_MEMORY
from nas.build import build_model
from nas.errors import ConfigError, NasError
from nas.genotype import Genotype
from nas.genotype._model import require_genotype
from nas.io import atomic_write_bytes
from nas.preprocessing import Normalized, Preprocessing

__all__ = ["export_model", "FORMATS"]

FORMATS = (".onnx", ".pt", ".pt2", ".pth")


def export_model(genotype: Genotype, path: str | Path, *, model: torch.nn.Module | None = None,
                 preprocessing: Preprocessing | None = None, max_memory: int = MAX_MEMORY) -> Path:
    """Build ``genotype`` (or take ``model``, built from it, e.g. trained) in eval mode and save
    it to ``path``; with ``preprocessing``, the graph normalises its [0, 1] input itself and
    ``path`` with suffix ``.json`` holds the preprocessing (see the module docstring).

    Raises:
        ConfigError: an unknown suffix, ``preprocessing`` for another input shape, or a
            ``model`` built from another network (its :attr:`Genotype.hash` differs: another
            architecture or input shape, which the export would describe wrongly), or the
            format's exporter cannot convert the model (a plugin's op TorchScript cannot
            compile: one line naming ``path``, the exporter's first line and the other
            formats; nothing is written).
        GenotypeError: the network needs more than ``max_memory`` bytes
            (:func:`nas.analysis.check_memory`).
        TypeError: ``genotype`` is not a Genotype or ``model`` not a torch module.
    """
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ConfigError(f"unknown model format '{path.suffix}' (use one of {', '.join(FORMATS)})", file=str(path))
    require_genotype(genotype)
    if model is not None and not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    built_from = getattr(model, "genotype", None)
    if isinstance(built_from, Genotype) and built_from.hash != genotype.hash:
        raise ConfigError(f"the model was built from another network than genotype {genotype.name!r} "
                          f"(hash {built_from.hash[:12]}, not {genotype.hash[:12]}; input "
                          f"{list(built_from.input_shape)}, not {list(genotype.input_shape)})", file=str(path))
    model = (model if model is not None else build_model(genotype, max_memory=max_memory)).eval()
    if preprocessing is not None:
        if tuple(preprocessing.input_shape) != tuple(genotype.input_shape):
            raise ConfigError(f"the preprocessing is for input {list(preprocessing.input_shape)}, the "
                              f"genotype takes {list(genotype.input_shape)}", file=str(path))
        if path.suffix != ".pth":
            model = Normalized(model, preprocessing).eval()
    try:
        data = _serialise(model, genotype, path.suffix, preprocessing)
    except (NasError, MemoryError, RecursionError):
        raise
    except Exception as error:  # noqa: BLE001 - an exporter refusing a module (a plugin's op)
        text = (str(error).strip().splitlines() or [""])[0][:200]
        others = ", ".join(f for f in FORMATS if f != path.suffix)
        raise ConfigError(f"the {_FORMAT_NAMES[path.suffix]} exporter cannot convert this model "
                          f"({type(error).__name__}{': ' + text if text else ''}); another format "
                          f"may work ({others})", file=str(path)) from None
    atomic_write_bytes(path, data)
    if preprocessing is not None:
        preprocessing.write(path.with_suffix(".json"), genotype=genotype.name,
                            normalisation="inside the graph (.onnx, .pt, .pt2); apply "
                            "(x - mean) / std yourself with the .pth state_dict")
    return path


_FORMAT_NAMES = {".onnx": "ONNX", ".pt": "TorchScript", ".pt2": "torch.export", ".pth": "state_dict"}


def _serialise(model: torch.nn.Module, genotype: Genotype, suffix: str,
               preprocessing: Preprocessing | None) -> bytes:
    """The bytes of ``model`` (in eval mode, built from ``genotype``) in the format of
    ``suffix``, the exporters' warnings silenced; whatever an exporter raises propagates."""
    example = torch.rand(2, *genotype.input_shape)  # batch 2: a batch of 1 would be specialised
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporters warn about deprecations that are not the user's
        if suffix == ".onnx":
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, input_names=["input"],
                output_names=[f"output{i}" if i else "output" for i in range(_outputs(genotype))],
                dynamic_axes={"input": {0: "batch"}},
            )
            if preprocessing is not None:
                buffer = _with_metadata(buffer.getvalue(), preprocessing.metadata())
        elif suffix == ".pt":
            torch.jit.save(torch.jit.script(model), buffer)
        elif suffix == ".pt2":
            batch = torch.export.Dim("batch", min=1, max=1 << 16)
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(program, buffer)
        else:
            torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def _with_metadata(data: bytes, props: dict[str, str]) -> io.BytesIO:
    import onnx

    proto = onnx.load_from_string(data)
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in props.items():
        entry = existing.get(key) or proto.metadata_props.add()
        entry.key, entry.value = key, value
    return io.BytesIO(proto.SerializeToString())


def _outputs(genotype: Genotype) -> int:
    return len(genotype.graph.graph["outputs"])
