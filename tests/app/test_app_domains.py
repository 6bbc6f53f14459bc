"""Derive-domains workflow."""

from __future__ import annotations

import pytest

from napari_causcell.app import DomainsRequest, domains_job
from napari_causcell.errors import DataError


def test_domains_go_to_a_new_column_when_domain_exists(state):
    with pytest.raises(DataError, match="at least two domains"):
        domains_job(state, DomainsRequest(1))
    progress = []
    result = domains_job(state, DomainsRequest(4, "cell_type")).run(progress.append)
    assert progress[0].text == "Deriving 4 spatial domains from cell_type neighbourhoods..."
    assert result.column == "causcell_domain"  # the user's 'domain' column is kept
    assert list(state.adata.obs["causcell_domain"].cat.categories) == ["D0", "D1", "D2", "D3"]
    assert result.message.startswith("Derived domains in column 'causcell_domain' (D0, D1")
