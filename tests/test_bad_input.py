"""Malformed genotypes: exit status 2 and one line `FILE: node.path: problem`, one test per case."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nas.cli import main
from nas.errors import GenotypeError
from nas.genotype import load_genotype as nas_load

HEADER = "input: [3, 32, 32]\n"


def run_summary(tmp_path, capsys, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text))
    status = main(["summary", str(path)])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"{path}: ")
    assert "Traceback" not in captured.err
    return lines[0]


def check(tmp_path, capsys, text, *fragments):
    line = run_summary(tmp_path, capsys, text)
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_yaml_syntax_error(tmp_path, capsys):
    check(tmp_path, capsys, "network: [conv(8\nfoo: : bar\n", "invalid YAML", "line ")


def test_a_key_longer_than_yaml_allows(tmp_path, capsys):
    line = check(tmp_path, capsys, HEADER + f"network:\n  - {'a' * 3000}: relu\n", ": line 3: invalid YAML: ")
    assert line.endswith("(likely a key longer than 1,024 characters, which YAML does not allow)"), line
    line = check(tmp_path, capsys, HEADER + "network:\n  - a: b: relu\n", "mapping values are not allowed")
    assert "1,024" not in line


def test_python_tag(tmp_path, capsys):
    check(tmp_path, capsys, "network: !!python/object/apply:os.system ['true']\n", "tag", "not allowed")


@pytest.mark.parametrize(
    "value, message",
    [
        ("!!bool abc", "line 2: invalid YAML: !!bool cannot be 'abc'"),  # was KeyError
        ("!!timestamp abc", "line 2: invalid YAML: !!timestamp cannot be 'abc'"),  # was AttributeError
        ("!!timestamp 2001-13-45", "line 2: invalid YAML: !!timestamp cannot be '2001-13-45' (month must be"),
        ("!!int ''", "line 2: invalid YAML: !!int cannot be ''"),  # was IndexError
        ("!!float ''", "line 2: invalid YAML: !!float cannot be ''"),
        ("!!set [1]", "line 2: invalid YAML: expected a mapping node, but found sequence"),  # was TypeError
        ("!!map [relu]", "line 2: invalid YAML: expected a mapping node, but found sequence"),
    ],
)
def test_a_core_tag_on_a_value_it_cannot_take(tmp_path, capsys, value, message):
    # PyYAML's safe constructors raise KeyError, AttributeError, IndexError or TypeError there
    check(tmp_path, capsys, HEADER + f"params: {{a: {value}}}\nnetwork: [relu]\n", message)


def test_duplicate_key(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "params: {a: 1, a: 2}\nnetwork: [relu]\n", "duplicate key 'a'")


def test_yaml_alias(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "params: {a: &x [1, 2], b: *x}\nnetwork: [relu]\n", "aliases are not allowed")


def test_unknown_top_level_key(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "netwrok: [relu]\nnetwork: [relu]\n", "unknown key 'netwrok'", "valid:")


def test_unknown_op_lists_valid_names(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "network:\n  - convv(8)\n", ": convv0: 'convv' is not an op or block", "(ops: adaptive_avgpool, add,")


def test_unknown_op_as_bare_name(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "network:\n  - stem: relux\n", "stem: unknown name 'relux': not an argument, parameter, op or block")


def test_unknown_block_from_param(tmp_path, capsys):
    check(
        tmp_path, capsys,
        HEADER + "params: {block: basicc}\nnetwork:\n  - body: block(8)\n",
        "body:", "'block' is 'basicc', not an op or block",
    )


def test_missing_argument(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "network:\n  - stem: conv(k=3)\n", "stem: conv: missing argument 'c'")


def test_unknown_argument(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "network:\n  - stem: conv(8, kernel=3)\n", "unknown argument 'kernel'", "valid: c, k, s")


def test_ill_typed_argument(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "network:\n  - stem: conv(8, k='big')\n", "argument 'k' must be a positive integer")


def test_block_argument_missing(tmp_path, capsys):
    text = HEADER + """
blocks:
  unit: {args: {c: required}, nodes: [relu]}
