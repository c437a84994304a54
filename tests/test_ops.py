"""The op registry: every op against its own example (shape, parameters, MACs, gradients,
in-place equivalence), the behaviour it owns, the docs' table."""

from __future__ import annotations

from pathlib import Path

import pytest

import nas
from nas.cli import main
from nas.errors import GenotypeError
from nas.ops import BuildContext, Example, Op, OpInfo, check_op, get, names, ops, primitive_table, register
from nas.ops._table import BEGIN, END

README = Path(__file__).resolve().parents[1] / "genotypes" / "README.md"
EVERY_OP = list(ops())


@pytest.mark.parametrize("op", EVERY_OP, ids=lambda op: op.name)
def test_every_op_keeps_its_contract(op):
    """Built from its example, on the example's input shapes and variants of them: output
    shape, parameters and MACs (half the FLOPs torch's FlopCounterMode counts: convolutions
    and matrix products) as its static rule says, finite gradients, no module exactly for an
    alias, and an in-place build giving the same values and gradients (nas.ops.check_op, which
    `nas check-op` runs and plugin authors use)."""
    pytest.importorskip("torch")
    report = check_op(op)
    assert report.ok, "\n".join(report.lines())
    assert report.shapes[0].inputs == tuple(op.example.inputs)
    assert report.shapes[0].static is not None  # the example's own shapes are accepted


def test_activation_arguments_take_a_name_or_a_callable():
    torch = pytest.importorskip("torch")
    se = get("se")
    module = se.build(se.bind([4], {"act": torch.nn.Mish, "gate": "hardsigmoid"}), [(8, 5, 5)], BuildContext())
    assert isinstance(module.act, torch.nn.Mish) and isinstance(module.gate, torch.nn.Hardsigmoid)
    assert module(torch.randn(2, 8, 5, 5)).shape == (2, 8, 5, 5)
    with pytest.raises(GenotypeError, match=r"se: argument 'act' must be one of .*relu.*callable"):
        se.bind([4], {"act": "conv"})
    with pytest.raises(GenotypeError, match="argument 'gate'"):
        nas.analyze(nas.load_genotype("input: [8, 5, 5]\nnetwork:\n  - se(4, gate=3)\n"))


def test_behaviour_lives_on_the_op():
    assert get("bn").cancels_bias and not get("relu").cancels_bias
    assert get("maxpool").pooling and not get("conv").pooling
    assert get("skip").alias and get("relu").inplace and not get("relu").overwritable
    assert get("concat").joins and not get("relu").joins
    conv = get("conv")
    args = conv.bind([8], {})
    assert conv.resolve(args, [get("bn")], False)["bias"] is False
    assert conv.resolve(args, [get("bn"), get("relu")], False)["bias"] is True
    assert conv.resolve(args, [get("bn")], True)["bias"] is True  # a network output keeps its bias
    assert conv.resolve({**args, "bias": False}, [], True) is None


def test_a_plugin_op_declares_behaviour_instead_of_a_name():
    """An op registered from outside gets the built-ins' treatment through its attributes:
    here a norm that cancels a bias, so the convolution before it drops its own."""

    class Norm(Op):
        """A batch norm under another name."""

        name = "test_cancelling_norm"
        example = Example()
        cancels_bias = True

        def infer(self, args, shapes):
            return OpInfo(shapes[0], 2 * shapes[0][0])

    register(Norm)
    try:
        graph = nas.load_genotype("input: [3, 8, 8]\nnetwork: [conv(4), test_cancelling_norm, relu]\n").graph
        assert graph.nodes["conv0"]["args"]["bias"] is False
    finally:
        from nas.ops import _registry

        del _registry._REGISTRY["test_cancelling_norm"], _registry._CANONICAL["test_cancelling_norm"]


def test_register_refuses_an_op_without_an_example():
    class Bare(Op):
        name = "test_bare"

    with pytest.raises(ValueError, match="test_bare.*no example"):
        register(Bare)
    with pytest.raises(ValueError, match="already registered"):
        register(type(get("relu")))


@pytest.mark.parametrize("op", ["conv", None, int, lambda x: x])
def test_register_refuses_what_is_not_an_op(op):
    # Each was "an op name must be a string, got NoneType None" (and int was called).
    with pytest.raises(TypeError, match="^register takes an Op subclass or instance, got "):
        register(op)


def test_check_op_and_make_activation_refuse_arguments_of_another_type():
    from nas.ops import make_activation

    # check_op(None) failed with "'NoneType' object has no attribute 'name'",
    # make_activation(None, ...) with "'NoneType' object is not callable".
    with pytest.raises(TypeError, match="^op must be an op name or an Op instance, got NoneType$"):
        check_op(None)
    with pytest.raises(TypeError, match="^an activation is an op name or a callable making a module, got None$"):
        make_activation(None, (3, 4, 4))
    assert type(make_activation("relu", (3, 4, 4))).__name__ == "ReLU"


@pytest.mark.parametrize("name, error", [
    (5, TypeError), (None, TypeError), ("has space!", ValueError), ("", ValueError),
    ("x(y)", ValueError), ("a\nb", ValueError), ("Relu", ValueError), ("2x", ValueError),
    ("lambda", ValueError), ("repeat", ValueError), ("max", ValueError), ("cin", ValueError),
])
def test_register_refuses_a_name_a_genotype_cannot_call(name, error):
    class Bad(Op):
        example = get("relu").example

    Bad.name = name
    with pytest.raises(error, match="op name") as raised:
        register(Bad)
    assert "\n" not in str(raised.value)
    Bad.name, Bad.aliases = "test_good_name", ("bad alias",)
    with pytest.raises(ValueError, match="'bad alias' is not a lowercase identifier"):
        register(Bad)
    assert "test_good_name" not in names()


