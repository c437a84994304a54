"""Compound scaling (nas.scaling, nas scale, nas scale-search).

Static except the last tests: ``nas scale-search`` trains two candidates for one epoch on 200
digits, as the search engine's own tests do.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import nas
from nas.analysis import analyze
from nas.cli import main
from nas.errors import ConfigError, GenotypeError
from nas.scaling import family, family_table, load_scale_config, scale

# torchvision.models.efficientnet_b1..b7: (width_mult, depth_mult, resolution, params).
EFFICIENTNETS = {
    "b1": (1.0, 1.1, 240, 7_794_184),
    "b2": (1.1, 1.2, 260, 9_109_994),
    "b3": (1.2, 1.4, 300, 12_233_232),
    "b4": (1.4, 1.8, 380, 19_341_616),
    "b5": (1.6, 2.2, 456, 30_389_784),
    "b6": (1.8, 2.6, 528, 43_040_704),
    "b7": (2.0, 3.1, 600, 66_347_960),
}
B0_PARAMS = 5_288_548


@pytest.fixture(scope="module")
def b0() -> nas.Genotype:
    genotype = nas.load_genotype("efficientnet_b0")
    params = analyze(genotype).params
    # Scaling cannot match torchvision if the base does not (see test_zoo_mobile).
    assert params == B0_PARAMS, (
        f"genotypes/efficientnet_b0.yaml gives {params:,} params, not torchvision's {B0_PARAMS:,}")
    return genotype


# --------------------------------------------------------------------------- nas.scale


@pytest.mark.parametrize("name", EFFICIENTNETS)
def test_efficientnet_b1_to_b7_from_b0(b0, name):
    width, depth, size, params = EFFICIENTNETS[name]
    scaled = scale(b0, width=width, depth=depth)
    assert analyze(scaled).params == params
    assert scaled.input_shape == (3, 224, 224)
    assert scaled.meta["scaled"]["depth"] == depth and scaled.meta["scaled"]["width"] == width
    assert "reference_params" not in scaled.meta
    # The published resolutions are what one passes: exact with a divisor of 4 (260 and 300
    # are not multiples of 8), the nearest multiple of 8 with the default.
    assert scale(b0, resolution=size / 224, resolution_divisor=4).input_shape == (3, size, size)
    eight = scale(b0, resolution=size / 224).input_shape[1]
    assert eight % 8 == 0 and abs(eight - size) <= 4


def test_efficientnet_b1_matches_torchvision_model(b0):
    from torchvision.models import efficientnet_b1

    reference = sum(p.numel() for p in efficientnet_b1().parameters())
    assert analyze(scale(b0, width=1.0, depth=1.1)).params == reference == EFFICIENTNETS["b1"][3]


def test_macs_double_per_phi(b0):
    macs = [m.macs for m in family(b0, range(5))]
    for phi in range(1, 5):
        ratio = macs[phi] / macs[0]
        assert abs(ratio / 2 ** phi - 1) <= 0.25, (phi, ratio)


def test_phi_names_and_rounding(b0):
    scaled = scale(b0, phi=1)
    assert scaled.name == "efficientnet_b0@phi=1"
    assert scaled.input_shape == (3, 256, 256)                       # divisible(224 * 1.15, 8)
    assert scaled.params["depths"] == tuple(math.ceil(d * 1.2) for d in b0.params["depths"])
    assert scaled.params["widths"] == (32, 16, 24, 48, 88, 120, 208, 352, 1408)
    assert scaled.meta["scaled"] == {"from": "efficientnet_b0", "phi": 1, "alpha": 1.2, "beta": 1.1,
                                     "gamma": 1.15, "depth": 1.2, "width": 1.1, "resolution": 1.15}
    # Explicit multipliers win over phi; other coefficients appear in the name.
    assert scale(b0, phi=2, depth=1.0, width=1.0).params == b0.params
    assert scale(b0, phi=1, alpha=1.3).name == "efficientnet_b0@phi=1,alpha=1.3"
    # The dump loads back to an equal genotype.
    assert nas.load_genotype(scaled.dump()) == scaled


def test_phi_zero_and_unit_multipliers_are_the_identity(b0):
    scaled = scale(b0, phi=0)
    assert scaled.params == b0.params and scaled.input == b0.input


def test_resnet18_scales():
    base = nas.load_genotype("resnet18")
    scaled = scale(base, phi=2)
    assert scaled.params["depths"] == (3, 3, 3, 3)                  # ceil(2 * 1.44)
    assert scaled.params["width"] == 80                             # divisible(64 * 1.21, 8)
    assert scaled.input_shape == (3, 296, 296)
    assert 3 < analyze(scaled).macs / analyze(base).macs < 5


def test_mobilenet_v2_width_matches_torchvision():
    from torchvision.models import mobilenet_v2

    base = nas.load_genotype("mobilenet_v2")
    scaled = scale(base, width=1.4)
    reference = sum(p.numel() for p in mobilenet_v2(width_mult=1.4).parameters())
    assert analyze(scaled).params == reference
    deeper = scale(base, depth=1.5)
    assert deeper.params["depths"] == (2, 3, 5, 6, 5, 5, 2)


def test_searched_genotype_and_declared_resolution_param():
    text = """
