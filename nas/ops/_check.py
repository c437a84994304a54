"""The op contract, checked: an op's static rule against its torch module.

An op promises (see :mod:`nas.ops._registry`) that, for any input shapes its static rule
accepts, the module its builder returns

- takes a tensor (one input) or a list of tensors (several inputs) with a batch dimension in
  front of those shapes, and returns one tensor of the batch size and the shape
  :meth:`~nas.ops.Op.infer` derives, finite for finite inputs, with a finite gradient
  reaching every input;
- holds exactly the parameters that :meth:`~nas.ops.Op.infer` counts;
- costs, per sample, the multiply-accumulates that :meth:`~nas.ops.Op.infer` counts, as
  ``torch.utils.flop_counter`` counts the convolutions and matrix products it runs (halved:
  it counts a multiply-accumulate as two floating-point operations); normalisation,
  activations, pooling and element-wise ops cost nothing, as in the registry;
- is ``None`` (no module: the output is the input) exactly when the op is an
  :attr:`~nas.ops.Op.alias`;
- computes the same values and input gradients whether built to run in place or not
  (training mode, same random numbers).

:func:`check_op` builds an op from its example (:attr:`Op.example <nas.ops.Op>`: arguments and
input shapes, or a call given as text, ``"conv(8, k=3, s=2)"``) on the example's input shapes
and a few variants of them (more channels, larger feature maps), and reports every way the two
disagree. Shapes the static rule refuses (a :class:`~nas.errors.GenotypeError`) are skipped;
at least one must be accepted. Imports torch when called.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.errors import GenotypeError
from nas.ops._registry import BuildContext, Op, OpInfo, Shape, canonical_name, get

__all__ = ["DEFAULT_SHAPES", "OpCheck", "ShapeCheck", "check_op", "parse_example"]

#: Input shapes tried for an op without example shapes: feature maps of a few sizes (odd,
#: uneven, 1x1) and a vector; every input of a several-input op gets the same shape. Channel
#: counts are multiples of 8 so grouped and split ops accept them.
DEFAULT_SHAPES: tuple[Shape, ...] = ((8, 9, 9), (16, 12, 10), (24, 1, 1), (32,))

_BATCH = 2

#: The largest case :func:`check_op` builds and runs (per sample; two builds, forward and
#: backward at batch :data:`_BATCH`): ``conv(4096, k=3)`` on ``(4096, 64, 64)`` would need
#: 1.2 GB of weights and 618 G multiply-accumulates per sample, hours on a CPU.
_MAX_PARAMS = 25_000_000
_MAX_MACS = 1_000_000_000
_MAX_ELEMENTS = 16_000_000


@dataclass(frozen=True)
class ShapeCheck:
    """The check on one set of input shapes.

    ``static`` is what the static rule derived (``None`` when it refused the shapes, with the
    reason in ``refused``); ``too_large`` says why the case was not built (beyond the
    bounds of :func:`_too_large`); ``measured`` is what the torch module did (shape, params, MACs
    per sample); ``problems`` lists each disagreement in words (empty: the contract holds).
    """

    inputs: tuple[Shape, ...]
    static: OpInfo | None = None
    measured: OpInfo | None = None
    refused: str | None = None
    problems: tuple[str, ...] = ()
    too_large: str | None = None


@dataclass(frozen=True)
class OpCheck:
    """What :func:`check_op` found for one op."""

    op: str
    example: str
    args: dict[str, Any]
    shapes: tuple[ShapeCheck, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when every accepted shape kept the contract and at least one was accepted."""
        return not self.problems and not any(s.problems for s in self.shapes)

    def lines(self) -> list[str]:
        """A readable report, one line per input shape, then the verdict."""
        out = [f"{self.op}: {self.example}"]
        for check in self.shapes:
            inputs = " + ".join(_fmt(s) for s in check.inputs)
            if check.static is None:
                out.append(f"  {inputs}: refused by the static rule ({check.refused})")
                continue
            s = check.static
            verdict = "ok" if not check.problems else "; ".join(check.problems)
            verdict = f"not run, too large to check ({check.too_large})" if check.too_large else verdict
            out.append(f"  {inputs} -> {_fmt(s.shape)}, params {s.params:,}, MACs {s.macs:,}: {verdict}")
        out.extend(f"  {problem}" for problem in self.problems)
        out.append(f"{self.op}: {'keeps its contract' if self.ok else 'BREAKS its contract'}")
        return out


