import numpy as np
import pytest
import torch

from napari_causcell.data import DAGError, adjacency, descendants, parse_dag, validate_dag
from napari_causcell.model import LinearSCM

C = ["age", "domain", "cell_type"]


def test_parse_string_and_list_agree():
    assert parse_dag("age->cell_type, domain -> cell_type") == [
        ("age", "cell_type"), ("domain", "cell_type")]
    assert parse_dag([("age", "cell_type")]) == [("age", "cell_type")]
    assert parse_dag(None) == [] and parse_dag("") == []


@pytest.mark.parametrize(
    "dag, message",
    [
        ([("age", "cell_type"), ("cell_type", "age")], "cycle"),
        ([("age", "domain"), ("domain", "cell_type"), ("cell_type", "age")], "cycle"),
        ([("age", "age")], "Self-loop"),
        ([("age", "tissue")], "unknown concept 'tissue'"),
        ("age=>cell_type", "parent->child"),
        ([("age",)], "pair"),
    ],
)
def test_invalid_dags_are_refused(dag, message):
    with pytest.raises(DAGError, match=message):
        validate_dag(C, dag)


def test_cycle_message_names_the_cycle():
    with pytest.raises(DAGError, match="age -> cell_type -> age"):
        validate_dag(C, "age->cell_type,cell_type->age")


def test_duplicates_removed_and_descendants():
    edges = validate_dag(C, "age->domain,age->domain,domain->cell_type")
    assert edges == [("age", "domain"), ("domain", "cell_type")]
    assert descendants(C, edges, "age") == {"domain", "cell_type"}
    assert descendants(C, edges, "cell_type") == set()


def test_scm_algebra_matches_fixed_point():
    a = adjacency(C, [("age", "domain"), ("domain", "cell_type")])
    assert a.shape == (4, 4) and a[0, 1] == 1 and a[1, 2] == 1 and a.sum() == 2
    scm = LinearSCM(torch.tensor(a))
    eps = torch.randn(5, 4, 3)
    z = scm(eps)
    # z = A^T z + eps holds exactly
    assert torch.allclose(z, torch.einsum("kj,bkd->bjd", scm.adjacency, z) + eps, atol=1e-6)
    # chain: cell_type receives age's exogenous part through domain
    assert torch.allclose(z[:, 2], eps[:, 0] + eps[:, 1] + eps[:, 2], atol=1e-6)
    assert torch.allclose(z[:, 3], eps[:, 3])  # u untouched
    # mixing counts paths
    assert np.allclose(scm.mixing.numpy()[2], [1, 1, 1, 0])


def test_intervention_changes_descendants_only():
    a = adjacency(C, [("age", "cell_type")])
    scm = LinearSCM(torch.tensor(a))
    eps = torch.randn(4, 4, 3)
    z0 = scm(eps)
    value = torch.ones(3) * 5
    for hard in (True, False):
        z1 = scm.intervene(eps, {0: value}, hard=hard)
        assert torch.allclose(z1[:, 1], z0[:, 1]) and torch.allclose(z1[:, 3], z0[:, 3])
        assert not torch.allclose(z1[:, 2], z0[:, 2])  # descendant moved
        assert torch.allclose(z1[:, 0], value.expand(4, 3))


def test_hard_do_cuts_incoming_edges_soft_keeps_them():
    a = adjacency(C, [("age", "cell_type")])
    scm = LinearSCM(torch.tensor(a))
    eps = torch.randn(4, 4, 3)
    v = torch.zeros(3)
    hard = scm.intervene(eps, {2: v}, hard=True)
    soft = scm.intervene(eps, {2: v}, hard=False)
    assert torch.allclose(hard[:, 2], v.expand(4, 3))
    assert torch.allclose(soft[:, 2], eps[:, 0])  # parent's contribution kept
