"""Drawing of a (suggested) concept graph with networkx and matplotlib."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Edge colours by status; undirected edges are also dashed and have no arrow head.
STATUS_COLORS = {
    "directed": "#1f77b4",
    "prior": "#7f7f7f",
    "user": "#2ca02c",
    "undirected": "#ff7f0e",
}


def _edge_frame(graph: Any, concepts: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    if hasattr(graph, "edges") and hasattr(graph, "concepts"):  # a DagSuggestion
        return graph.edges, list(graph.concepts)
    if isinstance(graph, pd.DataFrame):
        frame = graph
    else:
        from .data import parse_dag

        frame = pd.DataFrame(parse_dag(graph), columns=["source", "target"])
    if "status" not in frame:
        frame = frame.assign(status="directed")
    names = list(concepts) if concepts is not None else list(
        dict.fromkeys([*frame["source"], *frame["target"]]))
    return frame, names


def _layers(names: list[str], frame: pd.DataFrame) -> dict[str, int]:
    """Longest-path depth over the oriented edges (roots at 0)."""
    depth = dict.fromkeys(names, 0)
    directed = frame[frame["status"] != "undirected"]
    for _ in range(len(names)):
        changed = False
        for a, b in zip(directed["source"], directed["target"]):
            if depth[b] < depth[a] + 1 and depth[a] + 1 < len(names):
                depth[b], changed = depth[a] + 1, True
        if not changed:
            break
    return depth


def dag(graph: Any, ax: Any = None, *, concepts: Sequence[str] | None = None,
        title: str | None = None, show_p: bool = True) -> Any:
    """Draw a concept graph: roots on the left, children to the right.

    Parameters
    ----------
    graph
        A :class:`~napari_causcell.tl.DagSuggestion`, an edges DataFrame (``source``,
        ``target`` and optionally ``status``, ``p_value``) or an edge list / ``"a->b"`` string.
    ax
        Matplotlib axes (a new figure when ``None``).
    concepts
        Nodes to show (default: the suggestion's concepts or the edges' endpoints).
    show_p
        Label edges with their marginal p-value when known.

    Returns
    -------
    matplotlib.axes.Axes
        Directed edges are solid arrows coloured by status (:data:`STATUS_COLORS`);
        undirected edges are dashed orange lines without arrow heads. An edge whose straight
        line would pass behind another node (e.g. ``age -> cell_type`` past ``domain`` when
        the three sit on one line) is drawn as an arc around it; each arrow's ``gid`` is
        ``"source->target"``.
    """
    import matplotlib.pyplot as plt

    frame, names = _edge_frame(graph, concepts)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.0, 3.0))
    g, pos = _layout(names, frame)
    ax.set_axis_off()
    _draw(g, pos, ax, frame, show_p)
    if title is None and hasattr(graph, "method"):
        title = f"suggested graph ({graph.method.upper()}, alpha={graph.alpha})"
    if title:
        ax.set_title(title, fontsize=9)
    ax.margins(0.2)
    return ax


def _layout(names: list[str], frame: pd.DataFrame) -> tuple[Any, dict]:
    """The networkx graph of the nodes and their positions: layers left to right once any
    edge is oriented, else a circle (no order to show)."""
    import networkx as nx

    g = nx.DiGraph()
    layers = _layers(names, frame)
    for n in names:
        g.add_node(n, layer=layers[n])
    if not names:
        pos = {}
    elif (frame["status"] != "undirected").any():
        pos = nx.multipartite_layout(g, subset_key="layer")
    else:  # nothing oriented yet: no left-to-right order to show
        pos = nx.circular_layout(g)
    return g, pos


def _draw(g: Any, pos: dict, ax: Any, frame: pd.DataFrame, show_p: bool) -> None:
    """Nodes, then the edges of each status in its colour (with p-values), then the legend."""
    import networkx as nx
    from matplotlib.lines import Line2D

    nx.draw_networkx_nodes(g, pos, ax=ax, node_color="#dbe9f6", edgecolors="#333333",
                           node_size=1200)
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=8)
    used = []
    for status, color in STATUS_COLORS.items():
        part = frame[frame["status"] == status]
        if part.empty:
            continue
        used.append(status)
        _draw_edges(g, pos, ax, part, color, undirected=status == "undirected", show_p=show_p)
    if used:
        handles = [Line2D([], [], color=STATUS_COLORS[s], lw=2,
                          ls="--" if s == "undirected" else "-", label=s) for s in used]
        ax.legend(handles=handles, fontsize=7, loc="lower center", ncol=len(used),
                  frameon=False, bbox_to_anchor=(0.5, -0.12))


#: arc3 curvatures tried, in order, for an edge whose straight line would cross a node
_RADS = (0.0, 0.3, 0.5, 0.7, -0.3, -0.5, -0.7)
#: clearance around a node centre, as a share of the layout's (unit-box) extent
_CLEARANCE = 0.12


def _unit_box(pos: dict) -> dict:
    """Positions rescaled so that x and y each span [0, 1] (a flat axis sits at 0.5)."""
    xy = np.array(list(pos.values()), dtype=float).reshape(-1, 2)
    lo, span = xy.min(axis=0), np.ptp(xy, axis=0)
    out = np.where(span > 0, (xy - lo) / np.where(span > 0, span, 1.0), 0.5)
    return dict(zip(pos, out))


def _arc(p0: np.ndarray, p1: np.ndarray, rad: float, n: int = 41) -> np.ndarray:
    """Points of matplotlib's ``arc3,rad=...`` curve from ``p0`` to ``p1`` (a quadratic
    Bezier whose control point is ``rad`` chord lengths off the chord's middle)."""
    d = p1 - p0
    control = (p0 + p1) / 2 + rad * np.array([d[1], -d[0]])
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * control + t ** 2 * p1