network:
  - u: unit()
"""
    check(tmp_path, capsys, text, "u: unit: missing argument 'c'")


def test_add_shape_mismatch_names_both_shapes(tmp_path, capsys):
    text = HEADER + """
network:
  a: conv(8) <- in
  b: conv(16) <- in
  sum: add <- a, b
"""
    check(tmp_path, capsys, text, "sum: add: inputs have shapes (8, 32, 32) and (16, 32, 32)")


def test_concat_shape_mismatch(tmp_path, capsys):
    text = HEADER + """
network:
  a: conv(8) <- in
  b: conv(8, s=2) <- in
  cat: concat <- a, b
"""
    check(tmp_path, capsys, text, "cat: concat: inputs have shapes (8, 32, 32) and (8, 16, 16)")


def test_multiply_shape_mismatch(tmp_path, capsys):
    text = HEADER + """
network:
  a: conv(8) <- in
  b: conv(4) <- in
  gate: mul <- a, b
"""
    check(tmp_path, capsys, text, "gate: mul: inputs have shapes (8, 32, 32) and (4, 32, 32)")


def test_nested_error_path(tmp_path, capsys):
    text = HEADER + """
blocks:
  unit:
    args: {c: required}
    nodes:
      a: conv(c) <- in
      sum: add <- a, in
network:
  - stage: repeat(2, unit(8))