def test_the_language_names_ops_cannot_take_are_the_languages_own():
    from nas.genotype._expr import MATH_FUNCTIONS
    from nas.genotype._model import FORMS, RESERVED_NAMES
    from nas.ops._registry import LANGUAGE_NAMES, OP_NAME

    language = {*FORMS, *RESERVED_NAMES, *MATH_FUNCTIONS}
    assert LANGUAGE_NAMES == {name for name in language if OP_NAME.fullmatch(name) and name != "in"}


def test_an_argument_kind_is_a_known_name_or_a_kind():
    from nas.ops import Arg, Kind

    with pytest.raises(ValueError, match="unknown kind 'integer'"):
        Arg("c", "integer")
    even = Arg("c", Kind(lambda arg, v: isinstance(v, int) and v % 2 == 0, lambda arg: "an even integer"))
    assert even.check("op", 4) == 4
    with pytest.raises(GenotypeError, match="op: argument 'c' must be an even integer, got 3"):
        even.check("op", 3)


def test_a_float_argument_refuses_an_integer_a_float_cannot_hold():
    from nas.ops import Arg

    for kind in ("float", "positive", "fraction"):
        with pytest.raises(GenotypeError, match="op: argument 'x' must be a"):
            Arg("x", kind).check("op", 10**400)
    assert Arg("x", "float").check("op", 10**300) == 1e300


def test_pooling_padding_is_at_most_half_the_kernel():
    with pytest.raises(GenotypeError, match=r"maxpool: padding \(2, 2\) is more than half the kernel 3"):
        nas.analyze(nas.load_genotype("input: [3, 8, 8]\nnetwork:\n  - maxpool(3, p=2)\n"))
    nas.analyze(nas.load_genotype("input: [3, 8, 8]\nnetwork:\n  - conv(4, k=3, p=2)\n"))  # not a pooling


@pytest.mark.parametrize("call, message", [
    ("bn(eps=0)", "bn: argument 'eps' must be a finite number > 0, got 0"),
    ("bn(eps=-1, momentum=0.1)", "bn: argument 'eps' must be a finite number > 0, got -1"),
    ("bn(momentum=5)", r"bn: argument 'momentum' must be a number in \[0, 1\], got 5"),
    ("bn(momentum=-0.5)", r"bn: argument 'momentum' must be a number in \[0, 1\], got -0.5"),
    ("bn(momentum=None)", r"bn: argument 'momentum' must be a number in \[0, 1\], got None"),
    ("lrn(k=0)", "lrn: argument 'k' must be a finite number > 0, got 0"),
    ("lrn(alpha=-1)", "lrn: argument 'alpha' must be a finite number >= 0, got -1"),
])
def test_a_normalisation_refuses_an_epsilon_or_momentum_out_of_range(call, message):
    with pytest.raises(GenotypeError, match=message):
        nas.analyze(nas.load_genotype(f"input: [3, 8, 8]\nnetwork:\n  - {call}\n"))


@pytest.mark.parametrize("call", ["bn(eps=1e-3, momentum=0)", "bn(momentum=1)", "lrn(5, alpha=0, k=1)"])
def test_a_normalisation_takes_its_range_bounds(call):
    nas.analyze(nas.load_genotype(f"input: [3, 8, 8]\nnetwork:\n  - {call}\n"))


def test_the_docs_table_is_the_registry_table(capsys):
    text = README.read_text(encoding="utf-8")
    documented = text[text.index(BEGIN) + len(BEGIN) + 1 : text.index(END)]
    built_in = [op for op in ops(by_name=False) if type(op).__module__ == "nas.ops._primitives"]
    assert documented == primitive_table(built_in), (
        "genotypes/README.md's primitive table differs from the registry: replace the lines "
        "between its markers with the output of `nas ops`")
    assert main(["ops"]) == 0
    printed = capsys.readouterr().out
    assert printed == primitive_table()  # with any plugin ops other tests registered
    assert printed.startswith(documented)


def test_a_case_too_large_to_check_is_not_built():
    """conv(10**9) was built (an allocation of hundreds of GB, 'build raised RuntimeError') and
    conv(512) on (512, 256, 256) run, 154 G multiply-accumulates per sample: hours on a CPU.
    Cases beyond the bounds are reported from their static figures, not built."""
    pytest.importorskip("torch")
    report = check_op("conv", example=f"conv({10**9})", shapes=[(8, 9, 9)])
    assert report.shapes[0].too_large == "73,000,000,000 parameters, more than 25,000,000"
    assert report.shapes[0].measured is None and not report.ok
    assert report.problems == ("every input shape tried is refused or too large to check; pass "
                               "smaller shapes or arguments",)
    report = check_op("conv", example="conv(512)", shapes=[(512, 256, 256), (8, 9, 9)])
    assert report.shapes[0].too_large == "154,618,822,656 MACs per sample, more than 1,000,000,000"
    assert report.ok and report.shapes[1].measured is not None
    assert "not run, too large to check (154,618,822,656 MACs" in report.lines()[1]
