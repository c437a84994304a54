"""The built-in primitives. Each class holds an op's schema, static rule and torch builder.

Torch is imported inside ``build`` methods only.
"""

from __future__ import annotations

import math
from typing import Any

from nas.errors import GenotypeError
from nas.ops._registry import (
    REQUIRED,
    Arg,
    Example,
    Op,
    OpInfo,
    Shape,
    make_activation,
    register,
)


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _same_padding(kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """Padding that keeps the size at stride 1: ``(k - 1) // 2 * d`` per dimension."""
    return tuple((k - 1) // 2 * d for k, d in zip(kernel, dilation))  # type: ignore[return-value]


def _feature_map(op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise GenotypeError(f"{op} needs a (C, H, W) input, got {_fmt(shape)}")
    return shape  # type: ignore[return-value]


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _window_out(
    op: str, size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """Output length of a convolution or pooling window, with torch's ceil_mode rule."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0:
        raise GenotypeError(
            f"{op}: kernel {kernel} (dilation {dilation}) does not fit an input of size "
            f"{size} with padding {padding}"
        )
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window must start inside the input or its left padding
    return out


def _spatial(
    op: Op, shape: Shape, kernel, stride, padding, dilation=1, ceil_mode=False
) -> tuple[int, int]:
    """Output height and width of ``op``'s sliding window; a pooling op (:attr:`Op.pooling`)
    may pad at most half its kernel, dilation left out (torch's rule: ``maxpool(3, d=2, p=2)``
    fails in its first forward)."""
    _, height, width = _feature_map(op.name, shape)
    k, s, p, d = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
    if op.pooling and any(pi * 2 > ki for pi, ki in zip(p, k)):
        raise GenotypeError(f"{op.name}: padding {padding} is more than half the kernel {kernel}")
    return (
        _window_out(op.name, height, k[0], s[0], p[0], d[0], ceil_mode),
        _window_out(op.name, width, k[1], s[1], p[1], d[1], ceil_mode),
    )


# --------------------------------------------------------------------------- convolutions


@register
class Conv(Op):
    """2-D convolution; same padding is ``(k-1)//2*d``; bias off when only batch norms read it.

    ``g`` groups (``g=cin`` is depthwise). ``bias`` left unset is derived by :meth:`resolve`:
    off when every reader of the output cancels a bias (:attr:`Op.cancels_bias`: batch norm),
    on otherwise (and on a network output)."""

    name = "conv"
    args = (
        Arg("c", "int", doc="output channels"),
        Arg("k", "size", 3, doc="kernel size"),
        Arg("s", "size", 1, doc="stride"),
        Arg("p", "padding", "same", doc="padding"),
        Arg("d", "size", 1, doc="dilation"),
        Arg("g", "int", 1, doc="groups"),
        Arg("bias", "bool", None, doc="learned bias; derived when unset", unset="derived"),
    )
    example = Example({"c": 8, "k": 3, "s": 2, "g": 2})
    overwritable = True

    def resolve(self, args, readers, output):
        if args["bias"] is not None:
            return None
        return {**args, "bias": output or not readers or not all(r.cancels_bias for r in readers)}

    @staticmethod
    def padding(args: dict[str, Any]) -> tuple[int, int]:
        if args["p"] == "same":
            return _same_padding(_pair(args["k"]), _pair(args["d"]))
        return _pair(args["p"])

    def infer(self, args, shapes):
        cin = _feature_map(self.name, shapes[0])[0]
        cout, groups = args["c"], args["g"]
        if cin % groups or cout % groups:
            raise GenotypeError(
                f"conv: {groups} groups do not divide {cin} input and {cout} output channels"
            )
        height, width = _spatial(self, shapes[0], args["k"], args["s"], self.padding(args), args["d"])
        kh, kw = _pair(args["k"])
        weights = cout * (cin // groups) * kh * kw
        bias = cout if args["bias"] else 0
        return OpInfo((cout, height, width), weights + bias, weights * height * width)

    def build(self, args, shapes, context):
        from torch import nn

        return nn.Conv2d(
            shapes[0][0], args["c"], _pair(args["k"]), _pair(args["s"]), self.padding(args),
            _pair(args["d"]), args["g"], bias=bool(args["bias"]),
        )


@register
class SeparableConv(Op):
    """Depthwise ``k x k`` convolution then a pointwise ``1 x 1`` one (Xception)."""

    name = "sepconv"
    args = (
        Arg("c", "int", doc="output channels"),
        Arg("k", "size", 3),
        Arg("s", "size", 1),
        Arg("p", "padding", "same"),
        Arg("d", "size", 1),
        Arg("bias", "bool", False),
    )
    example = Example({"c": 8, "k": 5, "d": 2})
    overwritable = True

    def infer(self, args, shapes):
        cin = _feature_map(self.name, shapes[0])[0]
        padding = Conv.padding(args)
        height, width = _spatial(self, shapes[0], args["k"], args["s"], padding, args["d"])
        kh, kw = _pair(args["k"])
        cout, bias = args["c"], args["bias"]
        depthwise = cin * kh * kw
        pointwise = cin * cout
        params = depthwise + pointwise + (cin + cout if bias else 0)
        return OpInfo((cout, height, width), params, (depthwise + pointwise) * height * width)

    def build(self, args, shapes, context):
        from nas.ops._modules import SeparableConv2d

        return SeparableConv2d(
            shapes[0][0], args["c"], _pair(args["k"]), _pair(args["s"]), Conv.padding(args),
            _pair(args["d"]), args["bias"],
        )


@register
class Linear(Op):
    """Fully connected layer; needs a vector: use ``gap`` or ``flatten`` first."""

    name = "linear"
    args = (Arg("c", "int", doc="output features"), Arg("bias", "bool", True))
    example = Example({"c": 3}, ((6,),))
    overwritable = True

    def infer(self, args, shapes):
        if len(shapes[0]) != 1:
            raise GenotypeError(f"linear needs a vector input, got {_fmt(shapes[0])}: add flatten or gap")
        cin, cout = shapes[0][0], args["c"]
        return OpInfo((cout,), cin * cout + (cout if args["bias"] else 0), cin * cout)

    def build(self, args, shapes, context):
        from torch import nn

        return nn.Linear(shapes[0][0], args["c"], bias=args["bias"])


# --------------------------------------------------------------------------- normalisation


@register
class BatchNorm(Op):
    """Batch normalisation (2-D on feature maps, 1-D on vectors).

    ``eps`` > 0 keeps the division by the standard deviation finite; ``momentum`` in [0, 1]
    weights the running statistics (torch's ``None``, a cumulative average, is not offered)."""

    name = "bn"
    args = (Arg("eps", "positive", 1e-5), Arg("momentum", "fraction", 0.1), Arg("affine", "bool", True))
    example = Example()
    overwritable = True
    cancels_bias = True

    def infer(self, args, shapes):
        return OpInfo(shapes[0], 2 * shapes[0][0] if args["affine"] else 0)

    def build(self, args, shapes, context):
        from torch import nn

        norm = nn.BatchNorm2d if len(shapes[0]) == 3 else nn.BatchNorm1d
        return norm(shapes[0][0], eps=args["eps"], momentum=args["momentum"], affine=args["affine"])


@register
class LocalResponseNorm(Op):
    """Local response normalisation across channels; torch's alpha is divided by size (AlexNet's 1e-4 is ``alpha=5e-4``).

    The divisor is ``(k + alpha/size * sum of squares) ** beta``: ``k`` > 0 and ``alpha`` >= 0
    keep its base positive (else a zero or negative base gives infinities or NaN). ``size`` is
    at most ``max(5, 2C - 1)`` for ``C`` input channels: a window of ``2C - 1`` spans every
    channel from each one, and torch pads the channels by ``size - 1`` in every forward (a size
    of 10**9 allocated hundreds of GB)."""

    name = "lrn"
    args = (
        Arg("size", "int", 5),
        Arg("alpha", "non_negative", 1e-4),
        Arg("beta", "float", 0.75),
        Arg("k", "positive", 2.0),
    )
    example = Example({"size": 3})

    def infer(self, args, shapes):
        channels = _feature_map(self.name, shapes[0])[0]
        widest = max(5, 2 * channels - 1)
        if args["size"] > widest:
            raise GenotypeError(f"lrn: size {args['size']} is more than max(5, 2C - 1) = {widest} for "
                                f"{channels} input channels (a window of 2C - 1 spans every channel)")
        return OpInfo(shapes[0])

    def build(self, args, shapes, context):
        from torch import nn

        return nn.LocalResponseNorm(args["size"], args["alpha"], args["beta"], args["k"])


# --------------------------------------------------------------------------- activations


class _Activation(Op):
    activation = True
    example = Example()
    module: str = ""

    def infer(self, args, shapes):
        return OpInfo(shapes[0])

    def build(self, args, shapes, context):
        from torch import nn

        cls = getattr(nn, self.module)
        kwargs = {k: v for k, v in args.items()}
        if self.inplace:
            kwargs["inplace"] = context.inplace
        return cls(**kwargs)


def _activation(
    name: str, module: str, inplace: bool, doc: str, args: tuple[Arg, ...] = (), example: Example | None = None
) -> None:
    cls = type(
        f"{module}Op",
        (_Activation,),
        {"name": name, "module": module, "inplace": inplace, "args": args, "__doc__": doc,
         **({"example": example} if example else {})},
    )
    register(cls)


_activation("relu", "ReLU", True, "max(x, 0).")
_activation("relu6", "ReLU6", True, "min(max(x, 0), 6) (MobileNetV2).")
_activation("silu", "SiLU", True, "x * sigmoid(x), also called swish (EfficientNet).")
_activation("hardswish", "Hardswish", True, "x * relu6(x + 3) / 6 (MobileNetV3).")
_activation("hardsigmoid", "Hardsigmoid", True, "relu6(x + 3) / 6 (MobileNetV3 gates).")
_activation("sigmoid", "Sigmoid", False, "1 / (1 + exp(-x)).")
_activation("tanh", "Tanh", False, "Hyperbolic tangent (LeNet-5).")
_activation("gelu", "GELU", False, "Gaussian error linear unit.")
_activation(
    "leaky_relu", "LeakyReLU", True, "max(x, negative_slope * x).",
    (Arg("negative_slope", "float", 0.01),), Example({"negative_slope": 0.2}),
)


# --------------------------------------------------------------------------- pooling


@register
class MaxPool(Op):
    """Max pooling; stride defaults to the kernel size, as in torch."""

    name = "maxpool"
    args = (
        Arg("k", "size"),
        Arg("s", "size", None, unset="k"),
        Arg("p", "padding", 0),
        Arg("d", "size", 1),
        Arg("ceil_mode", "bool", False),
    )
    example = Example({"k": 3, "s": 2, "p": 1, "ceil_mode": True})
    overwritable = True
    pooling = True

    def _padding(self, args):
        return Conv.padding(args) if args["p"] == "same" else _pair(args["p"])

    def infer(self, args, shapes):
        stride = args["s"] or args["k"]
        height, width = _spatial(self, shapes[0], args["k"], stride, self._padding(args), args["d"], args["ceil_mode"])
        return OpInfo((shapes[0][0], height, width))

    def build(self, args, shapes, context):
        from torch import nn

        return nn.MaxPool2d(
            _pair(args["k"]), _pair(args["s"] or args["k"]), self._padding(args),
            _pair(args["d"]), ceil_mode=args["ceil_mode"],
        )


@register
class AvgPool(Op):
    """Average pooling; stride defaults to the kernel size, as in torch."""

    name = "avgpool"
    args = (
        Arg("k", "size"),
        Arg("s", "size", None, unset="k"),
        Arg("p", "padding", 0),
        Arg("ceil_mode", "bool", False),
        Arg("count_include_pad", "bool", True),
    )
    example = Example({"k": 3, "s": 2, "p": 1, "count_include_pad": False})
    overwritable = True
    pooling = True

    def _padding(self, args):
        return _same_padding(_pair(args["k"]), (1, 1)) if args["p"] == "same" else _pair(args["p"])

    def infer(self, args, shapes):
        stride = args["s"] or args["k"]
        height, width = _spatial(self, shapes[0], args["k"], stride, self._padding(args), 1, args["ceil_mode"])
        return OpInfo((shapes[0][0], height, width))

    def build(self, args, shapes, context):
        from torch import nn

        return nn.AvgPool2d(
            _pair(args["k"]), _pair(args["s"] or args["k"]), self._padding(args),
            ceil_mode=args["ceil_mode"], count_include_pad=args["count_include_pad"],
        )


@register
class GlobalAvgPool(Op):
    """Global average pooling to a vector: ``(C, H, W) -> (C,)``."""

    name = "gap"
    example = Example()
    pooling = True

    def infer(self, args, shapes):
        return OpInfo((_feature_map(self.name, shapes[0])[0],))

    def build(self, args, shapes, context):
        from nas.ops._modules import GlobalAvgPool2d

        return GlobalAvgPool2d()


@register
class AdaptiveAvgPool(Op):
    """Adaptive average pooling to ``(C, size, size)`` (AlexNet's and VGG's 6x6 / 7x7)."""

    name = "adaptive_avgpool"
    args = (Arg("size", "size"),)
    example = Example({"size": 2})
    pooling = True

    def infer(self, args, shapes):
        channels = _feature_map(self.name, shapes[0])[0]
        return OpInfo((channels, *_pair(args["size"])))

    def build(self, args, shapes, context):
        """torch's module when the size divides the input's; else one ONNX can export
        (:class:`nas.ops._modules.AdaptiveAvgPool2d`), computing the same."""
        from torch import nn

        from nas.ops._modules import AdaptiveAvgPool2d

        size, (height, width) = _pair(args["size"]), _feature_map(self.name, shapes[0])[1:]
        if height % size[0] == 0 and width % size[1] == 0:
            return nn.AdaptiveAvgPool2d(size)
        return AdaptiveAvgPool2d(size, (height, width))


@register
class Flatten(Op):
    """``(C, H, W) -> (C * H * W,)``."""

    name = "flatten"
    example = Example()

    def infer(self, args, shapes):
        return OpInfo((math.prod(shapes[0]),))

    def build(self, args, shapes, context):
        from torch import nn

        return nn.Flatten(1)


# --------------------------------------------------------------------------- regularisation


@register
class Dropout(Op):
    """Dropout with probability ``p`` (identity in eval mode)."""

    name = "dropout"
    args = (Arg("p", "prob", 0.5),)
    example = Example({"p": 0.2})

    def infer(self, args, shapes):
        return OpInfo(shapes[0])

    def build(self, args, shapes, context):
        from torch import nn

        return nn.Dropout(args["p"])


@register
class DropPath(Op):
    """Stochastic depth: zero whole samples with probability ``p`` while training.

    Survivors are scaled by ``1 / (1 - p)`` (torchvision's ``StochasticDepth`` in ``row`` mode)."""

    name = "drop_path"
    args = (Arg("p", "prob", 0.0),)
    example = Example({"p": 0.2})

    def infer(self, args, shapes):
        return OpInfo(shapes[0])

    def build(self, args, shapes, context):
        from nas.ops._modules import DropPath as Module

        return Module(args["p"])


# --------------------------------------------------------------------------- wiring


@register
class Identity(Op):
    """Pass the input through."""

    name = "identity"
    aliases = ("skip",)
    example = Example()
    alias = True

    def infer(self, args, shapes):
        return OpInfo(shapes[0])

    def build(self, args, shapes, context):
        return None


@register
class Zero(Op):
    """Zeros shaped like the input, sub-sampled by stride ``s``, with ``c`` channels.

    The "none" edge of cells, and the zero padding of parameter-free shortcuts."""

    name = "zero"
    args = (Arg("s", "int", 1), Arg("c", "int", None, unset="input's"))
    example = Example({"s": 2})

    def infer(self, args, shapes):
        channels, height, width = _feature_map(self.name, shapes[0])
        s = args["s"]
        return OpInfo((args["c"] or channels, -(-height // s), -(-width // s)))

    def build(self, args, shapes, context):
        from nas.ops._modules import Zero as Module

        return Module(args["s"], args["c"] or shapes[0][0])


def _same_shapes(op: str, shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for other in shapes[1:]:
        if other != first:
            raise GenotypeError(f"{op}: inputs have shapes {_fmt(first)} and {_fmt(other)}")
    return first


@register
class Add(Op):
    """Element-wise sum of inputs of equal shape."""

    name = "add"
    min_inputs, max_inputs = 2, None
    example = Example(inputs=((4, 9, 9), (4, 9, 9)))
    inplace = True
    overwritable = True

    def infer(self, args, shapes):
        return OpInfo(_same_shapes(self.name, shapes))

    def build(self, args, shapes, context):
        from nas.ops._modules import Add as Module

        return Module(context.inplace)


@register
class Mean(Op):
    """Element-wise mean of inputs of equal shape."""

    name = "mean"
    min_inputs, max_inputs = 2, None
    example = Example(inputs=((4, 9, 9), (4, 9, 9), (4, 9, 9)))
    overwritable = True

    def infer(self, args, shapes):
        return OpInfo(_same_shapes(self.name, shapes))

    def build(self, args, shapes, context):
        from nas.ops._modules import Mean as Module

        return Module()


@register
class Join(Op):
    """FractalNet's join: the mean, each input dropped with probability ``p`` while training.

    Local drop-path: at least one input is always kept."""

    name = "join"
    args = (Arg("p", "prob", 0.0),)
    min_inputs, max_inputs = 2, None
    example = Example({"p": 0.5}, ((4, 9, 9), (4, 9, 9)))

    def infer(self, args, shapes):
        return OpInfo(_same_shapes(self.name, shapes))

    def build(self, args, shapes, context):
        from nas.ops._modules import Join as Module

        return Module(args["p"])


@register
class Multiply(Op):
    """Element-wise product; a ``(C, 1, 1)`` input gates every position of a ``(C, H, W)`` one."""

    name = "mul"
    aliases = ("multiply",)
    min_inputs, max_inputs = 2, None
    example = Example(inputs=((4, 9, 9), (4, 1, 1)))
    overwritable = True

    def infer(self, args, shapes):
        result = shapes[0]
        for shape in shapes[1:]:
            if shape == result:
                continue
            big, small = (result, shape) if len(result) == 3 and shape[1:] == (1, 1) else (shape, result)
            if not (len(big) == 3 and small == (big[0], 1, 1)):
                raise GenotypeError(f"mul: inputs have shapes {_fmt(result)} and {_fmt(shape)}")
            result = big
        return OpInfo(result)

    def build(self, args, shapes, context):
        from nas.ops._modules import Multiply as Module

        return Module()


@register
class Concat(Op):
    """Concatenation along channels; spatial sizes must agree."""

    name = "concat"
    min_inputs, max_inputs = 1, None
    commutative = False
    example = Example(inputs=((4, 9, 9), (2, 9, 9)))
    overwritable = True

    def infer(self, args, shapes):
        first = shapes[0]
        for other in shapes[1:]:
            if len(other) != len(first) or other[1:] != first[1:]:
                raise GenotypeError(
                    f"concat: inputs have shapes {_fmt(first)} and {_fmt(other)}; "
                    "all but the channels must agree"
                )
        return OpInfo((sum(s[0] for s in shapes), *first[1:]))

    def build(self, args, shapes, context):
        from nas.ops._modules import Concat as Module

        return Module()


@register
class Chunk(Op):
    """The ``i``-th of ``n`` equal channel groups (ShuffleNetV2's channel split)."""

    name = "chunk"
    args = (Arg("i", "int", REQUIRED, minimum=0), Arg("n", "int", 2))
    example = Example({"i": 1})

    def infer(self, args, shapes):
        channels = shapes[0][0]
        n, i = args["n"], args["i"]
        if channels % n:
            raise GenotypeError(f"chunk: {channels} channels do not split into {n} groups")
        if i >= n:
            raise GenotypeError(f"chunk: index {i} out of range for {n} groups")
        return OpInfo((channels // n, *shapes[0][1:]))

    def build(self, args, shapes, context):
        from nas.ops._modules import Chunk as Module

        return Module(args["n"], args["i"])


@register
class Crop(Op):
    """Drop ``t``, ``b``, ``l``, ``r`` rows and columns from the top, bottom, left and right.

    DARTS's FactorizedReduce reads the input shifted by one pixel: ``crop(t=1, l=1)``."""

    name = "crop"
    example = Example({"t": 1, "l": 2})
    args = (
        Arg("t", "int", 0, minimum=0),
        Arg("b", "int", 0, minimum=0),
        Arg("l", "int", 0, minimum=0),
        Arg("r", "int", 0, minimum=0),
    )

    def infer(self, args, shapes):
        channels, height, width = _feature_map(self.name, shapes[0])
        height -= args["t"] + args["b"]
        width -= args["l"] + args["r"]
        if height < 1 or width < 1:
            raise GenotypeError(f"crop: nothing is left of the {_fmt(shapes[0])} input")
        return OpInfo((channels, height, width))

    def build(self, args, shapes, context):
        from nas.ops._modules import Crop as Module

        _, height, width = shapes[0]
        return Module(args["t"], height - args["b"], args["l"], width - args["r"])


@register
class Scale(Op):
    """Multiply by a constant (residual scaling in Inception-ResNet)."""

    name = "scale"
    args = (Arg("f", "float"),)
    example = Example({"f": 0.5})
    overwritable = True

    def infer(self, args, shapes):
        return OpInfo(shapes[0])

    def build(self, args, shapes, context):
        from nas.ops._modules import Scale as Module

        return Module(args["f"])


@register
class ChannelShuffle(Op):
    """Interleave ``g`` channel groups (ShuffleNet's channel shuffle)."""

    name = "shuffle"
    args = (Arg("g", "int", 2),)
    example = Example({"g": 2})

    def infer(self, args, shapes):
        channels = _feature_map(self.name, shapes[0])[0]
        if channels % args["g"]:
            raise GenotypeError(f"shuffle: {args['g']} groups do not divide {channels} channels")
        return OpInfo(shapes[0])

    def build(self, args, shapes, context):
        from nas.ops._modules import ChannelShuffle as Module

        return Module(args["g"])


@register
class SqueezeExcite(Op):
    """Squeeze-and-excitation with ``sq`` squeeze channels; ``act`` and ``gate``: an op name or a callable.

    Average-pool, ``1x1`` conv to ``sq`` channels, ``act``, ``1x1`` conv back, ``gate``, and
    scale the input channel-wise. Both convs have a bias. From Python, ``act`` and ``gate`` may
    be callables that return a torch module (``torch.nn.Mish``)."""

    name = "se"
    args = (
        Arg("sq", "int", doc="squeeze channels"),
        Arg("act", "activation", "relu"),
        Arg("gate", "activation", "sigmoid"),
    )
    example = Example({"sq": 2, "act": "relu", "gate": "hardsigmoid"})

    def infer(self, args, shapes):
        channels = _feature_map(self.name, shapes[0])[0]
        squeeze = args["sq"]
        weights = 2 * channels * squeeze
        return OpInfo(shapes[0], weights + squeeze + channels, weights)

    def build(self, args, shapes, context):
        from nas.ops._modules import SqueezeExcite as Module

        channels, squeeze = shapes[0][0], args["sq"]
        act = make_activation(args["act"], (squeeze, 1, 1), inplace=True)
        return Module(channels, squeeze, act, make_activation(args["gate"], (channels, 1, 1), inplace=True))