"""
    check(tmp_path, capsys, text, "stage.0.sum: add: inputs have shapes (8, 32, 32) and (3, 32, 32)")


@pytest.mark.parametrize("text, where", [
    ("network: [{c: 'conv(1%s)'}, gap]\n", "network.c"),
    ("network: [{c: 'conv(8 if 1%s > 1 else 4)'}, gap]\n", "network.c"),
    ("network: [{c: 'conv(ceil(1%s / 2))'}, gap]\n", "network.c"),
], ids=["argument", "comparison", "math function"])
def test_an_integer_beyond_float_range_is_one_line_naming_the_node(tmp_path, capsys, text, where):
    line = check(tmp_path, capsys, HEADER + text % ("0" * 310), f": {where}: ")
    assert line.endswith("constant 1000...(311 digits) is not a finite number within 2**53"), line


def test_an_integer_beyond_float_range_in_the_input_shape(tmp_path, capsys):
    check(tmp_path, capsys, f"input: [1, '1{'0' * 310}', 8]\nnetwork: [relu]\n",
          ": input[1]: ", "constant 1000...(311 digits)")


@pytest.mark.parametrize("value", ["[]", "[conv]", "0", "''"])
def test_a_library_whose_blocks_are_not_a_mapping(tmp_path, capsys, value):
    library = tmp_path / "lib.yaml"
    library.write_text(f"blocks: {value}\n")
    (tmp_path / "net.yaml").write_text(HEADER + "imports: [lib.yaml]\nnetwork: [relu]\n")
    assert main(["validate", str(tmp_path / "net.yaml")]) == 2
    line = capsys.readouterr().err.strip()
    assert line == f"{library}: blocks: 'blocks' must be a mapping of names to blocks", line


@pytest.mark.parametrize("name, message", [
    ('"a\\x1b[31mred"', "holds '\\x1b'"),
    ('"two\\nlines"', "holds '\\n'"),
    ('"abc\\u202edcba"', "holds '\\u202e'"),
    ('"x\\u2028y"', "holds '\\u2028'"),
    ("n" * 301, "longer than 300 characters"),
], ids=["escape", "newline", "bidi override", "line separator", "long"])
def test_a_genotype_name_is_one_printable_line(tmp_path, capsys, name, message):
    # printed as given by nas summary, nas graph and errors: a newline split the one line, an
    # escape sequence rewrote the terminal
    check(tmp_path, capsys, HEADER + f"name: {name}\nnetwork: [relu]\n", ": name: ", message)


@pytest.mark.parametrize("params", ['{s: "a\\x1b[2Jb"}', '{s: [ok, "two\\nlines"]}'], ids=["escape", "newline in a list"])
def test_a_text_parameter_is_one_printable_line(tmp_path, capsys, params):
    # printed as given in nas search's trial lines and nas best (name(s=...))
    check(tmp_path, capsys, HEADER + f"params: {params}\nnetwork: [relu]\n", "params.s: must be one line of printable text")


@pytest.mark.parametrize("scaling, message", [
    ("{depth: [s], width: [s]}", "scaling.width: parameter 's' is already scaled by depth"),
    ("{depth: [s, s]}", "scaling.depth: parameter 's' is listed twice"),
    ("{depth: [[s]]}", "scaling.depth: '['s']' is not a parameter"),
    ("{width: [{s: 1}]}", "scaling.width: '{'s': 1}' is not a parameter"),
], ids=["two ways", "twice", "a list", "a mapping"])
def test_scaling_names_each_parameter_once(tmp_path, capsys, scaling, message):
    # under depth and width, nas scale --depth 3 --width 4 gave s * 4 (the depth lost); a list
    # or mapping for a name was 'unexpected TypeError: unhashable type'
    text = HEADER + f"params: {{s: 2}}\nscaling: {scaling}\nnetwork: ['repeat(s, relu)']\n"
    check(tmp_path, capsys, text, message)


@pytest.mark.parametrize("meta", ["{1: a, b: c}", "{null: 1, a: 2}", "{true: 1}"])
def test_meta_keys_must_be_text(tmp_path, capsys, meta):
    # accepted, then the canonical YAML (nas scale --out, a search's genotype.yaml) sorted the
    # keys: "unexpected TypeError: '<' not supported between instances of 'str' and 'int'"
    check(tmp_path, capsys, HEADER + f"meta: {meta}\nnetwork: [relu]\n", "meta: a key must be text, got ")


@pytest.mark.parametrize("key, value, message", [
    ("blocks", "[]", "'blocks' must be a mapping of names to blocks"),
    ("imports", "{}", "'imports' must be a list of files"),
    ("imports", "0", "'imports' must be a list of files"),
])
def test_an_empty_section_of_the_wrong_type(tmp_path, capsys, key, value, message):
    check(tmp_path, capsys, HEADER + f"{key}: {value}\nnetwork: [relu]\n", f": {key}: {message}")


@pytest.mark.parametrize("call", ["maxpool(3, d=2, p=2)", "maxpool(2, d=2, p=2)", "maxpool([3, 1], d=3, p=[3, 0])"])
def test_a_dilated_max_pooling_pads_at_most_half_the_kernel_itself(tmp_path, capsys, call):
    # torch's rule is half the kernel, not of the dilated window: these passed every check and
    # failed in the first forward ('pad should be smaller than or equal to half of kernel size')
    check(tmp_path, capsys, HEADER + f"network: ['{call}']\n", "maxpool0: maxpool: padding", "is more than half the kernel")


def test_a_dilated_max_pooling_that_torch_runs_is_accepted():
    import torch

    from nas.build import build_model

    genotype = nas_load(HEADER + "network: ['maxpool(3, d=2, p=1)', 'maxpool([3, 2], d=[1, 3], p=[1, 1])']\n")
    assert build_model(genotype)(torch.zeros(2, 3, 32, 32)).shape[1:] == genotype.output_shape


def test_a_local_response_norm_window_is_at_most_what_its_channels_need(tmp_path, capsys):
    # torch pads the channels by size - 1 in every forward: lrn(size=1000000000) validated, then
    # nas score tried to allocate 512 GB (and a smaller size could take the machine's memory)
    check(tmp_path, capsys, HEADER + "network: ['lrn(size=1000000000)']\n",
          "lrn0: lrn: size 1000000000 is more than max(5, 2C - 1) = 5 for 3 input channels")
    check(tmp_path, capsys, HEADER + "network: ['conv(16)', 'lrn(32)']\n", "lrn0: lrn: size 32 is more than")
    nas_load(HEADER + "network: ['conv(16)', 'lrn(31)', 'conv(1)', lrn]\n")  # 2C - 1, and the default 5


def test_with_params_takes_a_subclass_of_a_plain_type_as_that_type():
    # an IntEnum, an int with its own repr, numpy.float64 in a list and numpy.str_ passed every
    # check, then dump() (the canonical YAML, equality, nas scale) raised yaml's RepresenterError
    import enum

    import numpy as np

    class Width(enum.IntEnum):
        NARROW = 8

    class Loud(int):
        def __repr__(self) -> str:
            return "loud"

    genotype = nas_load(HEADER + "params: {w: 8, l: [0.5], act: relu}\nnetwork: ['conv(w)', 'dropout(l[0])', act]\n")
    for key, value, plain in [("w", Width.NARROW, 8), ("w", Loud(8), 8), ("l", [np.float64(0.25)], (0.25,)),
                              ("act", np.str_("relu6"), "relu6")]:
        variant = genotype.with_params(**{key: value})
        assert variant.params[key] == plain and type(variant.params[key]) is type(plain)
        assert f"{key}: {plain if key != 'l' else '[0.25]'}" in variant.dump()
        assert variant.hash == genotype.with_params(**{key: plain}).hash


def test_a_mapping_s_params_are_taken_as_with_params_takes_them():
    # load_genotype(mapping) refused numpy.int64(8) ('expected a number ..., got int64') that
    # with_params took as 8
    import numpy as np

    text = HEADER + "params: {w: 8, l: [0.5]}\nnetwork: ['conv(w)', 'dropout(l[0])']\n"
    data = {"input": [3, 32, 32], "params": {"w": np.int64(8), "l": (np.float64(0.5),)},
            "network": ["conv(w)", "dropout(l[0])"]}
    genotype = nas_load(data)
    assert genotype.params == {"w": 8, "l": (0.5,)} and type(genotype.params["w"]) is int
    assert genotype.hash == nas_load(text).hash


def test_with_params_refuses_a_list_that_holds_itself():
    # was a RecursionError
    genotype = nas_load(HEADER + "params: {l: [1]}\nnetwork: [relu]\n")
    looped: list = [1]
    looped.append(looped)
    with pytest.raises(GenotypeError, match=r"params\.l: value nested too deeply"):
        genotype.with_params(l=looped)


@pytest.mark.parametrize("text, where", [
    ("blocks:\n  b:\n    inputs: [in, 1]\n    nodes: [relu]\nnetwork: [b]\n", "blocks.b.inputs: input 1 is not a valid name"),
    ("blocks:\n  b:\n    inputs: [x-y]\n    nodes: [relu]\nnetwork: [b]\n", "blocks.b.inputs: input 'x-y' is not a valid name"),
    ("outputs: [relu0, 1]\nnetwork: [relu]\n", "outputs: output 1 is not a valid name"),
    ("blocks:\n  2b: [relu]\nnetwork: [relu]\n", "blocks.2b: block name '2b' is not a valid name"),
])
def test_a_name_that_is_no_identifier_is_located_at_its_key(tmp_path, capsys, text, where):
    # were 'bad.yaml: input 1 is not a valid name', without the key path
    check(tmp_path, capsys, HEADER + text, f"bad.yaml: {where}")


def test_an_integer_given_to_a_float_argument_builds_and_exports(tmp_path, capsys, monkeypatch):
    # bn(momentum=0), lrn(k=1), dropout(0) and drop_path(0) validated, then the TorchScript
    # export failed ('batch_norm(...) float momentum'): their modules held ints
    monkeypatch.chdir(tmp_path)
    network = "['conv(4)', 'bn(eps=1, momentum=0)', 'lrn(3, alpha=0, k=1)', 'dropout(0)', 'drop_path(0)', gap]"
    (tmp_path / "net.yaml").write_text(HEADER + f"network: {network}\n")
    assert main(["decode", "net.yaml", "--out", "net.pt"]) == 0, capsys.readouterr().err
    genotype = nas_load(str(tmp_path / "net.yaml"))
    assert genotype.graph.nodes["bn0"]["args"]["momentum"] == 0  # the graph (and its hash) as written
    assert type(genotype.graph.nodes["bn0"]["args"]["momentum"]) is int


def test_meta_given_in_a_mapping_holds_yaml_data_only():
    # load_genotype(mapping) took any object in meta; dump() then raised yaml's RepresenterError
    # (or RecursionError for a list 5,000 deep)
    deep: list = [1]
    for _ in range(5000):
        deep = [deep]
    import numpy as np

    for value, message in [(object(), "meta.a: expected YAML data"), ({"b": {1, 2j}}, "meta.a: expected YAML data"),
                           ([np.float64(1.0)], "meta.a: expected YAML data .* got float64"),
                           (deep, "meta.a: nested deeper than 64 levels")]:
        with pytest.raises(GenotypeError, match=message):
            nas_load({"network": ["relu"], "meta": {"a": value}})
    import datetime

    data = {"when": datetime.date(2015, 12, 10), "blob": b"x", "tags": {"a"}, "n": [1, {"k": None}]}
    assert "when: 2015-12-10" in nas_load({"network": ["relu"], "meta": data}).dump()  # what YAML reads


def test_cycle(tmp_path, capsys):
    text = HEADER + """
