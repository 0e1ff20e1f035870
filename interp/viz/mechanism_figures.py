"""Figures of the mechanism: attention and neurons over the (a, b) grid, the neuron x frequency
matrix, and Fourier spectra over training. Each draws arrays computed by :mod:`interp.viz.mechanism`.

>>> attention_grid_figure({"step 20000": mechanism.attention_grid(model)})          # doctest: +SKIP
>>> spectra_over_time_figure(mechanism.spectra_over_time(run), key_frequencies=[1, 21, 49])  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from ._figure import Figure

from ..errors import FigureError
from .figures import PHASE_GID, _boundaries, _np, _phase_legend, _step_ticks

__all__ = ["attention_grid_figure", "neuron_grids_figure", "neuron_frequency_figure", "spectra_over_time_figure"]

KEY_COLOUR = "#d62728"


def _grid_axes(ax, p: int, xlabel: bool, ylabel: bool) -> None:
    ticks = [0, p // 2, p - 1] if p > 10 else list(range(p))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.tick_params(labelsize=7, length=2)
    if xlabel:
        ax.set_xlabel("b", fontsize=8)
    if ylabel:
        ax.set_ylabel("a", fontsize=8)


def attention_grid_figure(grids: Mapping[str, Any], *, source: str = "a", destination: str = "=") -> Figure:
    """Attention from ``destination`` (the last position: '=', or b for [a, b] inputs) to ``source`` over the (a, b)
    grid, one row per checkpoint, one column per head.

    grids: row label (e.g. "step 7000: end of circuit formation") -> ``(n_heads, p, p)`` array
    (``mechanism.attention_grid``). One colour scale (0 to the largest value shown) and one colourbar.
    """
    if not grids:
        raise FigureError("attention_grid_figure: grids is empty (expected {label: (n_heads, p, p) array})")
    arrays = {}
    for label, g in grids.items():
        a = _np(g)
        if a.ndim != 3 or a.shape[1] != a.shape[2]:
            raise FigureError(f"attention_grid_figure: grids[{label!r}] has shape {a.shape}; expected (n_heads, p, p)")
        arrays[str(label)] = a
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise FigureError(f"attention_grid_figure: the grids have different shapes {sorted(shapes)}")
    n_heads, p, _ = shapes.pop()
    vmax = max(float(np.nanmax(a)) for a in arrays.values()) or 1.0
    rows = len(arrays)
    fig = Figure(figsize=(2.0 * n_heads + 1.2, 1.95 * rows + 0.7), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, n_heads, squeeze=False))
    image = None
    for r, (label, a) in enumerate(arrays.items()):
        for h in range(n_heads):
            ax = axes[r, h]
            image = ax.imshow(a[h], origin="lower", cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
            _grid_axes(ax, p, xlabel=r == rows - 1, ylabel=h == 0)
            if r == 0:
                ax.set_title(f"head {h}", fontsize=9)
            if h == 0:
                ax.annotate(label, (0, 0.5), xytext=(-34, 0), xycoords="axes fraction", textcoords="offset points",
                            ha="right", va="center", rotation=90, fontsize=8.5)
    bar = fig.colorbar(image, ax=axes, shrink=0.8, pad=0.01)
    bar.set_label(f"attention from {destination} to {source}", fontsize=8)
    fig.suptitle(f"Attention from {destination} to {source} over every input (a, b), layer 0", fontsize=11)
    return fig


def neuron_grids_figure(grids: Any, titles: Sequence[str], *, ncols: int = 4, position: str = "=") -> Figure:
    """Activations of some MLP neurons over the (a, b) grid, each on its own colour scale.

    grids: ``(n, p, p)`` (``mechanism.neuron_grids``); titles: one per neuron (e.g. "neuron 12, k = 21").
    """
    a = _np(grids)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[0] == 0:
        raise FigureError(f"neuron_grids_figure: grids has shape {a.shape}; expected (n_neurons, p, p) with n >= 1")
    if len(titles) != a.shape[0]:
        raise FigureError(f"neuron_grids_figure: {len(titles)} titles for {a.shape[0]} neurons")
    n, p = a.shape[0], a.shape[1]
    cols = max(1, min(ncols, n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.25 * cols + 0.3, 2.0 * rows + 0.5), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        image = ax.imshow(a[i], origin="lower", cmap="magma", interpolation="nearest")
        _grid_axes(ax, p, xlabel=i // cols == rows - 1, ylabel=i % cols == 0)
        ax.set_title(titles[i], fontsize=8)
        bar = fig.colorbar(image, ax=ax, shrink=0.85, pad=0.02)
        bar.ax.tick_params(labelsize=6)
    fig.suptitle(f"MLP neuron activations (blocks.0.mlp.hook_post at {position}) over every input (a, b)",
                 fontsize=11)
    return fig


def neuron_frequency_figure(nf: Any, key_frequencies: Sequence[int] = ()) -> Figure:
    """The neuron x frequency matrix: each neuron's share of variance per frequency, neurons sorted by cluster.

    nf: a ``mechanism.NeuronFrequencies`` (shares ``(d_mlp, K)``, frequency, clustered, order). Columns are
    neurons (clustered ones grouped by frequency, then the unclustered), rows frequencies; key
    frequencies are named in red on the frequency axis.
    """
    try:
        shares, order = _np(nf.shares), np.asarray(nf.order)
        freq, clustered = np.asarray(nf.frequency), np.asarray(nf.clustered, dtype=bool)
    except AttributeError as e:
        raise FigureError(f"neuron_frequency_figure: expected a NeuronFrequencies (mechanism.neuron_frequencies), "
                          f"got {type(nf).__name__} ({e})") from None
    if shares.ndim != 2 or sorted(order.tolist()) != list(range(shares.shape[0])):
        raise FigureError(f"neuron_frequency_figure: shares has shape {shares.shape} and order is not a "
                          "permutation of its neurons")
    n, K = shares.shape
    fig = Figure(figsize=(9, 4.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares[order].T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1,
                      interpolation="nearest", extent=(-0.5, n - 0.5, 0.5, K + 0.5))
    # cluster boundaries and names along the top
    group = np.where(clustered, freq, 0)[order]
    starts = [0] + [i for i in range(1, n) if group[i] != group[i - 1]] + [n]
    for s, e in zip(starts[:-1], starts[1:]):
        if s:
            ax.axvline(s - 0.5, color="black", lw=0.8)
        name = f"k={group[s]}" if group[s] else "unclustered"
        ax.text((s + e - 1) / 2, 1.01, f"{name}\n({e - s})", transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=7)
    _frequency_ticks(ax, K, key_frequencies, n_ticks=12)
    ax.set_ylabel("frequency k (key in red)")
    ax.set_xlabel(f"MLP neuron ({n}), sorted by cluster, then by share within a cluster")
    bar = fig.colorbar(image, ax=ax, pad=0.01)
    bar.set_label("share of the neuron's variance", fontsize=8)
    fig.suptitle(f"Neuron x frequency: share of each neuron's variance over (a, b) in {{const, cos k, sin k}}² "
                 f"(clustered: >= {getattr(nf, 'threshold', 0.85):g})", fontsize=10)
    return fig


def spectra_over_time_figure(spectra: Any, key_frequencies: Sequence[int] = (), phases: Any = None) -> Figure:
    """Frequency x step heatmaps of the Fourier-component norms of W_E and W_L (``mechanism.spectra_over_time``).

    Each checkpoint is a column as wide as the steps it stands for; key frequencies are marked
    (red ticks and triangles) and phase boundaries drawn as dashed lines. Colour: the norm
    divided by the largest norm at that step, so the spectrum's shape, not its scale, is shown
    (weight decay shrinks every norm during training).
    """
    try:
        steps, norms = np.asarray(spectra.steps, dtype=float), dict(spectra.norms)
    except AttributeError:
        raise FigureError(f"spectra_over_time_figure: expected a Spectra (mechanism.spectra_over_time), "
                          f"got {type(spectra).__name__}") from None
    if len(steps) == 0 or not norms:
        raise FigureError("spectra_over_time_figure: no steps or no norms")
    # column edges: halfway between checkpoints
    if len(steps) > 1:
        mids = (steps[1:] + steps[:-1]) / 2
        edges = np.concatenate([[steps[0] - (mids[0] - steps[0])], mids, [steps[-1] + (steps[-1] - mids[-1])]])
    else:
        edges = np.array([steps[0] - 0.5, steps[0] + 0.5])
    bounds = _boundaries(phases)
    fig = Figure(figsize=(9, 3.3 * len(norms) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(norms), 1, sharex=True))
    lines = []
    for ax, (name, values) in zip(axes, norms.items()):
        v = _np(values)
        if v.ndim != 2 or v.shape[0] != len(steps):
            raise FigureError(f"spectra_over_time_figure: norms[{name!r}] has shape {v.shape}; "
                              f"expected ({len(steps)}, K): one row per step")
        K = v.shape[1]
        top = v.max(axis=1, keepdims=True)
        rel = np.divide(v, top, out=np.zeros_like(v), where=top > 0)
        mesh = ax.pcolormesh(edges, np.arange(0.5, K + 1), rel.T, cmap="viridis", vmin=0, vmax=1, shading="flat")
        keys = _frequency_ticks(ax, K, key_frequencies, n_ticks=10)
        for k in keys:
            ax.plot([edges[0]], [k], marker=">", color=KEY_COLOUR, ms=6, clip_on=False, zorder=4)
        lines = []
        for _, phase, colour, step in bounds:
            ax.axvline(step, color="white", lw=2.2, alpha=0.6)  # keeps the dashes visible on any colour
            line = ax.axvline(step, color=colour, ls="--", lw=1.3)
            line.set_gid(PHASE_GID)
            lines.append(line)
        ax.set_ylabel("frequency k (key in red)")
        what = "W_E (embedding, token axis)" if name == "W_E" else (
            "W_L = W_out W_U (neuron-logit map, output axis)" if name == "W_L" else name)
        ax.set_title(f"Fourier-component norms of {what}, relative to the largest at each step", fontsize=9)
        bar = fig.colorbar(mesh, ax=ax, pad=0.01)
        bar.set_label("norm / max norm", fontsize=8)
    axes[-1].set_xlabel("step")
    _step_ticks(axes[-1])
    _phase_legend(fig, lines, bounds)
    fig.suptitle("Spectra over training: per-frequency norms sqrt(cos k² + sin k²) at every checkpoint", fontsize=11)
    return fig


def _frequency_ticks(ax, K: int, key_frequencies: Sequence[int], n_ticks: int) -> list[int]:
    """Tick about ``n_ticks`` frequencies 1..K on the y axis plus every key frequency (in bold red; plain
    ticks too close to a key one are dropped); returns the key frequencies in range."""
    keys = sorted({int(k) for k in key_frequencies if 1 <= int(k) <= K})
    every = max(1, math.ceil(K / n_ticks))
    ticks = sorted(set([1] + [k for k in range(1, K + 1) if k % every == 0] + keys))
    ticks = [t for t in ticks if t in keys or all(abs(t - k) > max(1, every // 3) for k in keys)]
    ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=7)
    for label in ax.get_yticklabels():
        if int(label.get_text()) in keys:
            label.set_color(KEY_COLOUR)
            label.set_fontweight("bold")
    return keys
