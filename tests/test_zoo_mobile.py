"""The mobile family and the cell networks of the zoo: each genotype is its reference network.

Static figures need no torch; built models are checked at small inputs, and networks that
torchvision has are compared output for output after copying torchvision's (random) weights.
"""

from __future__ import annotations

import pytest

import nas

# name: (reference params, reference GFLOPS or None)
REFERENCES = {
    "mobilenet_v2": (3_504_872, 0.301),
}

# genotype -> torchvision builder, for the weight-copy check
TORCHVISION = {
    "mobilenet_v2": "mobilenet_v2",
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_static_figures_match_the_reference(name):
    genotype = nas.load_genotype(name)
    stats = nas.analyze(genotype)
    params, gflops = REFERENCES[name]
    assert genotype.meta["reference_params"] == params
    assert stats.params == params
    if gflops is not None:
        assert stats.macs / 1e9 == pytest.approx(gflops, rel=0.01)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_weights_give_the_same_outputs(name):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    genotype = nas.load_genotype(name).with_input((3, 64, 64))
    model = nas.build_model(genotype)
    reference = getattr(torchvision.models, TORCHVISION[name])()
    with torch.no_grad():
        for module in reference.modules():  # non-trivial normalisation statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    nas.load_torchvision_weights(model, reference)
    assert sum(p.numel() for p in model.parameters()) == nas.analyze(genotype).params
    model.eval()
    reference.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-5