network:
  a: relu <- c
  b: relu <- a
  c: relu <- b
"""
    check(tmp_path, capsys, text, "cycle: a -> b -> c -> a")


@pytest.mark.parametrize("imported", ["bad.yaml", "lib/b.yaml"], ids=["itself", "through a library"])
def test_a_genotype_imported_by_its_own_imports_is_an_import_cycle(tmp_path, capsys, monkeypatch, imported):
    # the genotype's own file, given as a relative path, was not on the import chain: read
    # again as a library, it was refused for its keys ("unknown key 'input' (valid: ...)")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "b.yaml").write_text("imports: [../bad.yaml]\nblocks: {x: [relu]}\n")
    (tmp_path / "bad.yaml").write_text(HEADER + f"imports: [{imported}]\nnetwork: [relu]\n")
    assert main(["summary", "bad.yaml"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("bad.yaml"), lines
    assert lines[0].startswith((f"{imported}: imports: import cycle: ",  # the file holding the import
                                f"{tmp_path / imported}: imports: import cycle: ")), lines


def test_input_naming_missing_node(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "network:\n  a: relu <- in\n  b: add <- a, ghost\n", "b: input 'ghost' does not exist")


def test_block_referencing_itself(tmp_path, capsys):
    text = HEADER + """
blocks:
  loop: {nodes: [relu, loop]}
