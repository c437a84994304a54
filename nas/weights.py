"""Copy weights between a built genotype and a reference implementation (torchvision, timm).

Tensors are paired in order: ours in execution order of the genotype's graph (each module's
own parameters and buffers in registration order), theirs in ``state_dict`` order. Zoo
genotypes write their nodes in the reference's registration order, so the pairing is exact;
every pair must agree in shape, and the counts must match, or nothing is copied.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from nas.errors import NasError

__all__ = ["load_torchvision_weights", "genotype_tensors"]


def genotype_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` for every parameter and buffer of a built genotype, in execution
    order."""
    from nas.build import module_name

    graph = model.genotype.graph  # type: ignore[attr-defined]
    for node in graph.nodes:
        if graph.nodes[node]["op"] == "input":
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

    Raises :class:`nas.NasError` naming the first pair whose shapes differ, or the counts.
    """
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
