"""The residual and dense families of the zoo match their references.

Static figures (parameters, MACs) are checked at full size, which costs no torch. Models are
built at a small input (these networks end in global pooling, so parameter counts do not
depend on the input size), and where torchvision has the network, its random weights are
copied into ours and the eval-mode outputs compared.
"""

from __future__ import annotations

import pytest

import nas

# name: (reference parameters, exact?, torchvision GFLOPS or None)
REFERENCES = {
    "resnet34": (21_797_672, True, 3.664),
    "resnet50": (25_557_032, True, 4.089),
    "resnet101": (44_549_160, True, 7.801),
    "resnet152": (60_192_808, True, 11.514),
}

# torchvision builder for each genotype whose weights we copy and whose outputs we compare
TORCHVISION = ["resnet34", "resnet50"]

# built at a small input only to check the built parameter count and one forward pass
BUILD_ONLY = ["resnet101", "resnet152"]

SMALL = (3, 32, 32)


@pytest.fixture(scope="module", autouse=True)
def _few_threads():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small inputs: threads cost more than they give
    yield
    torch.set_num_threads(threads)


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_static_parameters_match_the_reference(name):
    reference, exact, _ = REFERENCES[name]
    genotype = nas.load_genotype(name)
    assert genotype.meta["reference_params"] == reference
    stats = nas.analyze(genotype)
    if exact:
        assert stats.params == reference
    else:
        assert abs(stats.params - reference) <= 0.01 * reference, stats.params


@pytest.mark.parametrize("name", sorted(n for n, (_, _, gflops) in REFERENCES.items() if gflops))
def test_macs_match_torchvision_gflops(name):
    gflops = REFERENCES[name][2]
    macs = nas.analyze(nas.load_genotype(name)).macs
    assert abs(macs / 1e9 - gflops) <= 0.01 * gflops, macs


@pytest.mark.parametrize("name", TORCHVISION)
def test_outputs_match_torchvision_with_copied_weights(name):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    genotype = nas.load_genotype(name).with_input(SMALL)
    model = nas.build_model(genotype)
    reference = getattr(torchvision.models, name)()
    assert _count(model) == _count(reference) == nas.analyze(genotype).params
    nas.load_torchvision_weights(model, reference)
    model.eval()
    reference.eval()
    x = torch.randn(2, *SMALL)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", BUILD_ONLY)
def test_built_model_has_the_static_parameter_count(name):
    torch = pytest.importorskip("torch")
    genotype = nas.load_genotype(name).with_input(SMALL)
    stats = nas.analyze(genotype)
    model = nas.build_model(genotype).eval()
    assert _count(model) == stats.params
    with torch.no_grad():
        out = model(torch.randn(1, *SMALL))
    assert tuple(out.shape[1:]) == stats.output_shape
