"""Pictures of genotypes (nas.drawing, nas graph): what boxes show, collapsed blocks, branch
order, formats, and every zoo network drawn small enough to read.

Tests that run Graphviz's ``dot`` skip without it, except in CI (``CI`` set), which installs it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

import nas
from nas.cli import main
from nas.drawing import draw, render, to_dot
from nas.errors import ConfigError
from nas.genotype._draw import label_lines, layout, op_text

ZOO = sorted(nas.zoo_dir().glob("*.yaml"))
MAX_HEIGHT = 4000  # pixels of a PNG (96 dpi) of a zoo network at the default depth
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and not os.environ.get("CI"),
    reason="Graphviz's dot is not installed (CI installs it)",
)

BRANCHES = """
name: four_branches
input: [8, 16, 16]
blocks:
  module:
    args: {c: required}
    nodes:
      b1: conv(c, k=1) <- in
      b2a: conv(c, k=1) <- in
      b2b: conv(c, k=3)
      b3a: conv(c, k=1) <- in
      b3b: conv(c, k=5)
      b3c: conv(c, k=3)
      b4a: maxpool(3, s=1, p=1) <- in
      b4b: conv(c, k=1)
      out: concat <- b1, b2b, b3c, b4b
network:
  - stem: conv(16, k=3, s=2)
  - mod: module(4)
  - head: gap
