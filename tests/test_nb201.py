"""Tests of nas.nb201: the NAS-Bench-201 cell, its key, the table and the objective."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest

from nas.errors import ConfigError
from nas.nb201 import (
    DUPLICATE_ATTR,
    EDGES,
    KEY_ATTR,
    OPS,
    Cell,
    CellError,
    NB201Objective,
    NB201Table,
    TableError,
    cell_key,
    make_nb201_objective,
)
from nas.nb201._table import MAX_TABLE_BYTES

CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "nasbench201" / "nb201_cifar.csv"
needs_csv = pytest.mark.skipif(not CSV.is_file(), reason=f"NAS-Bench-201 table absent: {CSV}")

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def cell(*ops: str) -> Cell:
    return Cell(ops)


# --- the cell -------------------------------------------------------------------------------


def test_parse_gives_ops_in_edge_order_and_round_trips():
    c = Cell.parse(EXAMPLE)
    assert c.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3",
                     "skip_connect", "nor_conv_3x3", "skip_connect")
    assert c.to_str() == EXAMPLE
    assert str(c) == EXAMPLE
    assert c.params() == dict(zip(EDGES, c.ops))
    assert Cell.from_params(c.params(prefix="cell."), prefix="cell.") == c


def test_edge_labels_are_stable():
    assert EDGES == ("node1.in0", "node2.in0", "node2.in1", "node3.in0", "node3.in1", "node3.in2")
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (EXAMPLE.replace("avg_pool_3x3", "max_pool_3x3"), "valid ops are none, skip_connect"),
        (EXAMPLE.replace("avg_pool_3x3~1", "avg_pool_3x3~0"), "must read 'op~1'"),
        (EXAMPLE.replace("skip_connect~2", "skip_connect"), "must read 'op~2'"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", "3 node groups"),
        ("|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 inputs"),
        ("nor_conv_3x3~0+|none~0|none~1|+|none~0|none~1|none~2|", "start and end with '|'"),
    ],
)
def test_parse_rejects_bad_strings_with_a_clear_message(text, fragment):
    with pytest.raises(CellError) as info:
        Cell.parse(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_unknown_op_error_names_the_edge_and_lists_the_valid_ops():
    with pytest.raises(CellError) as info:
        Cell(("none", "conv", "none", "none", "none", "none"))
    assert str(info.value) == (
        "node2.in0: unknown op 'conv'; valid ops are none, skip_connect, nor_conv_1x1, "
        "nor_conv_3x3, avg_pool_3x3"
    )


def test_cell_needs_six_ops_and_from_params_names_missing_edges():
    with pytest.raises(CellError, match="6 edges, got 5"):
        Cell(("none",) * 5)
    params = Cell.parse(EXAMPLE).params()
    del params["node3.in1"]
    with pytest.raises(CellError, match="missing edge parameter.*node3.in1"):
        Cell.from_params(params)
    assert cell_key(params) is None


# --- the isomorphism key --------------------------------------------------------------------

CONV = "nor_conv_3x3"


def test_edges_that_cannot_reach_the_output_do_not_change_the_key():
    # node 2 feeds nothing (node3.in2 is none), so what enters node 2 does not matter.
    a = cell(CONV, "none", "none", "skip_connect", CONV, "none")
    b = cell(CONV, "avg_pool_3x3", CONV, "skip_connect", CONV, "none")
    assert a.key() == b.key()
    # ... but once node 2 feeds the output it does.
    c = cell(CONV, "avg_pool_3x3", CONV, "skip_connect", CONV, CONV)
    d = cell(CONV, "none", CONV, "skip_connect", CONV, CONV)
    assert c.key() != d.key()


def test_every_disconnected_cell_has_the_zero_key():
    assert cell(*["none"] * 6).key() == "0"
    dead = cell(CONV, CONV, CONV, "none", "none", "none")
    assert dead.key() == "0"
    assert not dead.is_connected()
    assert Cell.parse(EXAMPLE).is_connected()


def test_node_numbering_and_summation_order_do_not_change_the_key():
    # out = conv3(x) + conv1(x) through node 1 or through node 2, or directly.
    via_node1 = cell(CONV, "nor_conv_1x1", "none", "none", "skip_connect", "skip_connect")
    via_node2 = cell("nor_conv_1x1", CONV, "none", "none", "skip_connect", "skip_connect")
    direct = cell("none", "none", "none", CONV, "none", "none")
    assert via_node1.key() == via_node2.key() == "nor_conv_1x1(x)+nor_conv_3x3(x)"
    assert direct.key() == "nor_conv_3x3(x)"
    # sums flatten through skip edges: (a + b) + c == (a + c) + b
    left = cell(CONV, "avg_pool_3x3", "skip_connect", "nor_conv_1x1", "none", "skip_connect")
    right = cell(CONV, "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "none", "skip_connect")
    assert left.key() == right.key()


def test_different_functions_get_different_keys():
    direct = [cell("none", "none", "none", op, "none", "none").key() for op in OPS[1:]]
    via_node1 = [cell(op, "none", "none", "none", "skip_connect", "none").key() for op in OPS[1:]]
    assert direct == via_node1  # op(x) through node 1 and a skip edge is op(x)
    assert len(set(direct)) == 4
    chain = cell(CONV, "none", CONV, "none", "none", "skip_connect")  # conv(conv(x))
    parallel = cell(CONV, CONV, "none", "none", "skip_connect", "skip_connect")  # conv + conv
    assert chain.key() != parallel.key()


# --- the table from a small frame (no file needed) ------------------------------------------


def small_table() -> NB201Table:
    rows = [
        (0, EXAMPLE, 93.5, 70.25),
        (1, cell(*["none"] * 6).to_str(), 10.0, 1.0),
        (2, cell(CONV, "none", "none", "skip_connect", CONV, "none").to_str(), 91.0, 66.0),
        (3, cell(CONV, CONV, CONV, "skip_connect", CONV, "none").to_str(), 92.0, 67.0),
    ]
    frame = pd.DataFrame(rows, columns=["index", "arch", "cifar10_test", "cifar100_test"])
    frame["cifar10_valid"] = frame["cifar10_test"] - 3.0
    frame["note"] = "ignored: not <dataset>_<metric>"
    return NB201Table(frame, source="small.csv")


def test_table_lookup_by_cell_string_or_params():
    table = small_table()
    assert len(table) == 4
    assert table.accuracy(EXAMPLE, "cifar10") == 93.5
    assert table.accuracy(Cell.parse(EXAMPLE), "cifar100") == 70.25
    assert table.accuracy(Cell.parse(EXAMPLE).params(), "cifar10") == 93.5
    assert table.top_k_threshold("cifar10", 2) == 92.0
    assert table.keys()[2] == table.keys()[3]


def test_table_reads_named_columns():
    table = small_table()
    assert table.columns == ("cifar10_test", "cifar100_test", "cifar10_valid")
    assert table.value(EXAMPLE, "cifar10_valid") == 90.5
    assert table.column("cifar10") == "cifar10_test"  # a bare dataset name: its test column
    assert table.top_k_threshold("cifar10_valid", 1) == 90.5
    objective = NB201Objective(table, "cifar10_valid", report=["cifar10_test", "cifar100"])
    result = objective.evaluate(EXAMPLE)
    assert (result.accuracy, result.report) == (90.5, {"cifar10_test": 93.5, "cifar100_test": 70.25})
    again = objective.evaluate(Cell.parse(EXAMPLE).params())
    assert again.duplicate and again.report == result.report


def test_table_errors_name_what_is_wrong(tmp_path):
    table = small_table()
    with pytest.raises(TableError) as info:
        table.accuracy(EXAMPLE, "imagenet")
    assert str(info.value) == ("small.csv: unknown column 'imagenet'; valid columns are "
                               "cifar10_test, cifar100_test, cifar10_valid")
    with pytest.raises(TableError, match="unknown column 'cifar10_train'"):
        NB201Objective(table, "cifar10_valid", report=["cifar10_train"])
    with pytest.raises(TableError, match="is not in the table"):
        table.accuracy(cell(*[CONV] * 6), "cifar10")
    with pytest.raises(TableError, match="k must be between 1 and 4"):
        table.top_k_threshold("cifar10", 5)
    with pytest.raises(TableError, match="missing value columns"):
        NB201Table(pd.DataFrame({"index": [], "arch": [], "comment": []}))
    with pytest.raises(TableError, match="missing column.*arch"):
        NB201Table(pd.DataFrame({"index": [], "cifar10_test": []}))
    missing = tmp_path / "absent.csv"
    with pytest.raises(TableError) as info:
        NB201Table.load(missing)
    assert str(info.value) == f"{missing}: NAS-Bench-201 table not found"
    bad = tmp_path / "bad.csv"
    bad.write_text("index,arch\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    with pytest.raises(TableError, match="missing value columns"):
        NB201Table.load(bad)


@pytest.mark.parametrize("frame, hint", [("nb201.csv", r" \(read a file with NB201Table.load\)"), (None, "")])
def test_a_table_of_something_else_than_a_frame_is_a_type_error(frame, hint):
    # NB201Table("nb201.csv") failed with "'str' object has no attribute 'columns'".
    with pytest.raises(TypeError, match=f"^frame must be a pandas DataFrame{hint}, got {type(frame).__name__}$"):
        NB201Table(frame)


def test_a_table_file_larger_than_any_table_is_refused_unread(tmp_path):
    # pandas would read a file of one endless header line whole: the size is checked first
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:
        handle.truncate(MAX_TABLE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(TableError) as info:
        NB201Table.load(huge)
    assert str(info.value) == (f"{huge}: {MAX_TABLE_BYTES + 1:,} bytes: larger than a NAS-Bench-201 "
                               f"table (at most {MAX_TABLE_BYTES:,})")


def test_table_loads_from_a_csv_file(tmp_path):
    path = tmp_path / "t.csv"
    small_table().frame.to_csv(path, index=False)
    table = NB201Table.load(path)
    assert table.accuracy(EXAMPLE, "cifar100") == pytest.approx(70.25)


# --- the objective --------------------------------------------------------------------------


def test_objective_caches_equivalent_cells_and_counts_trained_ones():
    objective = NB201Objective(small_table(), "cifar10")
    first = objective.evaluate(cell(CONV, CONV, CONV, "skip_connect", CONV, "none"))
    assert (first.accuracy, first.duplicate) == (92.0, False)
    again = objective.evaluate(cell(CONV, "none", "none", "skip_connect", CONV, "none"))
    # equivalent cell: the cached result of the first one, not its own table entry (91.0)
    assert (again.accuracy, again.duplicate, again.key) == (92.0, True, first.key)
    assert objective.trained == 1
    assert objective.is_duplicate(EXAMPLE) is False
    objective.remember(Cell.parse(EXAMPLE).key(), 50.0)
    assert objective.evaluate(EXAMPLE).accuracy == 50.0
    assert objective.trained == 2


def test_objective_as_an_optuna_objective_records_key_and_duplicate_flag():
    objective = NB201Objective(small_table(), "cifar100", prefix="cell.")
    study = optuna.create_study(direction="maximize")
    for text in (EXAMPLE, EXAMPLE):
        study.enqueue_trial(Cell.parse(text).params(prefix="cell."))
    study.optimize(objective, n_trials=2)
    first, second = study.trials
    assert first.value == second.value == 70.25
    assert first.user_attrs[KEY_ATTR] == Cell.parse(EXAMPLE).key()
    assert (first.user_attrs[DUPLICATE_ATTR], second.user_attrs[DUPLICATE_ATTR]) == (False, True)


def test_make_objective_checks_the_columns_against_the_header(tmp_path):
    path = tmp_path / "t.csv"
    small_table().frame.to_csv(path, index=False)
    with pytest.raises(TableError, match="unknown column 'svhn'; valid columns are cifar10_test"):
        make_nb201_objective(path, "svhn")
    with pytest.raises(TableError, match="not found"):
        make_nb201_objective(tmp_path / "absent.csv", "cifar10")
    objective = make_nb201_objective(path, "cifar100", report=["cifar10_valid"])
    assert (objective.column, objective.report) == ("cifar100_test", ("cifar10_valid",))


# --- the real table (skipped when ../shared/data is absent) ---------------------------------


@pytest.fixture(scope="module")
def nb201() -> NB201Table:
    return NB201Table.load(CSV)


@needs_csv
def test_known_facts_of_the_table(nb201):
    assert len(nb201) == 15625
    c10, c100 = nb201.accuracies("cifar10"), nb201.accuracies("cifar100")
    assert int(c10.argmax()) == 6111 and round(float(c10.max()), 2) == 94.37
    assert int(c100.argmax()) == 9930 and round(float(c100.max()), 2) == 73.51
    assert round(nb201.top_k_threshold("cifar10", 16), 2) == 94.18
    assert round(nb201.top_k_threshold("cifar100", 16), 2) == 72.72
    assert nb201.frame["index"].tolist() == list(range(15625))
    assert set(nb201.columns) >= {"cifar10_valid", "cifar10_test", "cifar100_test"}
    valid = nb201.values("cifar10_valid")
    assert round(float(valid.max()), 2) == 91.61 and int(valid.argmax()) == 6111


@needs_csv
def test_disconnected_cells_score_chance(nb201):
    disconnected = [row for row, key in enumerate(nb201.keys()) if key == "0"]
    assert len(disconnected) > 0
    for dataset, chance in zip(("cifar10", "cifar100"), (10.0, 1.0)):
        accuracies = nb201.accuracies(dataset)[disconnected]
        assert accuracies == pytest.approx([chance] * len(disconnected))
    connected = [row for row, key in enumerate(nb201.keys()) if key != "0"]
    assert nb201.accuracies("cifar10")[connected].min() > 10.0


@needs_csv
def test_every_row_round_trips_and_keys_merge_equivalent_cells(nb201):
    frame = nb201.frame
    assert [c.to_str() for c in nb201.cells()] == frame["arch"].tolist()
    assert len(set(frame["arch"])) == 15625
    assert len(set(nb201.keys())) < 15625
    objective = make_nb201_objective(CSV, "cifar10")
    assert objective.evaluate(nb201.cell(6111)).accuracy == pytest.approx(94.3733, abs=1e-3)


# --- run configs name the columns -----------------------------------------------------------


def _tabular_config(tmp_path: Path, tabular: dict) -> Path:
    import yaml

    root = Path(__file__).resolve().parents[1]
    data = yaml.safe_load((root / "search_spaces" / "nb201.yaml").read_text())
    data["space"]["genotype"] = str(root / "genotypes" / "nb201.yaml")
    table = tmp_path / "t.csv"
    small_table().frame.to_csv(table, index=False)
    data["tabular"] = {"table": str(table), **tabular}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_names_the_objective_and_reported_columns(tmp_path):
    from nas.search import load_config

    config = load_config(_tabular_config(tmp_path, {"objective": "cifar10_valid",
                                                    "report": ["cifar10_test", "cifar100"]}))
    assert (config.tabular["objective"], config.tabular["report"]) == (
        "cifar10_valid", ["cifar10_test", "cifar100_test"])
    legacy = load_config(_tabular_config(tmp_path, {"dataset": "cifar100"}))
    assert (legacy.tabular["objective"], legacy.tabular["report"]) == ("cifar100_test", [])
    assert load_config(_tabular_config(tmp_path, {})).tabular["objective"] == "cifar10_valid"


@pytest.mark.parametrize("tabular, where, fragment", [
    ({"objective": "cifar10_train"}, "tabular.objective", "unknown column 'cifar10_train'"),
    ({"report": ["cifar10_test", "svhn_test"]}, "tabular.report[1]", "unknown column 'svhn_test'"),
    ({"report": ["cifar10_valid"]}, "tabular.report", "a column is named twice"),
    ({"dataset": "cifar10", "objective": "cifar10_valid"}, "tabular.dataset", "give objective"),
])
def test_config_rejects_unknown_columns_in_one_line(tmp_path, capsys, tabular, where, fragment):
    from nas.cli import main

    path = _tabular_config(tmp_path, tabular)
    assert main(["search", str(path), "--runs", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"{path}: {where}: {fragment}")
    if "unknown column" in fragment:
        assert err.endswith("valid columns are cifar10_test, cifar100_test, cifar10_valid")
    assert not (tmp_path / "runs").exists()


def _damage_table(text: str, damage: str) -> str:
    lines = text.splitlines()
    fields = lines[3].split(",")  # the row of index 2; columns index, arch, 3 values, note
    if damage in ("nan", "inf", "abc"):
        fields[4] = "" if damage == "nan" else damage  # cifar10_valid
    elif damage == "empty_arch":
        fields[1] = ""
    lines[3] = ",".join(fields)
    if damage == "header_only":
        lines = lines[:1]
    elif damage == "too_many_columns":
        lines[0] += "".join(f",m{i}_x" for i in range(1000))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("damage, fragment", [
    ("nan", "column cifar10_valid: line 4 (index 2) holds nan (1 such rows); every value must be "
            "a finite number"),
    ("inf", "column cifar10_valid: line 4 (index 2) holds inf (1 such rows)"),
    ("abc", "column cifar10_valid is not numeric: line 4 (index 2) holds 'abc'"),
    ("empty_arch", "line 4 (index 2): arch is empty, not a cell string"),
    ("header_only", "holds no cells (a header without rows)"),
    ("too_many_columns", "its header names more than 1,000 columns"),
])
def test_a_damaged_table_is_one_line_before_the_run_folder_is_made(tmp_path, capsys, damage, fragment):
    """The config check read the header only: a table with a non-numeric cell, an empty arch or
    no rows failed every trial ('internal error: TableError'), spending the budget; NaN was
    'unexpected ValueError' from Optuna; 200,000 columns took minutes in pandas."""
    from nas.cli import main

    path = _tabular_config(tmp_path, {"objective": "cifar10_valid"})
    table = tmp_path / "t.csv"
    table.write_text(_damage_table(table.read_text(), damage))
    with pytest.raises(TableError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        make_nb201_objective(table, "cifar10_valid")
    assert main(["search", str(path), "--runs", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tabular.table: " in err[0] and fragment in err[0], err
    assert err[0].startswith((str(table), str(path)))
    assert not (tmp_path / "runs" / "nb201").exists()
