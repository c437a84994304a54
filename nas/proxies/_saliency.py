"""Pruning-at-initialisation saliencies, summed over every weight: snip, grad_norm, grasp,
fisher and synflow.

Each follows the reference implementation of Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS" (ICLR 2021, the ``foresight`` package): a saliency per weight of every
convolution and linear layer (fisher: per channel of their outputs), summed over the network.
``L`` is the cross-entropy of the untrained network on the given batch. snip, grad_norm,
fisher and grasp read the same backward pass of ``L`` (:func:`loss_gradients`), computed once
per network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nas.proxies._network import Network, first_output, hooks, weighted_layers
from nas.proxies._registry import register_proxy

__all__ = ["LossGradients", "loss_gradients"]


def _loss(model: nn.Module, net: Network) -> torch.Tensor:
    inputs, targets = net.batch()
    return F.cross_entropy(first_output(model(inputs)), targets)


def _total(terms: Iterable[torch.Tensor]) -> float:
    """The sum of scalar tensors as a float (0.0 for none), outside autograd."""
    with torch.no_grad():
        return float(sum((t.detach().double() for t in terms), torch.zeros((), dtype=torch.float64)))


@dataclass(frozen=True)
class LossGradients:
    """One backward pass of the loss at the initial weights.

    Attributes:
        weights: ``(weight, dL/dweight)`` of every convolution and linear layer whose weight
            the loss reaches (both detached).
        fisher: Per layer, the fisher saliency of its output channels, summed.
    """

    weights: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    fisher: tuple[torch.Tensor, ...]


def _compute_loss_gradients(net: Network) -> LossGradients:
    model = net.fresh()
    layers = weighted_layers(model)
    fisher: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not output.requires_grad:
            return
        act = output.detach()

        def on_grad(grad: torch.Tensor) -> None:
            g_nc = (act * grad).sum(dim=tuple(range(2, act.dim()))) if act.dim() > 2 else act * grad
            fisher.append(g_nc.pow(2).mean(0).mul(0.5).sum())

        output.register_hook(on_grad)

    with hooks(layers, keep):
        loss = _loss(model, net)
    loss.backward()
    weights = tuple((m.weight.detach(), m.weight.grad.detach()) for m in layers
                    if m.weight.grad is not None)
    return LossGradients(weights, tuple(fisher))


def loss_gradients(net: Network) -> LossGradients:
    """The backward pass of the cross-entropy on the batch, shared by the saliencies.

    Raises:
        Undefined: if the network has no convolution or linear weights.
    """
    return net.shared("loss_gradients", _compute_loss_gradients)


@register_proxy("snip", needs_data=True)
def snip(net: Network) -> float:
    """SNIP: sum over weights of |dL/dw * w| (Lee, Ajanthan and Torr, "SNIP: Single-shot
    Network Pruning based on Connection Sensitivity", ICLR 2019).

    ``L`` is the cross-entropy on the batch; the sum runs over the weights of every
    convolution and linear layer (biases excluded), as in Abdelfattah et al. 2021.
    """
    return _total((g * w).abs().sum() for w, g in loss_gradients(net).weights)


@register_proxy("grad_norm", needs_data=True)
def grad_norm(net: Network) -> float:
    """Gradient norm: sum over convolution and linear layers of the Euclidean norm of dL/dW
    (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021).

    ``L`` is the cross-entropy on the batch; one norm per layer's weight tensor, summed.
    """
    return _total(g.norm() for _, g in loss_gradients(net).weights)


@register_proxy("fisher", needs_data=True)
def fisher(net: Network) -> float:
    """Fisher: sum over channels c of every convolution and linear output of
    0.5 * mean_n (sum_hw a_nchw * dL/da_nchw)^2 (Theis et al., "Faster gaze prediction with
    dense networks and Fisher pruning", 2018; as a NAS proxy, Turner et al., "BlockSwap", ICLR
    2020).

    ``a`` is the layer's output activation, ``L`` the cross-entropy on the batch; the sum over
    ``h, w`` is dropped for linear layers (Abdelfattah et al. 2021's implementation).
    """
    return _total(loss_gradients(net).fisher)


@register_proxy("grasp", needs_data=True)
def grasp(net: Network) -> float:
    """GraSP: sum over weights of -(H g) * w, where g = dL/dw and H the Hessian of L (Wang,
    Zhang and Grosse, "Picking Winning Tickets Before Training by Preserving Gradient Flow",
    ICLR 2020).

    Computed as Abdelfattah et al. 2021 do: g from one backward pass, then ``H g`` as the
    gradient of ``sum(g_detached * dL/dw)`` from a second pass with a differentiable gradient
    (temperature 1); weights of convolution and linear layers that the loss reaches.
    """
    g = [grad for _, grad in loss_gradients(net).weights]
    model = net.fresh()
    weights = [m.weight for m in weighted_layers(model)]
    grads_f = torch.autograd.grad(_loss(model, net), weights, create_graph=True, allow_unused=True)
    live = [(w, gf) for w, gf in zip(weights, grads_f) if gf is not None]
    if not live:
        return 0.0
    z = sum((gi * gf).sum() for gi, (_, gf) in zip(g, live))
    hg = torch.autograd.grad(z, [w for w, _ in live], allow_unused=True)
    return _total((-w.detach() * h).sum() for (w, _), h in zip(live, hg) if h is not None)


@register_proxy("synflow", needs_data=False)
def synflow(net: Network) -> float:
    """SynFlow: sum over weights of |w * dR/dw|, with R the sum of the outputs of the network
    whose parameters are replaced by their absolute values, fed an all-ones input (Tanaka et
    al., "Pruning neural networks without any data by iteratively conserving synaptic flow",
    NeurIPS 2020).

    As Abdelfattah et al. 2021: batch normalisation removed (replaced by the identity), float64,
    one input of the genotype's shape, weights of convolution and linear layers, evaluation mode.
    For a bias-free chain of L linear layers this is ``L * 1^T |W_L| ... |W_1| 1``.
    """
    model = net.copy()
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, nn.Identity())
    model.double().eval()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    layers = weighted_layers(model)
    x = torch.ones((1, *net.input_shape), dtype=torch.float64, device=net.device)
    first_output(model(x)).sum().backward()
    return _total((m.weight * m.weight.grad).abs().sum() for m in layers if m.weight.grad is not None)
