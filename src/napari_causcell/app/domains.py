"""Workflow: derive spatial domains when the data have none (``tl.spatial_domains``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import tl
from .._keys import Key
from ..errors import DataError
from .jobs import Job, Progress
from .state import AppState

__all__ = ["DomainsRequest", "DomainsResult", "derive_domains", "domains_job"]


def derive_domains(state: AppState, n_domains: int = 6, cluster_key: str | None = None,
                   key_added: str | None = None, seed: int = 0) -> str:
    """Spatial domains from neighbourhood composition; returns the column written.

    ``obs[key_added]``: default ``"domain"``, or ``"causcell_domain"`` when a ``domain``
    column already exists (a column the user owns is never replaced by default).
    """
    cluster_key = cluster_key or state.guess_column("cell_type")
    if cluster_key is None:
        raise DataError("Choose the cell-type column the domains are built from.")
    if key_added is None:
        key_added = (Key.obs.DOMAIN_FALLBACK if Key.obs.DOMAIN in state.adata.obs
                     else Key.obs.DOMAIN)
    tl.spatial_domains(state.data, n_domains, cluster_key=cluster_key, key_added=key_added,
                       table_key=state.table_key, seed=seed,
                       overwrite=key_added == Key.obs.DOMAIN_FALLBACK)  # our own column
    return key_added


@dataclass
class DomainsRequest:
    n_domains: int = 6
    cluster_key: str | None = None
    seed: int = 0

    def validate(self) -> None:
        if int(self.n_domains) < 2:
            raise DataError("Derive at least two domains.")


@dataclass
class DomainsResult:
    column: str
    message: str


def domains_job(state: AppState, request: DomainsRequest) -> Job[DomainsResult]:
    """Derive domains, then tell listeners the new ``obs`` column exists."""
    request.validate()

    def steps(job: Job) -> Any:
        yield Progress(None, f"Deriving {request.n_domains} spatial domains from "
                             f"{request.cluster_key or 'cell type'} neighbourhoods...")
        key = derive_domains(state, int(request.n_domains), request.cluster_key or None,
                             seed=int(request.seed))
        job.check()
        yield Progress(1.0, "")
        labels = ", ".join(state.labels(key))
        return DomainsResult(key, f"Derived domains in column {key!r} ({labels}); the cells "
                                  "are coloured by them.")

    return Job(steps, title="CausCell: spatial domains")
