"""Issue 28 item 10: the command line words messages with its own options, suggests a layer
of counts, lists the labels of a ``--where`` column and prints warnings as one line."""

from __future__ import annotations

import warnings

import pytest

from napari_causcell.cli import main
from napari_causcell.cli._messages import cli_wording, one_line_warnings
from napari_causcell.cli._parser import build_parser
from napari_causcell.data import log_normalize
from napari_causcell.datasets import brain_aging

CONCEPTS = "age,domain,cell_type"
DAG = "age->cell_type,domain->cell_type"


@pytest.fixture(scope="module")
def lognorm(tmp_path_factory):
    """An .h5ad whose .X is log-normalised and whose raw counts are in layers['counts']."""
    table = brain_aging(n_cells=400, seed=1).tables["table"]
    table.layers["counts"] = table.X.copy()
    table.X = log_normalize(table.X)
    path = tmp_path_factory.mktemp("msg") / "lognorm.h5ad"
    table.write_h5ad(path)
    return path


def _train(path, out, *extra):
    return main(["train", str(path), "--concepts", CONCEPTS, "--dag", DAG, "--out", str(out),
                 "--epochs", "1", "--quiet", *extra])


@pytest.mark.parametrize("text, expected", [
    ("pass log-normalised data with log_normalized=True.",
     "pass log-normalised data with --log-normalized."),
    ("Pass raw counts with log_normalized=False, or normalise first.",
     "Pass raw counts without --log-normalized, or normalise first."),
    ("layers['counts'] holds whole numbers: pass layer='counts'.",
     "layers['counts'] holds whole numbers: pass --layer counts."),
    ("more than max_genes=2000: choose", "more than --max-genes 2000: choose"),
    ("set table_key='cells' first", "set --table-key cells first"),
    ("do(age=90wk) on cell_type=Oligo", "do(age=90wk) on cell_type=Oligo"),  # not options
])
def test_library_keywords_become_options(text, expected):
    assert cli_wording(text, build_parser()) == expected


def test_counts_error_names_the_flag_and_the_counts_layer(capsys, lognorm, tmp_path):
    assert _train(lognorm, tmp_path / "m") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The counts are not integers") and len(err.splitlines()) == 1
    assert "--log-normalized" in err and "log_normalized=True" not in err
    assert "layers['counts'] holds whole numbers: pass --layer counts." in err
    assert not (tmp_path / "m").exists()


def test_warnings_are_one_line_in_the_commands_wording(capsys, lognorm, tmp_path):
    # counts said to be log-normalised: the library warns (log_normalized=True, ...)
    assert _train(lognorm, tmp_path / "m", "--layer", "counts", "--log-normalized") == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "does not look log-normalised" in ln]
    assert lines and lines[0].startswith("warning: --log-normalized, but the matrix")
    assert "without --log-normalized" in lines[0] and ".py" not in err


def test_a_warning_from_inside_torch_shows_no_file_path(capsys):
    with one_line_warnings(build_parser()):
        warnings.warn_explicit("Attempting to run\ncuBLAS, but there was no current context",
                               UserWarning, "/site-packages/torch/autograd/graph.py", 824)
    err = capsys.readouterr().err
    assert err == "warning: Attempting to run cuBLAS, but there was no current context\n"


def test_where_with_an_unknown_label_lists_the_labels(capsys, lognorm, tmp_path):
    model = tmp_path / "m"
    assert _train(lognorm, model, "--layer", "counts") == 0
    capsys.readouterr()
    out = tmp_path / "cf.h5ad"
    rc = main(["counterfactual", str(model), str(lognorm), "--do", "age=90wk", "--out",
               str(out), "--steps", "2", "--where", "cell_type=Neuron,Oligo"])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert err.startswith("error: --where cell_type=Neuron,Oligo: no cell has cell_type "
                          "'Neuron'; cell_type labels: [")
    assert "'Oligo'" in err and "'Astro'" in err
    rc = main(["counterfactual", str(model), str(lognorm), "--do", "age=90wk", "--out",
               str(out), "--where", "celltype=Oligo"])
    err = capsys.readouterr().err
    assert rc == 2 and "column 'celltype' is not in obs; columns: [" in err
    assert "'cell_type'" in err