"""


def _svg_text(text: str) -> str:
    """``text`` as Graphviz writes it in an SVG."""
    return html.escape(text, quote=False).replace("-", "&#45;")


def _boxes(name: str, depth: int = 0) -> dict[str, str]:
    return {box.name: box.text for box in layout(nas.load_genotype(name).graph, depth).boxes}


def test_blocks_collapse_and_repeats_shorten():
    boxes = _boxes("resnet18")
    assert boxes == {
        "input": "input", "conv1": "conv 7x7/2, 64 + bn + relu", "maxpool": "maxpool 3x3/2",
        "layer1.0-1": "basic(64) x2", "layer2.0": "basic(128, s=2)", "layer2.1": "basic(128)",
        "layer3.0": "basic(256, s=2)", "layer3.1": "basic(256)", "layer4.0": "basic(512, s=2)",
        "layer4.1": "basic(512)", "avgpool": "gap", "fc": "linear 1000",
    }
    opened = _boxes("resnet18", depth=1)
    assert opened["layer2.0.conv1"] == "conv 3x3/2, 128 + bn + relu"
    assert opened["layer2.0.downsample"] == "shortcut(128, 2)"  # a block inside a block: closed
    assert opened["layer2.0.add"] == "add + relu"
    assert "layer2.0.downsample.proj.conv" in _boxes("resnet18", depth=3)


def test_runs_of_copies_show_the_range_of_a_varying_rate():
    boxes = _boxes("resnet_sd")
    assert boxes["layer2.1-17"] == "cifar_basic(32, s=1, p=0.1852..0.3333) x17"
    assert boxes["layer2.0"] == "cifar_basic(32, s=2, p=0.1759)"  # the stride differs: not merged


def test_every_primitive_is_drawn_once_and_every_edge_kept():
    graph = nas.load_genotype("inception_v3").graph
    for depth in (0, 1, 5):
        drawing = layout(graph, depth)
        members = [m for box in drawing.boxes for m in box.members]
        assert sorted(members) == sorted(graph.nodes)
        box_of = {m: box.id for box in drawing.boxes for m in box.members}
        expected = {(box_of[a], box_of[b]) for a, b in graph.edges if box_of[a] != box_of[b]}
        assert set(drawing.edges) == expected and len(drawing.edges) == len(expected)


def test_op_text_shows_key_arguments():
    assert op_text("conv", {"c": 64, "k": 3, "s": 1, "p": "same", "d": 1, "g": 32, "bias": False}) == "conv 3x3, 64, g=32"
    assert op_text("conv", {"c": 8, "k": (1, 7), "s": (2, 2), "p": 0, "d": 2, "g": 1, "bias": None}) == "conv 1x7/2, 8, d=2"
    assert op_text("dropout", {"p": 0.2}) == "dropout p=0.2"
    assert op_text("bn", {"eps": 1e-3, "momentum": 0.1, "affine": True}) == "bn"
    assert op_text("adaptive_avgpool", {"size": 7}) == "adaptive_avgpool size=7"


def test_mermaid_draws_open_blocks_as_subgraphs():
    text = render(nas.load_genotype(BRANCHES).graph, "mermaid", depth=1).decode()
    assert text.startswith("flowchart TD")
    assert 'subgraph c0["mod: module(4)"]' in text
    assert '["b3c: conv 3x3, 4<br/>4x8x8"]' in text  # inside its subgraph: the relative name


@needs_dot
def test_branches_keep_their_written_order():
    graph = nas.load_genotype(BRANCHES).graph
    drawing = layout(graph, depth=1)
    ids = {box.name: box.id for box in drawing.boxes}
    plain = render(graph, "dot", depth=1)
    import graphviz

    positions = graphviz.Source(plain.decode()).pipe(format="plain").decode().splitlines()
    x = {line.split()[1]: float(line.split()[2]) for line in positions if line.startswith("node ")}
    firsts = [x[ids[f"mod.{name}"]] for name in ("b1", "b2a", "b3a", "b4a")]
    lasts = [x[ids[f"mod.{name}"]] for name in ("b1", "b2b", "b3c", "b4b")]
    assert firsts == sorted(firsts) and lasts == sorted(lasts)


@needs_dot
def test_every_zoo_network_draws_at_most_4000_pixels_high():
    """One ``dot`` call lays out all 44 networks (one SVG each, in order)."""
    import graphviz

    graphs = [nas.load_genotype(path).graph for path in ZOO]
    sources = [to_dot(graph) for graph in graphs]
    svgs = graphviz.pipe("dot", "svg", "".join(sources).encode()).decode().split("<?xml")[1:]
    assert len(svgs) == len(ZOO) == 44
    for path, graph, svg in zip(ZOO, graphs, svgs):
        width, height = map(int, re.search(r'<svg width="(\d+)pt" height="(\d+)pt"', svg).groups())
        pixels = height * 96 / 72  # Graphviz's PNGs are 96 dpi; SVG sizes are points
        assert pixels <= MAX_HEIGHT, f"{path.stem}: {pixels:.0f} pixels high"
        assert width * 96 / 72 <= MAX_HEIGHT, f"{path.stem}: {width * 96 / 72:.0f} pixels wide"
        last = layout(graph).boxes[-1]
        assert _svg_text(label_lines(last)[0]) in svg, path.stem  # the labels are drawn


@needs_dot
def test_graph_command_formats(tmp_path: Path, capsys):
    svg, png = tmp_path / "r.svg", tmp_path / "r.png"
    assert main(["graph", "resnet18", "--out", str(svg)]) == 0
    assert "<svg" in svg.read_text() and _svg_text("layer1.0-1: basic(64) x2") in svg.read_text()
    assert main(["graph", "resnet18", "--out", str(png), "--depth", "1"]) == 0
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    capsys.readouterr()
    assert main(["graph", "resnet18", "--format", "svg"]) == 0
    assert "<svg" in capsys.readouterr().out
    assert draw(nas.load_genotype("lenet5"), tmp_path / "l.mmd").read_text().startswith("flowchart TD")


def test_graph_command_refuses_unclear_formats(tmp_path: Path, capsys):
    for args, message in [
        (["--out", str(tmp_path / "g.txt")], "cannot tell the format of 'g.txt'"),
        (["--out", str(tmp_path / "g.svg"), "--format", "png"], "--out g.svg is svg, not the --format png"),
        (["--depth", "-1"], "--depth must be >= 0"),
    ]:
        assert main(["graph", "resnet18", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_missing_dot_is_one_line(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    assert main(["graph", "resnet18", "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install graphviz" in err
    assert not (tmp_path / "g.png").exists()
    assert main(["graph", "resnet18", "--format", "mermaid"]) == 0  # text needs no program
    assert capsys.readouterr().out.startswith("flowchart TD")


def test_a_dot_that_does_not_finish_is_killed_and_one_line(tmp_path: Path, capsys, monkeypatch):
    # dot's layout of a 20 KB genotype (100 nodes, each adding all earlier ones) ran for minutes;
    # a stand-in dot that never finishes is stopped at DOT_SECONDS
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.setattr("nas.drawing.DOT_SECONDS", 0.5)
    assert main(["graph", "resnet18", "--out", str(tmp_path / "g.svg")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("genotype 'resnet18': Graphviz's dot did not finish drawing it in 0.5 s; draw fewer "
                   "boxes (a smaller --depth) or write --format dot or mermaid"), err
    assert not (tmp_path / "g.svg").exists()


def test_a_fused_label_counts_runs_and_is_capped():
    from nas.genotype._draw import fused_label

    assert fused_label(["conv 3x3, 64", "bn", "relu"]) == "conv 3x3, 64 + bn + relu"
    assert fused_label(["relu"] * 200 + ["bn", "bn"]) == "relu x200 + bn x2"
    long = fused_label([f"op{i}" for i in range(1000)])
    assert len(long) == 200 and long.endswith("...")


DEEP = "name: deep\ninput: [1, 4, 4]\nnetwork:\n  - r: repeat(200, repeat(200, relu))\n  - flatten\n  - linear(2)\n"


@needs_dot
def test_a_deep_stack_of_activations_draws_as_one_counted_box(tmp_path):
    """40,000 fused relus made a label of 280,000 characters that dot refused ("Broken pipe")."""
    svg = draw(nas.load_genotype(DEEP), tmp_path / "deep.svg").read_text()
    assert "relu x40000" in svg


@needs_dot
def test_a_failing_dot_is_one_line_naming_the_genotype():
    from nas.drawing import _run_dot

    with pytest.raises(ConfigError) as error:
        _run_dot("digraph { a -> }", "svg", "broken")
    text = str(error.value)
    assert text.startswith("genotype 'broken': Graphviz's dot could not draw it: ") and "\n" not in text
    assert "syntax error" in text


@needs_dot
@pytest.mark.parametrize("name", ["net\\", "<b>net</b>", "a\\Nb", "<x"])
def test_backslashes_and_angle_brackets_are_drawn_as_written(tmp_path: Path, capsys, name):
    # a name ending in a backslash escaped the DOT string's closing quote: graphviz warned (one
    # line each) and dot failed; \N was replaced by the node's id; one starting with < and
    # ending with > was read as HTML
    genotype = ("name: " + json.dumps(name) + "\ninput: [3, 8, 8]\nparams: {s: " + json.dumps(name) + "}\n"
                "blocks:\n  b:\n    args: {t: x}\n    nodes: [relu]\nnetwork: ['b(t=s)', relu]\n")
    (tmp_path / "net.yaml").write_text(genotype)
    assert main(["graph", str(tmp_path / "net.yaml"), "--out", str(tmp_path / "net.svg")]) == 0
    assert capsys.readouterr().err == ""
    svg = (tmp_path / "net.svg").read_text()
    assert f">b0: b(t={_svg_text(name)})</text>" in svg  # labels as written (the title is the DOT id)


def test_many_open_blocks_draw_in_linear_time():
    # 32,767 nested block calls opened by --depth 15: keeping the used clusters compared every
    # cluster with every box's cluster, and Mermaid looked each cluster's index up in a list
    # (32 s for DOT, 66 s for Mermaid, from a 300-byte file)
    import time

    blocks = "".join(f"  b{i}: ['seq(b{i + 1}, b{i + 1})']\n" for i in range(14)) + "  b14: ['conv(1, k=1)', relu]\n"
    graph = nas.load_genotype("input: [1, 1, 1]\nblocks:\n" + blocks + "network: [b0]\n").graph
    start = time.process_time()
    text = render(graph, "mermaid", depth=15).decode()
    assert text.count("subgraph ") == 2**15 - 1 and text.count("\n") > 3 * 2**15
    assert len(layout(graph, 15).clusters) == 2**15 - 1
    assert time.process_time() - start < 20  # a hang guard; about 1 s
