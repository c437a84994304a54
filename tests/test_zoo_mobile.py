"""The mobile family and the cell networks of the zoo: each genotype is its reference network.

Static figures need no torch; built models are checked at small inputs, and networks that
torchvision has are compared output for output after copying torchvision's (random) weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import nas
from nas.genotype._expr import MATH_FUNCTIONS
from nas.nb201 import NB201_EDGE_PARAMS, CellError, nb201_arch, nb201_params

divisible = MATH_FUNCTIONS["divisible"]



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is much faster than several fighting for 2 cores."""
    try:
        import torch
    except ImportError:  # static tests still run
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# name: (reference params, reference GFLOPS as published or None)
REFERENCES = {
    "nb201": (1_531_546, None),  # every edge nor_conv_3x3; other cells below
    "darts_v2": (3_349_342, None),  # the DARTS repository's count (paper: 3.3M)
    "mobilenet_v1": (4_231_976, 0.569),  # the paper's 569M mult-adds
    "mobilenet_v2": (3_504_872, 0.301),
    "mobilenet_v3_large": (5_483_032, 0.217),
    "shufflenet_v2_x1_0": (2_278_604, 0.14),
    "efficientnet_b0": (5_288_548, 0.386),
}

# a small input each network accepts, for the build tests of networks that torchvision lacks
# (the others are built, run and compared with torchvision below)
SMALL_INPUT = {"mobilenet_v1": (3, 32, 32), "darts_v2": (3, 16, 16)}

# genotype -> torchvision builder, for the weight-copy check
TORCHVISION = {
    "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3_large": "mobilenet_v3_large",
    "shufflenet_v2_x1_0": "shufflenet_v2_x1_0",
    "efficientnet_b0": "efficientnet_b0",
}

