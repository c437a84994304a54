"""Scores of an untrained network's activations and input Jacobian: naswot, jacov, zen, meco.

They read what the network computes, not its weight gradients: ReLU activation patterns
(naswot), the Jacobian of the outputs with respect to the inputs (jacov), the response to a
small input perturbation (zen), the correlation of feature-map channels (meco).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.proxies._network import RANDOM_BATCH, Network, first_output, hooks, weighted_layers
from nas.proxies._registry import Undefined, register_proxy

__all__: list[str] = []


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not any(True for _ in m.children())]


@register_proxy("naswot", needs_data=True)
def naswot(net: Network) -> float:
    """NASWOT: log |K_H|, where K_H[i, j] = N_A - Hamming(c_i, c_j) and c_i is the binary
    pattern (active or not) of every ReLU unit for image i (Mellor et al., "Neural
    Architecture Search without Training", ICML 2021).

    ``N_A`` is the number of ReLU units; the model is in training mode (batch statistics), as
    in the authors' code. Undefined when the network has no ReLU or K_H is singular (two images
    with the same pattern, e.g. a disconnected network).
    """
    model = net.fresh()
    inputs, _ = net.batch()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise Undefined("the network has no ReLU activations")
    n = len(inputs)
    kernel = torch.zeros((n, n), dtype=torch.float64, device=net.device)

    def count(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        # float32 products are exact while a pattern has fewer than 2**24 units
        codes = (output.detach().reshape(n, -1) > 0).to(torch.float32)
        kernel.add_((codes @ codes.T + (1 - codes) @ (1 - codes).T).to(torch.float64))

    with hooks(relus, count), torch.no_grad():
        model(inputs)
    sign, logdet = torch.linalg.slogdet(kernel)
    if sign <= 0 or not math.isfinite(float(logdet)):
        raise Undefined("the activation-pattern kernel is singular (two images share a pattern)")
    return float(logdet)


@register_proxy("jacov", needs_data=True)
def jacov(net: Network) -> float:
    """Jacobian covariance: -sum_i (log(l_i + k) + 1 / (l_i + k)), k = 1e-5, over the
    eigenvalues l_i of the correlation matrix of the per-image input Jacobians
    J_n = d(sum of outputs for image n)/d(image n) (Mellor et al., "Neural Architecture Search
    without Training", arXiv:2006.04647v1, 2020; as implemented by Abdelfattah et al. 2021).

    Undefined when a Jacobian is constant (its correlation has no value), e.g. when the output
    does not depend on the input.
    """
    model = net.fresh()
    inputs, _ = net.batch()
    x = inputs.clone().requires_grad_(True)
    out = first_output(model(x))
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
    jacobians = grad.reshape(len(x), -1).to(torch.float64)
    corr = torch.corrcoef(jacobians)
    if not torch.isfinite(corr).all():
        raise Undefined("an input Jacobian is constant, so their correlation is undefined")
    values = torch.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-(torch.log(values + k) + 1.0 / (values + k)).sum())


@register_proxy("zen", needs_data=False)
def zen(net: Network) -> float:
    """Zen-score: log E_x ||f(x) - f(x + a e)||_1 + sum over batch norms of log sqrt(mean_c
    var_c), with x, e ~ N(0, 1), a = 0.01, f the last feature map before global pooling and
    var_c the batch variance of a batch norm's input channel c (Lin et al., "Zen-NAS: A
    Zero-Shot NAS for High-Performance Image Recognition", ICCV 2021).

    Following the authors' code: convolution and linear weights drawn from N(0, 1), batch-norm
    scales 1 and shifts 0, biases 0, training mode, a batch of 16 Gaussian inputs, the L1 norm
    per image averaged over the batch. ``f`` is the output of the last module with a spatial
    (at least 3-d) output. Batch norms whose input is identically zero (on a dead branch,
    e.g. after a ``none`` edge) are left out of the sum. Undefined without a spatial feature
    map.
    """
    model = net.fresh()
    generator = net.generator()
    with torch.no_grad():
        for m in weighted_layers(model):
            m.weight.copy_(torch.randn(m.weight.shape, generator=generator, device=net.device))
            if m.bias is not None:
                m.bias.zero_()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()
    shape = (RANDOM_BATCH, *net.input_shape)
    x = torch.randn(shape, generator=generator, device=net.device)
    x2 = x + 0.01 * torch.randn(shape, generator=generator, device=net.device)
    features: list[torch.Tensor] = []
    variances: list[torch.Tensor] = []
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def feature(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if isinstance(output, torch.Tensor) and output.dim() >= 3:
            features[:] = [output]  # keep only the latest: the last one is f

    def variance(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        a = args[0]
        if not a.any():  # a batch norm on a dead (identically zero) branch scales nothing
            return
        dims = [d for d in range(a.dim()) if d != 1]
        variances.append(a.var(dim=dims, unbiased=False).mean())

    with torch.no_grad():
        with hooks(_leaves(model), feature):
            model(x2)
            if not features:
                raise Undefined("the network has no spatial feature map")
            f2 = features[-1]
            features.clear()
            with hooks(norms, variance):
                model(x)
        f1 = features[-1]
    delta = (f1 - f2).abs().flatten(1).sum(1).mean()
    if delta <= 0:
        raise Undefined("the feature map does not respond to the input")
    return float(torch.log(delta) + sum(0.5 * torch.log(v) for v in variances))


@register_proxy("meco", needs_data=True)
def meco(net: Network) -> float:
    """MeCo: sum over modules of the minimum eigenvalue of the Pearson correlation matrix of
    the module's output channels for one image (Jiang, Wang and Bie, "MeCo: Zero-Shot NAS
    with One Data and Single Forward Pass via Minimum Eigenvalue of Correlation", NeurIPS
    2023).

    As in the authors' code: every leaf module with a spatial output, the first image of the
    batch alone (one forward pass, training mode), undefined correlations (a constant channel)
    set to 0, modules with one channel skipped. Undefined when a batch norm would see one value
    per channel (a vector, or a 1 x 1 map, of that one image), which training mode cannot
    normalise.
    """
    model = net.fresh()
    inputs, _ = net.batch()
    values: list[torch.Tensor] = []

    def one_value(module: nn.Module, args: tuple) -> None:
        # torch refuses it ("Expected more than 1 value per channel when training")
        if module.training and args[0].numel() == args[0].shape[1]:
            raise Undefined("a batch norm sees one value per channel of the one image MeCo reads")

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() < 3 or output.shape[1] < 2:
            return
        if output[0].numel() < 2 * output.shape[1]:  # one position: no correlation (its 0 adds nothing)
            return
        fea = output[0].detach().reshape(output.shape[1], -1).to(torch.float64)
        corr = torch.nan_to_num(torch.corrcoef(fea), nan=0.0, posinf=0.0, neginf=0.0)
        values.append(torch.linalg.eigvalsh(corr)[0])

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    handles = [m.register_forward_pre_hook(one_value) for m in norms]
    try:
        with hooks(_leaves(model), hook), torch.no_grad():
            model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    if not values:
        raise Undefined("the network has no module with a multi-channel spatial output")
    return float(sum(values))