network: [loop]
"""
    check(tmp_path, capsys, text, "blocks.loop: block references itself: loop -> loop")


def test_blocks_referencing_each_other(tmp_path, capsys):
    text = HEADER + """
blocks:
  ping: {nodes: [pong]}
  pong: {nodes: [ping]}
network: [ping]
"""
    check(tmp_path, capsys, text, "block references itself")


def test_self_reference_through_parameter(tmp_path, capsys):
    text = HEADER + """
params: {inner: wrap}
blocks:
  wrap:
    args: {f: required}
    nodes: [f(f)]
network:
  - w: wrap(inner)
"""
    check(tmp_path, capsys, text, "block references itself: wrap -> wrap")


def test_huge_repeat_fails_fast(tmp_path, capsys):
    start = time.perf_counter()
    check(tmp_path, capsys, HEADER + "network:\n  - r: repeat(10 ** 9, relu)\n", "repeat count 1000000000 exceeds the limit of 1000")
    assert time.perf_counter() - start < 60  # a guard against a hang, not a benchmark


def test_nested_repeats_hit_the_size_limit(tmp_path, capsys):
    text = HEADER + """
blocks:
  a: {nodes: ['repeat(1000, relu)']}
  b: {nodes: ['repeat(1000, a)']}
network:
  - r: repeat(1000, b)
