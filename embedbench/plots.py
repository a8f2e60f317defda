"""The run's figures: the retention / size trade-off and per-technique bars.

Both take the retention table's rows as dicts of strings (as `retention.csv` holds
them, read by column name) and return a matplotlib `Figure` built without pyplot
(no global state, Agg canvas), so a run, a test or `embedbench report` can draw
them in any process. matplotlib is imported only when a figure is drawn.

- `tradeoff_figure`: one panel per task; x = size multiplier (log2 axis) or bits
  per vector; y = retention % with the 95% interval as error bars; one marker shape
  per technique; several providers/models as colours (one error-bar container per
  (series, technique) point, so a panel holds techniques × series containers).
- `bars_figure`: retention per technique, grouped by task (and series), with the
  interval as error bars.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from embedbench.results import extra_identity

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Rows = Sequence[dict[str, str]]
FIGURES = {  # file name in the run folder -> title
    "tradeoff.png": "Retention vs size per task",
    "retention_bars.png": "Retention per technique",
}
MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p", "d", "8", "H"]
X_AXES = ("size", "bits")
DPI = 110
PLOTTABLE = 1e12  # larger values (e.g. ±1e308) overflow matplotlib's layout: not drawn
RC = {
    "svg.hashsalt": "embedbench",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": False,
    "text.parse_math": False,  # a `$` in a task, model or technique name is just a `$`
}


def _ordered(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _f(row: dict[str, str], col: str) -> float | None:
    """A cell as a number; None when empty, not a number or beyond plotting (±1e12)."""
    try:
        v = float(row.get(col) or "")
    except ValueError:
        return None
    return v if math.isfinite(v) and abs(v) <= PLOTTABLE else None


def series_name(row: dict[str, str], extra: list[str]) -> str:
    """`provider:model` plus any extra identity column (e.g. provider options)."""
    name = f"{row['provider']}:{row['model']}"
    more = [f"{c}={row.get(c, '')}" for c in extra]
    return name + (f" ({', '.join(more)})" if more else "")


def x_value(row: dict[str, str], x: str) -> float | None:
    """Size multiplier, or bits per vector (column, else dim × bits/dim, else 8 × bytes)."""
    if x == "size":
        return _f(row, "size_multiplier")
    bits = _f(row, "bits_per_vector")
    if bits is None:
        dim, bpd = _f(row, "dim"), _f(row, "bits_per_dim")
        bits = dim * bpd if dim is not None and bpd is not None else None
    if bits is None:
        nbytes = _f(row, "bytes_per_vector")
        bits = 8 * nbytes if nbytes is not None else None
    return bits


def _errors(row: dict[str, str]) -> tuple[float, float, float] | None:
    ret = _f(row, "retention")
    if ret is None:
        return None
    lo, hi = _f(row, "ci_low"), _f(row, "ci_high")
    lo = ret if lo is None else lo
    hi = ret if hi is None else hi
    return ret, max(ret - lo, 0.0), max(hi - ret, 0.0)


def _layout(rows: Rows) -> tuple[list[str], list[str], list[str], list[str]]:
    columns = list(rows[0]) if rows else []
    extra = extra_identity(columns, ignore=("subset", "split"))  # one row per task is drawn
    tasks = _ordered([r["task"] for r in rows])
    techniques = _ordered([r["technique"] for r in rows])
    series = _ordered([series_name(r, extra) for r in rows])
    return tasks, techniques, series, extra


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _short(series: str, width: int = 26) -> str:
    """A tick label: the model's last path part, wrapped."""
    provider, _, model = series.partition(":")
    head, sep, extra = model.partition(" (")
    text = f"{provider}:{head.rsplit('/', 1)[-1]}{sep}{extra}"
    return "\n".join(textwrap.wrap(text, width)) or text


def _size_label(v: float) -> str:
    return f"{v:g}×"


