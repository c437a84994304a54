"""The package's face: ``nas --version``, ``nas.__version__``, ``dir(nas)``, ``py.typed``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import nas
from nas.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_from_the_checkout(capsys):
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert nas.__version__ == expected
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"nas {expected}"


def test_dir_shows_the_lazily_imported_names():
    names = dir(nas)
    for name in (*nas.__all__, "build_model", "analyze", "scale", "Stats", "__version__"):
        assert name in names
    assert (Path(nas.__file__).parent / "py.typed").is_file()


@pytest.mark.parametrize("value", [None, "resnet18", {"network": ["relu"]}, 3])
@pytest.mark.parametrize("call", [nas.analyze, nas.build_model, lambda g: nas.scale(g, phi=1)],
                         ids=["analyze", "build_model", "scale"])
def test_a_genotype_argument_that_is_not_a_genotype_is_a_type_error_naming_it(call, value):
    with pytest.raises(TypeError, match=rf"^genotype must be a nas.Genotype.*, got {type(value).__name__}$"):
        call(value)


@pytest.mark.parametrize("source", [None, 3, b"resnet18", ["resnet18"]])
def test_load_genotype_from_an_object_of_another_type_is_a_type_error(source):
    with pytest.raises(TypeError, match=rf"^source must be a path, YAML text, a zoo name or a mapping, "
                                        rf"got {type(source).__name__}$"):
        nas.load_genotype(source)


def test_load_genotype_of_a_genotype_says_it_is_one_already():
    with pytest.raises(TypeError, match="got Genotype$"):
        nas.load_genotype(nas.load_genotype("resnet18"))


@pytest.mark.parametrize("shape", ["332", "3,32,32", None, 32])
def test_with_input_refuses_a_shape_that_is_not_a_sequence(shape):
    # "332" was read as the expressions '3', '3', '2': an input of (3, 3, 2) without a word.
    with pytest.raises(TypeError, match=r"^shape must be a sequence of ints such as \(3, 32, 32\), got "):
        nas.load_genotype("resnet18").with_input(shape)


def test_load_torchvision_weights_names_arguments_of_the_wrong_kind():
    import torch

    ours = nas.build_model(nas.load_genotype("name: m\ninput: [4]\nnetwork: [linear(2)]"))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 2))
    # Swapped, they failed with "'Sequential' object has no attribute 'genotype'"; a path
    # as the reference with "'str' object has no attribute 'items'".
    with pytest.raises(TypeError, match="^model must be built by nas.build_model, got Sequential$"):
        nas.load_torchvision_weights(theirs, ours)
    with pytest.raises(TypeError, match="^reference must be a torch.nn.Module or a state_dict, got str$"):
        nas.load_torchvision_weights(ours, "resnet18.pth")
    assert nas.load_torchvision_weights(ours, theirs) is ours
    assert torch.equal(ours.state_dict()["linear0.weight"], theirs[0].weight)


def test_numpy_scalars_are_taken_as_the_python_numbers_they_equal():
    import numpy as np

    from nas.train import TrainConfig

    # Each was refused with a message denying it was a number: "params.width: expected a
    # number, string, boolean or list, got int64", "phi must be a finite number, got
    # np.float32(2.0)", "epochs: must be an integer in [1, 100000], got np.int64(3)".
    g = nas.load_genotype("resnet18", width=np.int64(8), depths=[np.int64(1)] * 4)
    assert g == nas.load_genotype("resnet18", width=8, depths=[1, 1, 1, 1])
    b0 = nas.load_genotype("efficientnet_b0")
    scaled = nas.scale(b0, phi=np.float32(2.0), width_divisor=np.int64(8))
    assert scaled.dump() == nas.scale(b0, phi=2.0, width_divisor=8).dump()
    assert TrainConfig(epochs=np.int64(3)).epochs == 3 and type(TrainConfig(epochs=np.int64(3)).epochs) is int