name: searched
params: {c: [12, 20], n: 1, size: 30}
scaling: {depth: [n], width: [c], resolution: [size]}
input: [3, size, size]
network:
  - repeat(n, conv(c[0]))
  - conv(c[1], s=2)
  - gap
  - linear(10)
"""
    base = nas.load_genotype(text)
    scaled = scale(base, depth=2.5, width=1.5, resolution=2)
    assert scaled.params["n"] == 3
    assert scaled.params["c"] == (24, 32)          # divisible(18, 8): 16 is below 90% of 18
    assert scaled.params["size"] == 64 and scaled.input_shape == (3, 64, 64)


# --------------------------------------------------------------------------- errors


def test_no_scaling_declared():
    with pytest.raises(GenotypeError, match="declares no scaling"):
        scale(nas.load_genotype("alexnet"), phi=1)


def test_scaling_without_depth_declared_names_the_way_out():
    genotype = nas.load_genotype("mobilenet_v3_large")
    with pytest.raises(GenotypeError, match="no depth parameters.*depth=1"):
        scale(genotype, phi=1)
    assert scale(genotype, phi=1, depth=1).params != genotype.params


@pytest.mark.parametrize("options", [{"depth": 0}, {"width": -1.0}, {"resolution": float("nan")},
                                     {"phi": 1, "alpha": 0}, {"phi": 1e6},
                                     {"phi": 1, "width_divisor": 0}])
def test_bad_multipliers(options):
    with pytest.raises(ConfigError):
        scale(nas.load_genotype("resnet18"), **options)


@pytest.mark.parametrize("phi", [40, 200])
def test_huge_phi_exceeds_the_limits(phi):
    with pytest.raises(GenotypeError, match="over the limit"):
        scale(nas.load_genotype("resnet18"), phi=phi)


def test_huge_width_exceeds_the_parameter_limit():
    with pytest.raises(GenotypeError, match="invalid network"):
        scale(nas.load_genotype("resnet18"), width=500)


# --------------------------------------------------------------------------- nas scale


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and not captured.out, captured
    return lines[0]


@pytest.mark.parametrize("argv, fragment", [
    (["alexnet", "--phi", "1"], "declares no scaling"),
    (["resnet18", "--depth", "0"], "depth must be a multiplier in [0.001, 1000], got 0.0"),
    (["resnet18", "--width", "-2"], "width must be a multiplier in [0.001, 1000], got -2.0"),
    (["resnet18", "--width", "1e300"], "width must be a multiplier in [0.001, 1000], got 1e+300"),
    (["resnet18", "--width", "1e-300"], "width must be a multiplier in [0.001, 1000], got 1e-300"),
    (["resnet18", "--resolution", "1e-9"], "resolution must be a multiplier in [0.001, 1000], got 1e-09"),
    (["resnet18", "--alpha", "1e-300", "--phi", "1"], "alpha must be a multiplier in [0.001, 1000]"),
    (["resnet18", "--phi", "-1000"], "1.2**-1000 is not a usable depth multiplier"),
    (["resnet18", "--phi", "60"], "over the limit of 1,000"),
    (["resnet18", "--phi", "1e6"], "out of range"),
    (["resnet18"], "give --phi"),
    # a divisor is reported at its flag: 10**23 was named at the genotype's params.widths
    (["resnet18", "--phi", "1", "--width-divisor", str(10**23)],
     "--width-divisor: must be an integer in [1, 65536], got 100000000000000000000000"),
    (["resnet18", "--phi", "1", "--resolution-divisor", str(10**23)], "--resolution-divisor: must be"),
    (["resnet18", "--family", "1", "--width-divisor", "0"], "--width-divisor: must be"),
    (["resnet18", "--family", "3", "--phi", "1"], "--family"),
])
def test_cli_bad_input(capsys, argv, fragment):
    assert fragment in one_line_error(capsys, ["scale", *argv])


def test_cli_writes_the_scaled_genotype(tmp_path, capsys):
    out = tmp_path / "r18.yaml"
    assert main(["scale", "resnet18", "--phi", "1", "--out", str(out)]) == 0
    assert "resnet18@phi=1" in capsys.readouterr().out
    assert nas.load_genotype(out) == scale(nas.load_genotype("resnet18"), phi=1)


def test_cli_family(tmp_path, capsys):
    assert main(["scale", "mobilenet_v2", "--family", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "phi" in out and "GMACs" in out
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"mobilenet_v2_phi{k}.yaml" for k in range(4)]
    table = family_table(family(nas.load_genotype("mobilenet_v2"), range(4)))
    assert table in out


def test_cli_family_whose_folder_cannot_be_written_prints_only_the_error(tmp_path, capsys):
    # the table was printed, as for a family written, before the one-line error
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert main(["scale", "resnet20", "--family", "1", "--out", str(taken)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"{taken}: exists and is not a folder"


# --------------------------------------------------------------------------- nas scale-search

TINY = """
name: tiny
genotype: {genotype}
params: {{depths: [1, 1, 1], widths: [8, 16, 16]}}
dataset: {{name: digits, resolution: 8, subset: 200, val_subset: 100}}
train: {{epochs: 1, batch_size: 64, device: cpu}}
grid: {{alpha: [1.0, 2.0], beta: [1.0, 1.2], gamma: [1.0, 1.42]}}
tolerance: 0.05
width_divisor: 4
resolution_divisor: 4
family: 2
"""
RESNET_CIFAR = Path(__file__).resolve().parents[1] / "genotypes" / "search" / "resnet_cifar.yaml"


def tiny_config(tmp_path: Path, **replace: str) -> Path:
    text = TINY.format(genotype=RESNET_CIFAR)
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


def test_scale_search_config_grid(tmp_path):
    config = load_scale_config(tiny_config(tmp_path))
    # alpha * beta^2 * gamma^2 within 0.05 of 2: (1, 1, 1.42) and (2, 1, 1) only.
    assert [(c.alpha, c.beta, c.gamma) for c in config.candidates] == [(1.0, 1.0, 1.42), (2.0, 1.0, 1.0)]
    assert [config.candidate_resolution(c) for c in config.candidates] == [12, 8]


@pytest.mark.parametrize("replace, fragment", [
    ({"resolution: 8, ": ""}, "dataset.resolution"),
    ({"tolerance: 0.05": "target: 5.0\ntolerance: 0.05"}, "no grid point"),
    ({"alpha: [1.0, 2.0]": "alpha: [0.5, 2.0]"}, "grid.alpha"),
    ({"grid:": "gird:"}, "unknown key 'gird'"),
])
def test_scale_search_bad_config(tmp_path, capsys, replace, fragment):
    line = one_line_error(capsys, ["scale-search", str(tiny_config(tmp_path, **replace)),
                                   "--runs", str(tmp_path / "runs")])
    assert fragment in line


def test_scale_search_without_scaling_declared(tmp_path, capsys):
    path = tiny_config(tmp_path, **{str(RESNET_CIFAR): "alexnet",
                                    "params: {depths: [1, 1, 1], widths: [8, 16, 16]}": ""})
    assert "declares no depth" in one_line_error(capsys, ["scale-search", str(path)])


def test_scale_search_on_digits(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["scale-search", str(tiny_config(tmp_path)), "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "best: alpha" in out
    run = runs / "tiny"
    report = json.loads((run / "report.json").read_text())
    assert len(report["candidates"]) == 2
    for row in report["candidates"]:
        assert row["state"] == "complete" and 0 <= row["val_accuracy"] <= 1
        trial = run / row["run"] / "trials" / "0000"        # a nas search run folder
        metrics = json.loads((trial / "metrics.json").read_text())
        assert metrics["genotype"]["input"][1] == row["resolution"]
        assert (run / row["run"] / "run.json").is_file()
    best = report["best"]
    assert best["val_accuracy"] == max(r["val_accuracy"] for r in report["candidates"])
    assert [m["phi"] for m in report["family"]] == [0, 1, 2]
    for member in report["family"]:
        assert nas.load_genotype(run / member["file"]).name.startswith("resnet_cifar@phi=")
    assert "Best: alpha" in (run / "report.md").read_text()
    # The folder exists now: a second run needs --resume, which reuses both candidates.
    assert "--resume" in one_line_error(capsys, ["scale-search", str(tiny_config(tmp_path)),
                                                 "--runs", str(runs)])
    assert main(["scale-search", str(tiny_config(tmp_path)), "--runs", str(runs), "--resume"]) == 0
    again = json.loads((run / "report.json").read_text())
    assert again["best"] == report["best"]


@pytest.mark.parametrize("phis", [3, "12", None])
def test_family_refuses_phis_that_are_not_a_list_of_numbers(phis):
    # 3 failed as "'int' object is not iterable"; "12" made the members phi '1' and '2'
    with pytest.raises(TypeError, match="phis must be an iterable of numbers"):
        family(nas.load_genotype("resnet20"), phis)
