"""The residual and dense families of the zoo match their references.

Static figures (parameters, MACs) are checked at full size, which costs no torch. Models are
built at a small input (these networks end in global pooling, so parameter counts do not
depend on the input size), and where torchvision has the network, its random weights are
copied into ours and the eval-mode outputs compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import nas


@dataclass(frozen=True)
class Ref:
    """What a genotype must match.

    ``params`` is the reference implementation's exact count, or, where only a paper's rounded
    figure exists, our exact count (derived in the genotype's ``meta``) and ``paper`` the
    figure in millions as the paper prints it: our count must round to it.
    """

    params: int
    gflops: float | None = None
    paper: str | None = None


REFERENCES = {
    "resnet34": Ref(21_797_672, 3.664),
    "resnet50": Ref(25_557_032, 4.089),
    "resnet101": Ref(44_549_160, 7.801),
    "resnet152": Ref(60_192_808, 11.514),
    "densenet121": Ref(7_978_856, 2.834),
    "densenet_bc_100_k12": Ref(769_162, paper="0.8"),
}

# genotypes whose torchvision weights we copy and whose outputs we compare
TORCHVISION = ["resnet34", "resnet50", "densenet121"]

# genotypes built at a small input to check the built parameter count and one forward pass
BUILD_ONLY = ["resnet101", "resnet152", "densenet_bc_100_k12"]

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
    ref = REFERENCES[name]
    genotype = nas.load_genotype(name)
    assert nas.analyze(genotype).params == ref.params
    if ref.paper is None:
        assert genotype.meta["reference_params"] == ref.params
    else:
        decimals = len(ref.paper.partition(".")[2])
        assert f"{ref.params / 1e6:.{decimals}f}" == ref.paper
        assert genotype.meta["reference_params"] == round(float(ref.paper) * 1e6)


@pytest.mark.parametrize("name", sorted(n for n, ref in REFERENCES.items() if ref.gflops))
def test_macs_match_torchvision_gflops(name):
    gflops = REFERENCES[name].gflops
    genotype = nas.load_genotype(name)
    assert genotype.meta["reference_gflops"] == gflops
    macs = nas.analyze(genotype).macs
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
    genotype = nas.load_genotype(name)
    if genotype.input_shape[1] > SMALL[1]:
        genotype = genotype.with_input(SMALL)
    stats = nas.analyze(genotype)
    model = nas.build_model(genotype).eval()
    assert _count(model) == stats.params
    with torch.no_grad():
        out = model(torch.randn(1, *genotype.input_shape))
    assert tuple(out.shape[1:]) == stats.output_shape