# torchvision's EfficientNet-B1..B7: (width, depth) multipliers and parameter counts
EFFICIENTNETS = {
    "b1": (1.0, 1.1, 7_794_184),
    "b2": (1.1, 1.2, 9_109_994),
    "b3": (1.2, 1.4, 12_233_232),
    "b4": (1.4, 1.8, 19_341_616),
    "b5": (1.6, 2.2, 30_389_784),
    "b6": (1.8, 2.6, 43_040_704),
    "b7": (2.0, 3.1, 66_347_960),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_static_figures_match_the_reference(name):
    genotype = nas.load_genotype(name)
    stats = nas.analyze(genotype)
    params, gflops = REFERENCES[name]
    assert genotype.meta["reference_params"] == params
    assert stats.params == params
    if gflops is not None:
        # within 1%, or equal at the published precision (torchvision rounds 0.1449 to 0.14)
        decimals = len(repr(gflops).split(".")[1])
        assert abs(stats.macs / 1e9 - gflops) <= max(0.01 * gflops, 0.5 * 10**-decimals)


@pytest.mark.parametrize("name", sorted(SMALL_INPUT))
def test_builds_runs_forward_and_backward_at_a_small_size(name):
    torch = pytest.importorskip("torch")
    genotype = nas.load_genotype(name).with_input(SMALL_INPUT[name])
    stats = nas.analyze(genotype)
    model = nas.build_model(genotype)
    assert sum(p.numel() for p in model.parameters()) == stats.params
    out = model(torch.randn(2, *SMALL_INPUT[name]))
    assert tuple(out.shape[1:]) == stats.output_shape
    out.sum().backward()


def _randomise_batch_norms(model) -> None:
    """Non-trivial normalisation statistics and affine parameters, so a mispaired batch norm shows."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_weights_give_the_same_outputs(name):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    genotype = nas.load_genotype(name).with_input((3, 64, 64))
    model = nas.build_model(genotype)
    reference = getattr(torchvision.models, TORCHVISION[name])()
    _randomise_batch_norms(reference)
    nas.load_torchvision_weights(model, reference)
    assert sum(p.numel() for p in model.parameters()) == nas.analyze(genotype).params
    model.eval()
    reference.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-5


def _efficientnet(variant: str):
    """efficientnet_b0 compound-scaled to ``variant`` as torchvision scales it."""
    base = nas.load_genotype("efficientnet_b0")
    if variant == "b0":
        return base
    width, depth, _ = EFFICIENTNETS[variant]
    assert dict(base.scaling) == {"depth": ("depths",), "width": ("widths",)}
    return base.with_params(
        widths=[divisible(c * width, 8) for c in base.params["widths"]],
        depths=[math.ceil(n * depth) for n in base.params["depths"]],
    )


@pytest.mark.parametrize("variant", sorted(EFFICIENTNETS))
def test_efficientnet_b0_scales_to_torchvision_b1_to_b7(variant):
    assert nas.analyze(_efficientnet(variant)).params == EFFICIENTNETS[variant][2]


@pytest.mark.parametrize("variant", ["b0", "b3"])
def test_efficientnet_stochastic_depth_rates_are_torchvision_s(variant):
    torchvision = pytest.importorskip("torchvision")
    reference = getattr(torchvision.models, f"efficientnet_{variant}")()
    # torchvision gives every block a rate; only the blocks with a shortcut use it
    theirs = [m.stochastic_depth.p for m in reference.modules() if getattr(m, "use_res_connect", False)]
    graph = _efficientnet(variant).graph
    ours = [data["args"]["p"] for _, data in graph.nodes(data=True) if data["op"] == "drop_path"]
    assert ours == pytest.approx(theirs)


@pytest.mark.parametrize(
    ("name", "width", "params"),
    [
        ("mobilenet_v2", 1.4, 6_108_776),  # torchvision mobilenet_v2(width_mult=1.4)
        ("mobilenet_v3_large", 0.75, 3_377_576),  # torchvision mobilenet_v3_large(width_mult=0.75)
    ],
)
def test_width_scaling_matches_torchvision_width_mult(name, width, params):
    genotype = nas.load_genotype(name)
    scaled = genotype.with_params(
        **{p: [divisible(c * width, 8) for c in genotype.params[p]] for p in genotype.scaling["width"]}
    )
    assert nas.analyze(scaled).params == params


# ---------------------------------------------------------------------------- NAS-Bench-201

NB201_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
NB201_ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NB201_ALL_OPS = "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
NB201_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"


@pytest.mark.parametrize(("arch", "params"), [(NB201_EXAMPLE, 802_426), (NB201_ALL_CONV, 1_531_546)])
def test_nb201_parameter_counts(arch, params):
    genotype = nas.load_genotype("nb201", **nb201_params(arch))
    assert nas.analyze(genotype).params == params
    assert genotype.params["classes"] == 10


def test_nb201_defaults_are_the_all_conv_cell():
    genotype = nas.load_genotype("nb201")
    assert nb201_arch(genotype.params) == NB201_ALL_CONV
    assert genotype.meta["reference_params"] == nas.analyze(genotype).params == 1_531_546


def test_nb201_converter_round_trip():
    params = nb201_params(NB201_EXAMPLE)
    assert tuple(params) == NB201_EDGE_PARAMS
    assert params["node2_in1"] == "avg_pool_3x3" and params["node3_in2"] == "skip_connect"
    assert nb201_arch(params) == NB201_EXAMPLE
    assert nb201_arch({**params, "width": 16, "classes": 10}) == NB201_EXAMPLE
    genotype = nas.load_genotype("nb201", **params)
    assert nb201_arch(genotype.params) == NB201_EXAMPLE


@pytest.mark.parametrize(
    "bad", ["|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"]
)
def test_nb201_converter_rejects_bad_strings(bad):
    with pytest.raises(CellError):
        nb201_params(bad)
    with pytest.raises(CellError, match="node3_in2"):
        nb201_arch({"node1_in0": "none"})


@pytest.mark.skipif(not NB201_CSV.is_file(), reason=f"NAS-Bench-201 table absent: {NB201_CSV}")
def test_nb201_converter_round_trips_benchmark_cells():
    import csv

    with NB201_CSV.open() as handle:
        archs = [row["arch"] for index, row in enumerate(csv.DictReader(handle)) if index % 499 == 0]
    assert len(archs) > 30
    base = nas.load_genotype("nb201")
    for arch in archs:
        assert nb201_arch(nb201_params(arch)) == arch
        nas.analyze(base.with_params(**nb201_params(arch)))  # every cell expands


def test_nb201_builds_with_every_edge_op():
    torch = pytest.importorskip("torch")
    genotype = nas.load_genotype("nb201", **nb201_params(NB201_ALL_OPS)).with_input((3, 16, 16))
    ops = {data["op"] for _, data in genotype.graph.nodes(data=True)}
    assert {"zero", "avgpool", "identity", "conv"} <= ops
    model = nas.build_model(genotype)
    assert sum(p.numel() for p in model.parameters()) == nas.analyze(genotype).params
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 10)
    out.sum().backward()


# ---------------------------------------------------------------------------- DARTS


def test_darts_v2_auxiliary_head_is_an_optional_second_output():
    genotype = nas.load_genotype("darts_v2")
    assert nas.analyze(genotype).output_shapes == ((10,),)
    with_aux = genotype.with_params(auxiliary=True)
    stats = nas.analyze(with_aux)
    assert stats.output_shapes == ((10,), (10,))
    # AuxiliaryHeadCIFAR(576, 10): 1x1 conv to 128 + BN, 2x2 conv to 768 + BN, linear
    head = 576 * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * 10 + 10
    assert stats.params == 3_349_342 + head


def test_darts_v2_cells_follow_the_repository_layout():
    graph = nas.load_genotype("darts_v2").graph
    shapes = {n: d["shape"] for n, d in graph.nodes(data=True)}
    assert shapes["stem.1"] == (108, 32, 32)
    assert shapes["cell5.out"] == (144, 32, 32)
    assert shapes["cell6.out"] == (288, 16, 16)  # reductions at 20 // 3 and 2 * 20 // 3
    assert shapes["cell13.out"] == (576, 8, 8)
    assert shapes["cell19.out"] == (576, 8, 8)
    # after a reduction, s0 is twice the size of s1: factorized_reduce preprocesses it
    assert graph.nodes["cell7.preprocess0.conv_1"]["args"]["s"] == 2
    assert graph.nodes["cell8.preprocess0.conv0"]["args"]["s"] == 1


def _darts_network_cifar(C: int, genotype: dict):
    """The DARTS repository's NetworkCIFAR (cnn/model.py, cnn/operations.py), condensed:
    the same modules, registered in the same order, without drop-path and the auxiliary head."""
    import torch
    from torch import nn

    def sep_conv(c, stride):
        return nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
        )

    class FactorizedReduce(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.relu = nn.ReLU()
            self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
            self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
            self.bn = nn.BatchNorm2d(c_out)

        def forward(self, x):
            x = self.relu(x)
            return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))

    ops = {
        "sep_conv_3x3": sep_conv,
        "dil_conv_3x3": lambda c, stride: nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, 3, stride, 2, 2, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)),
        "max_pool_3x3": lambda c, stride: nn.MaxPool2d(3, stride=stride, padding=1),
        "skip_connect": lambda c, stride: nn.Identity() if stride == 1 else FactorizedReduce(c, c),
    }

    class Cell(nn.Module):
        def __init__(self, c_prev_prev, c_prev, c, reduction, reduction_prev):
            super().__init__()
            relu_conv_bn = lambda c_in: nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c))  # noqa: E731
            self.preprocess0 = FactorizedReduce(c_prev_prev, c) if reduction_prev else relu_conv_bn(c_prev_prev)
            self.preprocess1 = relu_conv_bn(c_prev)
            self.edges = genotype["reduce" if reduction else "normal"]
            self._ops = nn.ModuleList(ops[op](c, 2 if reduction and j < 2 else 1) for op, j in self.edges)

        def forward(self, s0, s1):
            states = [self.preprocess0(s0), self.preprocess1(s1)]
            for i in range(0, len(self._ops), 2):
                (_, a), (_, b) = self.edges[i : i + 2]
                states.append(self._ops[i](states[a]) + self._ops[i + 1](states[b]))
            return torch.cat(states[2:], dim=1)  # concat = [2, 3, 4, 5]

    class NetworkCIFAR(nn.Module):
        def __init__(self, layers=20, classes=10):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
            c_prev_prev, c_prev, c, reduction_prev = 3 * C, 3 * C, C, False
            self.cells = nn.ModuleList()
            for i in range(layers):
                reduction = i in (layers // 3, 2 * layers // 3)
                c = c * 2 if reduction else c
                self.cells.append(Cell(c_prev_prev, c_prev, c, reduction, reduction_prev))
                c_prev_prev, c_prev, reduction_prev = c_prev, 4 * c, reduction
            self.classifier = nn.Linear(c_prev, classes)

        def forward(self, x):
            s0 = s1 = self.stem(x)
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1)
            return self.classifier(s1.mean((2, 3)))

    return NetworkCIFAR()


DARTS_V2 = {  # the repository's genotypes.py
    "normal": [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
               ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
               ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
}


def test_darts_v2_outputs_match_the_repository_network():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = _darts_network_cifar(36, DARTS_V2)
    assert sum(p.numel() for p in reference.parameters()) == 3_349_342
    _randomise_batch_norms(reference)
    model = nas.build_model(nas.load_genotype("darts_v2").with_input((3, 16, 16)))
    nas.load_torchvision_weights(model, reference)
    model.eval()
    reference.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    # tight: without FactorizedReduce's one-pixel shift (crop) the outputs differ by 2e-5
    assert (ours - theirs).abs().max().item() < 1e-6