def _fmt(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def parse_example(op: Op, example: str) -> tuple[list[Any], dict[str, Any]]:
    """The positional and named arguments of ``example``: a call of the op (or one of its
    aliases) with literal arguments, ``"conv(8, k=3, s=2)"``, or the bare name.

    Raises:
        GenotypeError: ``example`` is not such a call.
    """
    where = f"{op.name}: example {example!r}"
    try:
        node = ast.parse(example.strip(), mode="eval").body
    except SyntaxError:
        raise GenotypeError(f"{where} is not a call like {op.name}(8, k=3)") from None
    call = node.func if isinstance(node, ast.Call) else node
    if not isinstance(call, ast.Name) or canonical_name(call.id) != op.name:
        raise GenotypeError(f"{where} does not call {op.name}")
    if not isinstance(node, ast.Call):
        return [], {}
    try:
        positional = [ast.literal_eval(arg) for arg in node.args]
        named = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
    except ValueError:
        raise GenotypeError(f"{where}: arguments must be literals (numbers, strings, lists)") from None
    if len(named) != len(node.keywords):
        raise GenotypeError(f"{where}: **arguments are not allowed")
    return positional, named


def _own_example(op: Op) -> tuple[dict[str, Any], tuple[Shape, ...] | None, str]:
    """``(arguments, input shapes or None, text)`` of the op's :attr:`example` (an object with
    ``args`` and ``inputs``), or of its bare name when it has none."""
    example = getattr(op, "example", None)
    if example is None:
        return {}, None, op.name
    args = dict(getattr(example, "args", {}) or {})
    inputs = tuple(tuple(shape) for shape in getattr(example, "inputs", ()) or ()) or None
    text = f"{op.name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"
    return args, inputs, text


def _variants(inputs: tuple[Shape, ...]) -> list[tuple[Shape, ...]]:
    """The example's input shapes, then with twice and three times the channels and with
    larger feature maps (sizes of 1, such as a gate's ``(C, 1, 1)``, kept)."""

    def grow(shape: Shape, channels: int, dh: int, dw: int) -> Shape:
        if len(shape) != 3:
            return (shape[0] * channels, *shape[1:])
        c, h, w = shape
        return (c * channels, h if h == 1 else h + dh, w if w == 1 else w + dw)

    out: list[tuple[Shape, ...]] = []
    for channels, dh, dw in ((1, 0, 0), (2, 0, 0), (1, 3, 6), (3, 7, 2)):
        variant = tuple(grow(shape, channels, dh, dw) for shape in inputs)
        if variant not in out:
            out.append(variant)
    return out


def _input_count(op: Op) -> int:
    """One input for single-input ops, else two (or the op's minimum, when larger)."""
    if op.max_inputs == 1:
        return 1
    return max(op.min_inputs, 2) if op.max_inputs is None else max(op.min_inputs, min(2, op.max_inputs))


def check_op(
    op: str | Op,
    *,
    example: str | None = None,
    shapes: Sequence[Shape] | None = None,
    seed: int = 0,
) -> OpCheck:
    """Check that an op's static rule agrees with its torch module (the contract in the
    module docstring).

    Args:
        op: A registered op name (or alias), or an :class:`~nas.ops.Op` instance.
        example: The call to check, e.g. ``"conv(8, k=3, s=2)"``; default the op's
            :attr:`example` (its arguments and input shapes).
        shapes: Input shapes without the batch dimension, each given to every input. Default:
            the example's input shapes and variants of them (:data:`DEFAULT_SHAPES` when the
            op has no example shapes).
        seed: Seeds the random inputs.

    Returns:
        An :class:`OpCheck`; ``.ok`` says whether the contract holds, ``.lines()`` says how.

    Raises:
        GenotypeError: an unknown op, or an ``example`` given here that is not a call of the
            op or that its schema refuses (the op's own example failing is a problem of the
            returned :class:`OpCheck`).
        TypeError: ``op`` is neither a name nor an :class:`~nas.ops.Op`.
    """
    import torch

    if not isinstance(op, (str, Op)):
        raise TypeError(f"op must be an op name or an Op instance, got {type(op).__name__}")
    instance = get(op) if isinstance(op, str) else op
    own_args, own_inputs, text = _own_example(instance)
    if example is not None:
        positional, named = parse_example(instance, example)
        args, text = instance.bind(positional, named), example
    else:
        try:
            args = instance.bind([], own_args)
        except GenotypeError as error:
            missing = "" if getattr(instance, "example", None) is not None else " (it has no example)"
            problem = f"its example is refused: {error.message}{missing}"
            return OpCheck(instance.name, text, {}, problems=(problem,))
    args = instance.resolve(args, [], True) or args  # arguments a reader decides: a network output's
    count = len(own_inputs) if own_inputs and example is None else _input_count(instance)
    if shapes is not None:
        cases = [tuple(tuple(shape) for _ in range(count)) for shape in shapes]
    elif own_inputs and example is None:
        cases = _variants(own_inputs)
    else:
        cases = [tuple(shape for _ in range(count)) for shape in DEFAULT_SHAPES]
    results = []
    generator = torch.Generator().manual_seed(seed)
    for inputs in cases:
        try:
            instance.check_inputs(len(inputs))
            static = instance.infer(dict(args), list(inputs))
        except GenotypeError as error:
            results.append(ShapeCheck(inputs, refused=error.message))
            continue
        except Exception as error:  # noqa: BLE001 - a plugin's rule may raise anything
            results.append(ShapeCheck(inputs, problems=(f"static rule raised {_describe(error)}",)))
            continue
        too_large = _too_large(static, inputs)
        results.append(ShapeCheck(inputs, static, too_large=too_large) if too_large
                       else _check_shape(instance, args, inputs, static, generator))
    problems: tuple[str, ...] = ()
    if results and all(r.refused for r in results):
        problems = ("the static rule refuses every input shape tried; pass shapes it accepts",)
    elif results and all(r.refused or r.too_large for r in results):
        problems = ("every input shape tried is refused or too large to check; pass smaller "
                    "shapes or arguments",)
    return OpCheck(instance.name, text, args, tuple(results), problems)


def _too_large(static: Any, inputs: tuple[Shape, ...]) -> str | None:
    """Why the case of ``inputs`` is too large to build and run, from its static figures
    (``None``: it is not): more than :data:`_MAX_PARAMS` parameters, :data:`_MAX_MACS`
    multiply-accumulates per sample, or :data:`_MAX_ELEMENTS` elements in an input or the
    output. A static rule's figures that are no numbers are :func:`_check_shape`'s to report."""
    import math

    if not isinstance(static, OpInfo):
        return None
    sizes = [math.prod(shape) for shape in (*inputs, tuple(static.shape))]
    for figure, value, limit in (("parameters", static.params, _MAX_PARAMS),
                                 ("MACs per sample", static.macs, _MAX_MACS),
                                 ("elements in a tensor", max(sizes), _MAX_ELEMENTS)):
        if isinstance(value, (int, float)) and value > limit:
            return f"{value:,} {figure}, more than {limit:,}"
    return None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


def _check_shape(op: Op, args: dict[str, Any], inputs: tuple[Shape, ...], static: OpInfo,
                 generator: Any) -> ShapeCheck:
    """Build, run forward and backward, and compare with ``static``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    problems: list[str] = []
    if not isinstance(static, OpInfo):
        return ShapeCheck(inputs, problems=(f"infer returned {type(static).__name__}, not OpInfo",))
    try:
        module = op.build(dict(args), list(inputs), BuildContext(inplace=False))
        in_place = op.build(dict(args), list(inputs), BuildContext(inplace=True))
    except Exception as error:  # noqa: BLE001
        return ShapeCheck(inputs, static, problems=(f"build raised {_describe(error)}",))
    if module is not None and not isinstance(module, torch.nn.Module):
        return ShapeCheck(inputs, static, problems=(f"build returned {type(module).__name__}, "
                                                    "not an nn.Module or None",))
    if module is None and len(inputs) != 1:
        return ShapeCheck(inputs, static, problems=("build returned None (identity) for several inputs",))
    if (module is None) != getattr(op, "alias", module is None):
        problems.append("build returned None (identity) but the op is not an alias" if module is None
                        else "the op is an alias (its output is its input) but build returned a module")
    xs = [torch.randn(_BATCH, *shape, generator=generator) for shape in inputs]
    leaves = [x.clone().requires_grad_(True) for x in xs]
    params = 0 if module is None else sum(p.numel() for p in module.parameters())
    if module is None:
        y, flops = leaves[0], 0
    else:
        module.train()
        try:
            with FlopCounterMode(display=False) as counter:
                y = module(leaves[0] if len(leaves) == 1 else list(leaves))
            flops = counter.get_total_flops()
        except Exception as error:  # noqa: BLE001
            return ShapeCheck(inputs, static, problems=(f"forward raised {_describe(error)}",))
    if not isinstance(y, torch.Tensor):
        return ShapeCheck(inputs, static, problems=(f"forward returned {type(y).__name__}, not a tensor",))
    shape = tuple(y.shape[1:])
    per_sample = 2 * _BATCH  # FLOPs per multiply-accumulate, times the batch
    measured = OpInfo(shape, params, flops // per_sample if flops % per_sample == 0 else flops / per_sample)
    if y.shape[:1] != (_BATCH,):
        problems.append(f"output batch {y.shape[0] if y.dim() else 'none'}, expected {_BATCH}")
    if shape != tuple(static.shape):
        problems.append(f"output shape {_fmt(shape)}, static rule says {_fmt(static.shape)}")
    if params != static.params:
        problems.append(f"{params:,} parameters, static rule says {static.params:,}")
    if measured.macs != static.macs:
        problems.append(f"{measured.macs:,} MACs per sample, static rule says {static.macs:,}")
    if not torch.isfinite(y).all():
        problems.append("output not finite")
    else:
        if y.requires_grad:
            y.float().square().sum().backward()
        if any(x.grad is None for x in leaves):
            problems.append("no gradient reaches an input")
        elif not all(bool(torch.isfinite(x.grad).all()) for x in leaves):
            problems.append("input gradient not finite")
    if module is not None and in_place is not None and not problems:
        problems.extend(_same_in_place(module, in_place, xs))
    return ShapeCheck(inputs, static, measured, problems=tuple(problems))


def _same_in_place(module: Any, in_place: Any, xs: list[Any]) -> list[str]:
    """The in-place build, given the same weights, inputs and random numbers, computes the
    same output and the same input gradients (in training mode: dropout draws its mask)."""
    import torch

    results = []
    try:
        in_place.load_state_dict(module.state_dict())
        for built in (module, in_place):
            built.train()
            leaves = [x.clone().requires_grad_(True) for x in xs]
            inputs = [leaf * 1.0 for leaf in leaves]  # not leaves: an in-place op overwrites them
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                out = built(inputs[0] if len(inputs) == 1 else inputs)
            out.float().square().sum().backward()
            results.append((out.detach(), [leaf.grad for leaf in leaves]))
    except Exception as error:  # noqa: BLE001
        return [f"the in-place build fails: {_describe(error)}"]
    (expected, expected_grads), (got, got_grads) = results

    def same(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is b
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-5, atol=1e-6))

    if not same(got, expected):
        return ["the in-place build computes something else"]
    if not all(same(a, b) for a, b in zip(got_grads, expected_grads)):
        return ["the in-place build gives other input gradients"]
    return []