def edge_curvatures(pos: dict, edges: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """``{edge: rad}``: 0 (straight) when the line clears every other node, else the first
    curvature of :data:`_RADS` whose arc does (e.g. an edge skipping a node of a line
    layout bends around it), so that no edge hides behind a node."""
    unit = _unit_box(pos) if pos else {}
    out = {}
    for a, b in edges:
        others = np.array([unit[n] for n in unit if n not in (a, b)]).reshape(-1, 2)
        out[(a, b)] = _RADS[-1]
        for rad in _RADS:
            pts = _arc(unit[a], unit[b], rad)
            if not len(others) or (np.linalg.norm(pts[:, None] - others[None], axis=2).min()
                                   > _CLEARANCE):
                out[(a, b)] = rad
                break
    return out


def _draw_edges(g: Any, pos: dict, ax: Any, part: pd.DataFrame, color: str, *,
                undirected: bool, show_p: bool) -> None:
    """Edges of one status: solid arrows, or dashed lines without heads when undirected;
    edges that would cross a node are drawn as arcs (:func:`edge_curvatures`)."""
    edgelist = list(zip(part["source"], part["target"]))
    rads = edge_curvatures(pos, edgelist)
    p_values = dict(zip(edgelist, part["p_value"])) if "p_value" in part else {}
    for rad in dict.fromkeys(rads.values()):
        edges = [e for e in edgelist if rads[e] == rad]
        _draw_arcs(g, pos, ax, edges, color, undirected, f"arc3,rad={rad}",
                   p_values if show_p else {})


def _draw_arcs(g: Any, pos: dict, ax: Any, edges: list, color: str, undirected: bool,
               style: str, p_values: dict) -> None:
    """Edges of one colour and curvature, each arrow tagged ``gid="a->b"``, with p-values."""
    import networkx as nx

    patches = nx.draw_networkx_edges(
        g, pos, edgelist=edges, ax=ax, edge_color=color, width=2.0,
        style="dashed" if undirected else "solid", arrows=True,
        arrowstyle="-" if undirected else "-|>", arrowsize=16, node_size=1200,
        connectionstyle=style,
    )
    for patch, (a, b) in zip(patches, edges):
        patch.set_gid(f"{a}->{b}")
    labels = {e: f"p={p:.1g}" if p > 0 else "p<1e-300" for e, p in p_values.items()
              if e in edges and pd.notna(p)}
    if labels:
        nx.draw_networkx_edge_labels(g, pos, edge_labels=labels, ax=ax, font_size=6,
                                     font_color=color, connectionstyle=style)
