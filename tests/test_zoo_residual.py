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
    "wide_resnet50_2": Ref(68_883_240, 11.398),
    "resnext50_32x4d": Ref(25_028_904, 4.23),
    "se_resnet50": Ref(28_088_024),
    "densenet121": Ref(7_978_856, 2.834),
    "resnet20": Ref(269_722, paper="0.27"),
    "resnet56": Ref(853_018, paper="0.85"),
    "resnet110": Ref(1_727_962, paper="1.7"),
    "resnet_sd": Ref(1_727_962, paper="1.7"),
    "preact_resnet": Ref(1_703_258, paper="1.7"),
    "wrn_28_10": Ref(36_479_194, paper="36.5"),
    "densenet_bc_100_k12": Ref(769_162, paper="0.8"),
    "fractalnet": Ref(33_714_314),
}

# genotypes whose torchvision weights we copy and whose outputs we compare
TORCHVISION = ["resnet34", "resnet50", "wide_resnet50_2", "resnext50_32x4d", "densenet121"]

# the rest: built at a small input (side length given) for the parameter count, forward and
# backward
BUILD_ONLY = {
    "resnet101": 32,
    "resnet152": 32,
    "se_resnet50": 32,
    "resnet20": 8,
    "resnet56": 8,
    "resnet110": 8,
    "resnet_sd": 8,
    "preact_resnet": 8,
    "wrn_28_10": 8,
    "densenet_bc_100_k12": 8,
    "fractalnet": 32,  # five 2x2 poolings
}

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


def _max_difference_with_copied_weights(name: str, reference) -> float:
    """Copy ``reference``'s (random) weights into the genotype ``name`` built at ``SMALL`` and
    return the largest difference of their eval-mode outputs."""
    import torch

    genotype = nas.load_genotype(name).with_input(SMALL)
    model = nas.build_model(genotype)
    assert _count(model) == _count(reference) == nas.analyze(genotype).params
    nas.load_torchvision_weights(model, reference)
    model.eval()
    reference.eval()
    x = torch.randn(2, *SMALL)
    with torch.no_grad():
        return (model(x) - reference(x)).abs().max().item()


@pytest.mark.parametrize("name", TORCHVISION)
def test_outputs_match_torchvision_with_copied_weights(name):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    assert _max_difference_with_copied_weights(name, getattr(torchvision.models, name)()) < 1e-5


def test_every_genotype_is_checked():
    assert set(TORCHVISION) | set(BUILD_ONLY) == set(REFERENCES)


@pytest.mark.parametrize("name", sorted(BUILD_ONLY))
def test_built_model_has_the_static_parameter_count_and_trains(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    side = BUILD_ONLY[name]
    genotype = nas.load_genotype(name).with_input((3, side, side))
    stats = nas.analyze(genotype)
    model = nas.build_model(genotype)
    assert _count(model) == stats.params
    out = model(torch.randn(2, 3, side, side))
    assert tuple(out.shape[1:]) == stats.output_shape
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_se_resnet50_matches_timm_with_copied_weights():
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    assert _max_difference_with_copied_weights("se_resnet50", timm.create_model("seresnet50")) < 1e-5


@pytest.mark.parametrize("c", [8, 6])  # doubling, and any other growth
def test_option_a_shortcut_subsamples_and_pads_with_zeros(c):
    torch = pytest.importorskip("torch")
    genotype = nas.load_genotype(
        "input: [4, 6, 6]\n"
        "imports: [lib/cifar_resnet.yaml]\n"
        "network:\n"
        f"  - pad_shortcut({c}, 2)\n"
    )
    assert nas.analyze(genotype).params == 0
    x = torch.randn(2, 4, 6, 6)
    expected = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, c - 4, 3, 3)], 1)
    assert torch.equal(nas.build_model(genotype)(x), expected)


@pytest.mark.parametrize("depths", [[18, 18, 18], [3, 4, 5]])
def test_stochastic_depth_decays_linearly_to_the_last_block(depths):
    stats = nas.analyze(nas.load_genotype("resnet_sd", depths=depths))
    drops = [node.args["p"] for node in stats.nodes if node.op == "drop_path"]
    blocks = sum(depths)
    assert drops == pytest.approx([0.5 * l / blocks for l in range(1, blocks + 1)])


@pytest.mark.parametrize("block, params", [("fractal2", 13_320_906), ("fractal4", 76_084_554)])
def test_fractal_columns_are_a_parameter(block, params):
    genotype = nas.load_genotype("fractalnet", block=block)
    assert nas.analyze(genotype).params == params