def tradeoff_figure(rows: Rows, x: str = "size") -> Figure:
    """Retention % against size (log2 x axis), one panel per task."""
    import matplotlib
    from matplotlib.lines import Line2D

    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, got {x!r}")
    tasks, techniques, series, extra = _layout(rows)
    multi = len(series) > 1
    tech_color = dict(zip(techniques, _colors(len(techniques)), strict=True))
    series_color = dict(zip(series, _colors(len(series)), strict=True))
    marker = {t: MARKERS[i % len(MARKERS)] for i, t in enumerate(techniques)}
    ncols = min(len(tasks), 3) or 1
    nrows = max(math.ceil(len(tasks) / ncols), 1)
    with matplotlib.rc_context(RC):
        fig = _figure(4.4 * ncols + 0.4, 3.4 * nrows + 0.9)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(tasks) :]:
            ax.remove()
        for ax, task in zip(axes, tasks, strict=False):
            points = []
            for r in rows:
                if r["task"] != task:
                    continue
                xv, err = x_value(r, x), _errors(r)
                if xv is None or xv <= 0 or err is None:
                    continue
                s = series_name(r, extra)
                points.append((xv, series.index(s), techniques.index(r["technique"]), s, r, err))
            points.sort(key=lambda p: (p[0], p[1], p[2]))
            by_x: dict[float, list[int]] = {}
            for i, p in enumerate(points):
                by_x.setdefault(p[0], []).append(i)
            for xv, idx in by_x.items():
                k = len(idx)
                step = min(0.09, 0.6 / max(k - 1, 1))  # dodge overlapping points (log2 units)
                for j, i in enumerate(idx):
                    xp = xv * 2 ** ((j - (k - 1) / 2) * step)
                    _, _, _, s, r, (ret, lo, hi) = points[i]
                    tech = r["technique"]
                    color = series_color[s] if multi else tech_color[tech]
                    ax.errorbar(
                        [xp],
                        [ret],
                        yerr=[[lo], [hi]],
                        fmt=marker[tech],
                        color=color,
                        markersize=6,
                        capsize=2.5,
                        elinewidth=1,
                        markeredgecolor="black" if multi else color,
                        markeredgewidth=0.5,
                        label=f"{tech} · {s}",
                    )
            ax.axhline(100.0, color="grey", linewidth=0.8, linestyle="--", zorder=0)
            ax.set_xscale("log", base=2)
            ticks = sorted(by_x)
            if ticks:
                ax.set_xticks(ticks)
                ax.set_xticklabels([_size_label(t) if x == "size" else f"{t:g}" for t in ticks])
                ax.set_xlim(min(ticks) / 2**0.5, max(ticks) * 2**0.5)
            ax.minorticks_off()
            ax.set_title(task)
            ax.set_xlabel(
                "size multiplier vs float32 (log2)" if x == "size" else "bits per vector (log2)"
            )
            ax.set_ylabel("retention % (95% CI)")
        handles = [
            Line2D(
                [],
                [],
                marker=marker[t],
                linestyle="",
                color="dimgrey" if multi else tech_color[t],
                label=t,
            )
            for t in techniques
        ]
        if multi:
            handles += [
                Line2D([], [], marker="s", linestyle="", color=series_color[s], label=s)
                for s in series
            ]
        if handles:
            fig.legend(
                handles=handles,
                loc="outside lower center",
                ncol=min(len(handles), 4 if multi else 7),
                frameon=False,
            )
        fig.suptitle("Retention vs size (float = 100%)")
    return fig


def bars_figure(rows: Rows) -> Figure:
    """Retention per technique, grouped by task (and provider:model when several)."""
    import matplotlib
    from matplotlib.patches import Patch

    tasks, techniques, series, extra = _layout(rows)
    multi = len(series) > 1
    groups = _ordered([(r["task"], series_name(r, extra)) for r in rows if _errors(r) is not None])
    color = dict(zip(techniques, _colors(len(techniques)), strict=True))
    width = 0.8 / max(len(techniques), 1)
    lows = []
    highs = []
    with matplotlib.rc_context(RC):
        fig = _figure(max(6.0, 0.32 * len(groups) * len(techniques) + 2.0), 4.2)
        ax = fig.add_subplot()
        for ti, tech in enumerate(techniques):
            xs, ys, lo, hi = [], [], [], []
            for gi, (task, s) in enumerate(groups):
                for r in rows:
                    if r["task"] == task and r["technique"] == tech:
                        if series_name(r, extra) != s or _errors(r) is None:
                            continue
                        ret, el, eh = _errors(r)
                        xs.append(gi + (ti - (len(techniques) - 1) / 2) * width)
                        ys.append(ret)
                        lo.append(el)
                        hi.append(eh)
                        lows.append(ret - el)
                        highs.append(ret + eh)
            if xs:
                ax.bar(
                    xs,
                    ys,
                    width=width * 0.92,
                    color=color[tech],
                    yerr=[lo, hi],
                    capsize=2,
                    error_kw={"elinewidth": 0.8},
                    label=tech,
                )
        bottom = 0.0
        if lows:
            bottom = max(0.0, 5 * math.floor((min(lows) - 3) / 5))
            ax.set_ylim(bottom, max(max(highs), 100.0) + 1.5)
        ax.axhline(100.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{t}\n{_short(s)}" if multi else t for t, s in groups])
        ax.set_ylabel("retention % (95% CI)" + (f", axis from {bottom:g}" if bottom > 0 else ""))
        ax.grid(axis="x", visible=False)
        ax.set_title("Retention per technique (float = 100%)")
        fig.legend(
            handles=[Patch(color=color[t], label=t) for t in techniques],
            loc="outside lower center",
            ncol=min(len(techniques), max(2, int(fig.get_figwidth() / 1.45))),
            frameon=False,
        )
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, without a Software tag (stable across versions)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()