"""
    check(tmp_path, capsys, text, "more than 50000 primitives")


def test_too_many_parameters(tmp_path, capsys):
    check(tmp_path, capsys, HEADER + "network:\n  - big: conv(2 ** 20, k=64)\n", "parameters (the size limit)")


@pytest.mark.parametrize(
    "expr, message",
    [
        ("conv(width.real)", "attributes are not allowed"),
        ("(lambda: relu)()", "lambdas are not allowed"),
        ("conv([c for c in [1]][0])", "comprehensions are not allowed"),
        ("open('x')", "'open' is not an op or block"),
    ],
)
def test_forbidden_expressions(tmp_path, capsys, expr, message):
    check(tmp_path, capsys, HEADER + f"params: {{width: 8}}\nnetwork:\n  - stem: \"{expr}\"\n", "stem:", message)


def test_with_params_unknown_parameter(tmp_path, capsys):
    path = tmp_path / "ok.yaml"
    path.write_text(HEADER + "params: {width: 8}\nnetwork: ['conv(width)']\n")
    assert main(["summary", str(path), "--set", "depth=3"]) == 2
    assert "unknown parameter 'depth' (parameters: width)" in capsys.readouterr().err


def test_subprocess_prints_one_line_and_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(HEADER + "network:\n  - stem: conv(8, k=0)\n")
    result = subprocess.run(
        [sys.executable, "-m", "nas", "summary", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: stem: conv: argument 'k' must be a positive integer or a pair [h, w], got 0"


@pytest.mark.parametrize("error", [RecursionError, MemoryError])
@pytest.mark.parametrize("command, runner", [
    (["train", "{input}", "--out", "{input}.out"], "nas.cli._train.run_train"),
    (["search", "{input}"], "nas.cli._search.run_search"),
    (["best", "{input}"], "nas.cli._search.run_best"),
    (["summary", "{input}"], "nas.cli._genotype.run_summary"),
    (["scale", "{input}"], "nas.cli._scaling.run_scale"),
], ids=lambda value: value[0] if isinstance(value, list) else None)
def test_an_exhausted_stack_or_memory_is_one_line_naming_the_input(tmp_path, capsys, monkeypatch, command,
                                                                      runner, error):
    # a limit the input checks did not foresee: whatever the command, the line names its input
    path = tmp_path / "input.yaml"

    def exhausted(args):
        raise error()

    monkeypatch.setattr(runner, exhausted)
    status = main([part.format(input=path) for part in command])
    assert status == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: input too large or nested too deeply to process ({error.__name__})"
    ]


@pytest.mark.parametrize("command", [
    ["train", "resnet20", "--epochs", "1", "--out", "{file}"],
    ["search", "quickstart", "--trials", "1", "--runs", "{file}"],
    ["graph", "resnet20", "--format", "dot", "--out", "{file}/resnet20.dot"],  # dot: no program needed
], ids=lambda command: command[0])
def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys, command):
    file = tmp_path / "taken"
    file.write_text("not a folder")
    status = main([part.format(file=file) for part in command])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and str(file) in lines[0], lines
    assert "exists and is not a folder" in lines[0] or "is a file, not a folder" in lines[0]
    assert file.read_text() == "not a folder"


@pytest.mark.parametrize("command", [
    ["graph", "nb201", "--format", "mermaid", "--out", "{out}"],
    ["scale", "resnet20", "--phi", "1", "--out", "{out}"],
    ["decode", "lenet5", "--out", "{out}"],
], ids=lambda command: command[0])
def test_an_output_file_written_as_a_folder_is_refused(tmp_path, capsys, command):
    # Path() drops a trailing '/': --out model.onnx/ wrote the file model.onnx
    out = f"{tmp_path}/model.onnx/"
    status = main([part.format(out=out) for part in command])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and lines == [f"--out: '{out}' names a folder (it ends in '/'); give a file name"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["graph", "nb201", "--format", "mermaid", "--out", "{out}"],
    ["scale", "resnet20", "--phi", "1", "--out", "{out}"],
], ids=lambda command: command[0])
@pytest.mark.parametrize("where", ["folder", "proc", "fifo", "link to fifo"])
def test_an_output_file_that_cannot_be_written_is_one_line_naming_it(tmp_path, capsys, command, where):
    # atomic writes once named their temporary file ('.x.yaml.ca06_z9z.tmp') instead of --out,
    # and replaced a FIFO or device with a regular file (as root, --out /dev/full replaced the device)
    out = Path("/proc/nas-test.yaml") if where == "proc" else tmp_path / "taken"
    if where == "folder":
        out.mkdir()
    elif where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    elif where == "fifo":
        os.mkfifo(out)
    elif where == "link to fifo":
        os.mkfifo(tmp_path / "fifo")
        out.symlink_to("fifo")
    status = main([part.format(out=out) for part in command])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith(f"{out}: "), lines
    assert ".tmp" not in lines[0]
    if where.endswith("fifo"):
        assert "not a regular file" in lines[0] and stat.S_ISFIFO(os.stat(out).st_mode)
    assert sorted(tmp_path.iterdir()) == sorted({"folder": [out], "proc": [], "fifo": [out],
                                                 "link to fifo": [out, tmp_path / "fifo"]}[where])


@pytest.mark.parametrize("command", [
    ["score", "lenet5"], ["decode", "lenet5", "--out", "{tmp}/model.pth"],
    ["train", "lenet5", "--out", "{tmp}/out"], ["search", "quickstart", "--runs", "{tmp}/runs"],
], ids=lambda command: command[0])
@pytest.mark.parametrize("seed", ["-1", str(2**32), "1.5"])
def test_every_seed_flag_is_checked_alike(tmp_path, capsys, command, seed):
    # nas score once took --seed -1 that nas decode refused
    with pytest.raises(SystemExit) as exit_:
        main([part.format(tmp=tmp_path) for part in command] + ["--seed", seed])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"nas {command[0]}: argument --seed: must be an integer"), lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [ValueError("embedded null byte"), TypeError("a\nb"), AssertionError()])
def test_any_unforeseen_exception_is_one_line_naming_the_input(tmp_path, capsys, monkeypatch, error):
    # the class of inputs no check foresaw: never a traceback; NAS_DEBUG=1 re-raises
    path = tmp_path / "input.yaml"

    def fails(args):
        raise error

    monkeypatch.setattr("nas.cli._genotype.run_summary", fails)
    monkeypatch.delenv("NAS_DEBUG", raising=False)
    assert main(["summary", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: unexpected {type(error).__name__}")
    assert "NAS_DEBUG=1" in lines[0]
    monkeypatch.setenv("NAS_DEBUG", "1")
    with pytest.raises(type(error)):
        main(["summary", str(path)])


@pytest.mark.parametrize("argv", [
    ["retrain", "run", "--epochs", "1e3"], ["validate"], ["nosuch"], ["train", "lenet5", "--out", ""],
])
def test_a_usage_error_is_one_line(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith("nas"), lines
    assert "--help)" in lines[0]


@pytest.mark.parametrize("network, message", [
    ("network:\n  - {null: relu}\n", "network[0]: a node name must be text, got None"),
    ("network:\n  1: relu\n", "network: a node name must be text, got 1"),
    ("network:\n  - 5\n", "node0: expected an op or block, got 5"),
    ("network:\n  - conv(**w)\n", "keyword unpacking (**) is not allowed"),
])
def test_node_names_and_calls_that_yaml_allows_but_a_genotype_does_not(tmp_path, capsys, network, message):
    check(tmp_path, capsys, HEADER + network, message)


def test_a_network_whose_head_does_not_fit_the_classes_is_refused_before_training(tmp_path, capsys):
    path = tmp_path / "head.yaml"
    path.write_text("input: [1, 8, 8]\nnetwork: ['conv(4)', bn, relu, gap, 'linear(3)']\n")
    assert main(["train", str(path), "--out", str(tmp_path / "out"), "--epochs", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"{path}: the network outputs (3,), not one score for each of the dataset's 10 classes: "
        "give it a 'classes' parameter, or end it with linear(10)")
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


@pytest.mark.parametrize("argv, line", [
    (["score", "lenet5", "--device", "tpu", "--proxy", "params"], "--device: must be cpu, cuda or cuda:N"),
    (["train", "lenet5", "--out", "{tmp}/o", "--data-option", "subset=5"],
     "--data-option: subset has its own flag: use --subset"),
    (["train", "lenet5", "--out", "{tmp}/o", "--resolution", "0"], "resolution: must be an integer in [1, 4096], got 0"),
    (["retrain", "{tmp}", "--workers", "100000"], "--workers: must be an integer from 1 to"),
    # a batch of 100,000 images was read whole (a run config's proxies.batch stops at 4,096)
    (["score", "lenet5", "--proxy", "params", "--batch", "100000"], "--batch: must be an integer in [2, 4096]"),
    (["score", "lenet5", "--proxy", "params", "--batch", "1"], "--batch: must be an integer in [2, 4096]"),
    # a name the system cannot look up was 'NAME: name too long' or 'unexpected ValueError', no flag named
    (["train", "lenet5", "--out", "{tmp}/o", "--dataset", "folder", "--root", "r" * 5000], "root: 'rrrr"),
    (["train", "lenet5", "--out", "{tmp}/o", "--dataset", "cifar10", "--root", "r\0"], "root: 'r\\x00': not a valid"),
    # scored without the data, the option ignored
    (["score", "lenet5", "--proxy", "params", "--data-set", "resolution=16"], "--data-set: a dataset option needs"),
    # the next two were named '--set expects KEY=VALUE'
    (["score", "lenet5", "--dataset", "digits", "--data-set", "resolution"], "--data-set expects KEY=VALUE"),
    (["train", "lenet5", "--out", "{tmp}/o", "--data-option", "seed"], "--data-option expects KEY=VALUE"),
], ids=["score-device", "train-data-option", "train-resolution-0", "retrain-workers", "score-batch-huge",
        "score-batch-1", "train-root-too-long", "train-root-nul", "score-data-set-alone",
        "score-data-set-no-value", "train-data-option-no-value"])
def test_an_argument_out_of_range_is_one_line_never_ignored(tmp_path, capsys, argv, line):
    assert main([part.format(tmp=tmp_path) for part in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), lines
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [
    ["validate", ""], ["best", ""], ["train", "", "--out", "x"], ["search", "quickstart", "--runs", ""],
    ["summary", "nb201", "--set", ""], ["validate", "nb201", ""],
])
def test_an_empty_argument_is_one_line_naming_it(argv, capsys):
    # Path("") is the working folder: `nas validate ""` said ".: not a regular file"
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "an empty value" in err[0] and err[0].startswith(f"nas {argv[0]}: argument "), err


def test_a_warning_during_a_command_is_one_line(monkeypatch, capsys):
    # a library's warning printed its source line too (matplotlib on a huge trial number)
    import warnings

    import nas.analysis

    real = nas.analysis.check_memory

    def warning_check(*args, **kwargs):
        warnings.warn("first line\n    second line", UserWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(nas.analysis, "check_memory", warning_check)
    assert main(["validate", "lenet5"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: first line second line"], err


def test_a_deleted_current_folder_is_one_line(tmp_path):
    # os.getcwd() raised FileNotFoundError: 'no such file or folder', naming nothing
    gone = tmp_path / "gone"
    gone.mkdir()
    code = ("import os, sys; from nas.cli import main; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
            "sys.exit(main(['validate', 'resnet20']))")
    result = subprocess.run([sys.executable, "-c", code, str(gone)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "the current folder no longer exists (it was deleted): change to another one"]


def test_an_input_size_over_the_limit_is_named_with_the_limit(capsys):
    # 'expected a positive integer, got 100000' named no limit
    assert main(["summary", "resnet20", "--input", "3,100000,100000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("input[1]: expected an integer in [1, 65,536], got 100000"), err


def test_a_batch_the_machine_cannot_hold_is_refused_before_training(tmp_path, capsys, monkeypatch):
    # nas train with depths=[1000, 1000, 1000] needed 96 GiB at batch 128: the out-of-memory
    # killer (or oneDNN's 'could not create a primitive') ended it
    monkeypatch.setattr("nas.train._memory.available_memory", lambda: 1 << 20)
    out = tmp_path / "out"
    assert main(["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--device", "cpu",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training at batch size 128 needs at least" in err[0], err
    assert err[0].endswith("more than the 1.0 MiB this machine has available: lower the batch size")
    assert not out.exists()
