"""What a proxy sees: a seeded model that it may modify, its input batch and its genotype.

:class:`Network` builds the genotype's model once, under ``seed``, and hands every proxy a
model in exactly that initial state (:meth:`Network.fresh`), so proxies neither see each
other's changes nor depend on the order they run in. Random inputs come from
:meth:`Network.generator`, seeded too. A pass several proxies read is computed once
(:meth:`Network.shared`). Helpers here find the layers proxies read (weighted
layers, ReLUs, batch norms) by their torch module type: proxies are defined on torch modules,
whatever op produced them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nas.proxies._registry import Undefined

if TYPE_CHECKING:
    from nas.genotype import Genotype

__all__ = ["RANDOM_BATCH", "Network", "weighted_layers", "first_output", "hooks"]

#: Module types whose ``weight`` the pruning-at-init saliencies read (as the reference
#: implementations do: convolutions and fully connected layers).
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """Convolution and linear layers of ``model``, in registration order.

    Raises:
        Undefined: if there are none (a network without weights has no saliency).
    """
    layers = [m for m in model.modules() if isinstance(m, WEIGHTED)]
    if not layers:
        raise Undefined("the network has no convolution or linear weights")
    return layers


def first_output(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The (first) output of a model, which may return several."""
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def hooks(modules: list[nn.Module], hook) -> Iterator[None]:
    """Register ``hook`` as a forward hook on each module for the duration of the block."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


RANDOM_BATCH = 16
"""Random inputs a data-free proxy runs at once (zen's two batches of Gaussian images)."""


class Network:
    """A genotype's model at its seeded initial weights, with the batch proxies read.

    Args:
        genotype: The architecture.
        inputs: Float images ``[N, C, H, W]`` (normalised), or ``None`` when no proxy asked for
            needs data.
        targets: Integer labels ``[N]`` (or ``None``).
        seed: Seeds the weight initialisation and :meth:`generator`.
        device: Where the model and tensors live.
    """

    def __init__(self, genotype: Genotype, inputs: torch.Tensor | None, targets: torch.Tensor | None,
                 *, seed: int, device: torch.device):
        from nas.build import build_model

        self.genotype = genotype
        self.seed = seed
        self.device = device
        self.input_shape = tuple(genotype.input_shape)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            # In-place activations off: hooks read activations that autograd must not overwrite.
            model = build_model(genotype, inplace=False, prune=False)
        self._model = model.to(device)
        self._initial = copy.deepcopy(self._model.state_dict())
        self.inputs = None if inputs is None else inputs.to(device)
        self.targets = None if targets is None else targets.to(device)
        self._shared: dict[str, Any] = {}

    def shared(self, key: str, compute: Callable[[Network], Any]) -> Any:
        """``compute(self)``, computed once per network and kept under ``key``: a pass
        several proxies read (e.g. the gradients of the loss at the initial weights). Since
        every proxy starts from the same initial weights, sharing changes no score."""
        if key not in self._shared:
            self._shared[key] = compute(self)
        return self._shared[key]

    def fresh(self) -> nn.Module:
        """The model at its initial weights, in training mode, gradients cleared. Proxies may
        change it freely (the next call restores it)."""
        self._model.load_state_dict(self._initial)
        self._model.train()
        self._model.zero_grad(set_to_none=True)
        for p in self._model.parameters():
            p.requires_grad_(True)
        return self._model

    def copy(self) -> nn.Module:
        """A new model at the initial weights, in training mode (for proxies that change its
        structure or dtype); built again from the genotype."""
        from nas.build import build_model

        model = build_model(self.genotype, inplace=False, prune=False).to(self.device)
        model.load_state_dict(self._initial)
        return model

    def generator(self) -> torch.Generator:
        """A random generator on the network's device, seeded with the network's seed."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.seed)
        return generator

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The image batch and its labels.

        Raises:
            Undefined: if the score was asked for without data (callers check first).
        """
        if self.inputs is None or self.targets is None:
            raise Undefined("this proxy needs an image batch and none was given")
        return self.inputs, self.targets

    def gaussian(self, batch: int) -> torch.Tensor:
        """``batch`` standard normal inputs of the genotype's input shape (seeded)."""
        return torch.randn((batch, *self.input_shape), generator=self.generator(),
                           device=self.device)

    def depends_on_input(self) -> bool:
        """Whether the output changes with the input: two different inputs (two images of
        the batch, else two seeded Gaussian ones) through the model in evaluation mode give
        different outputs. False for a disconnected network, e.g. a cell whose output node is
        not reachable from its input."""
        model = self.fresh().eval()
        x = self.inputs[:2] if self.inputs is not None and len(self.inputs) >= 2 else self.gaussian(2)
        with torch.no_grad():
            out = first_output(model(x))
        return not torch.equal(out[0], out[1])
