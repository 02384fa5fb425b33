"""Plotly figures of the dashboard. Pure functions from plain data to a figure."""
from __future__ import annotations

from collections import Counter

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui.i18n import N_, t

SPLIT_COLOURS = {"train": "#4C78A8", "validation": "#F58518", "test": "#54A24B"}
SPLIT_NAMES = {"train": N_("train"), "validation": N_("validation"), "test": N_("test")}
MAX_BATCH_POINTS = 1500  # per-batch curves are thinned above this, so the browser stays fast


def split_counts(counts: dict[str, dict[str, int]]) -> go.Figure:
    """Grouped bars: images per class, one colour per split."""
    fig = go.Figure()
    for split, per_class in counts.items():
        if sum(per_class.values()):
            fig.add_bar(name=t(SPLIT_NAMES.get(split, split)), x=list(per_class), y=list(per_class.values()),
                        marker_color=SPLIT_COLOURS.get(split), text=list(per_class.values()))
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=30, b=10),
                      yaxis_title=t("images"), legend_title_text=t("split"))
    return fig


def image_sizes(sizes: dict[str, tuple[int, int]]) -> go.Figure:
    """Width against height of the original files; the marker grows with the number of files."""
    counts = Counter(sizes.values())
    dims = list(counts)
    n = [counts[d] for d in dims]
    biggest = max(n) if n else 1
    fig = go.Figure(go.Scatter(
        x=[w for w, _ in dims], y=[h for _, h in dims], mode="markers",
        marker=dict(size=[8 + 32 * (k / biggest) ** 0.5 for k in n], opacity=0.6, color="#4C78A8"),
        text=[t("{w}×{h}: {n} images", w=w, h=h, n=k) for (w, h), k in zip(dims, n)], hoverinfo="text"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title=t("width (px)"), yaxis_title=t("height (px)"))
    fig.update_xaxes(rangemode="tozero")
    fig.update_yaxes(rangemode="tozero")
    return fig


def batch_positions(batches: list[dict]) -> list[float]:
    """Each batch record's position in epochs (epoch 3, batch 5 of 10 -> 2.5)."""
    steps: dict[tuple, int] = {}
    for b in batches:
        key = (b["phase"], b["epoch"])
        steps[key] = max(steps.get(key, 0), b["batch"])
    full = max(steps.values(), default=1)
    # The epoch in progress is not complete yet: measure it against the longest epoch seen.
    return [b["epoch"] - 1 + b["batch"] / max(full, 1) for b in batches]


def training_curves(series: list[dict], title: str | None = None) -> go.Figure:
    """Loss and accuracy side by side against epochs.

    Each series: {"name", "x", "loss", "accuracy", "kind": "batch" | "epoch", "dash"?}.
    Per-batch series are drawn thin and light, per-epoch ones with markers. The accuracy axis
    zooms to the data: curves between 97 and 99 % are not squashed at the top of 0–100 %.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08)
    palette = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D"]
    for i, s in enumerate(series):
        colour = s.get("color") or palette[i % len(palette)]
        x, loss, acc = _thin(s["x"], s["loss"], s["accuracy"]) if s["kind"] == "batch" else \
            (s["x"], s["loss"], s["accuracy"])
        style = dict(mode="lines", line=dict(width=1, color=colour), opacity=0.45) if s["kind"] == "batch" else \
            dict(mode="lines+markers", line=dict(width=2, color=colour, dash=s.get("dash", "solid")))
        for col, y in ((1, loss), (2, acc)):
            fig.add_trace(go.Scatter(x=x, y=y, name=s["name"], legendgroup=s["name"],
                                     showlegend=col == 1, **style), row=1, col=col)
    fig.update_xaxes(title_text=t("epoch"))
    fig.update_yaxes(title_text=t("loss"), rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text=t("accuracy"), range=accuracy_range([a for s in series for a in s["accuracy"]]),
                     tickformat=".0%" if _span(series) > 0.05 else ".1%", row=1, col=2)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40 if title else 20, b=10),
                      legend=dict(orientation="h", y=-0.22), title=title, uirevision="curves")
    return fig


def accuracy_range(values) -> list[float]:
    """The accuracy axis: the data's range with a margin, inside 0–100 %; all of 0–100 % without data."""
    values = [v for v in values if v is not None]
    if not values:
        return [0, 1.02]
    low, high = min(values), max(values)
    margin = max(0.005, 0.08 * (high - low))
    return [max(0.0, low - margin), min(1.0, high + margin) + 0.002]


def _span(series: list[dict]) -> float:
    values = [v for s in series for v in s["accuracy"] if v is not None]
    return max(values) - min(values) if values else 1.0


def smooth(values: list, factor: float) -> list:
    """Exponential moving average (the book's smooth_curve): each point is factor × the previous
    smoothed point + (1 − factor) × itself. factor 0 leaves the curve as it is; gaps stay gaps."""
    smoothed, previous = [], None
    for v in values:
        if v is None:
            smoothed.append(None)
            continue
        previous = v if previous is None else factor * previous + (1 - factor) * v
        smoothed.append(previous)
    return smoothed


def _thin(x, *ys):
    step = max(1, -(-len(x) // MAX_BATCH_POINTS))
    return (list(x)[::step],) + tuple(list(y)[::step] for y in ys)


def job_curves(batches: list[dict], epochs: list[dict]) -> go.Figure:
    """The live curves of a training job: train per batch, validation per epoch."""
    series = []
    if batches:
        series.append({"name": t("train (per batch)"), "kind": "batch", "x": batch_positions(batches),
                       "loss": [b["loss"] for b in batches], "accuracy": [b["accuracy"] for b in batches],
                       "color": "#4C78A8"})
    if epochs:
        series.append({"name": t("train (epoch mean)"), "kind": "epoch", "x": [e["epoch"] for e in epochs],
                       "loss": [e["loss"] for e in epochs], "accuracy": [e["accuracy"] for e in epochs],
                       "color": "#4C78A8", "dash": "dot"})
        val = [e for e in epochs if e.get("val_loss") is not None]
        series.append({"name": t("validation"), "kind": "epoch", "x": [e["epoch"] for e in val],
                       "loss": [e["val_loss"] for e in val], "accuracy": [e["val_accuracy"] for e in val],
                       "color": "#F58518"})
    fig = training_curves(series)
    _mark_phases(fig, epochs)
    return fig


def history_curves(runs: list, labels: list[str] | None = None, smoothing: float = 0.0) -> go.Figure:
    """Validation (solid) and train (dotted) curves of several runs, one colour per run, named by
    their short labels; smoothing (0–1) draws each curve as its exponential moving average."""
    palette = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D"]
    labels = labels or [run.id for run in runs]
    series = []
    for i, (run, label) in enumerate(zip(runs, labels)):
        hist, colour = run.history, palette[i % len(palette)]
        val = [h for h in hist if h.get("val_loss") is not None]
        series.append({"name": t("{run} validation", run=label), "kind": "epoch", "color": colour,
                       "x": [h["epoch"] for h in val], "loss": smooth([h["val_loss"] for h in val], smoothing),
                       "accuracy": smooth([h.get("val_accuracy") for h in val], smoothing)})
        series.append({"name": t("{run} train", run=label), "kind": "epoch", "color": colour, "dash": "dot",
                       "x": [h["epoch"] for h in hist], "loss": smooth([h.get("loss") for h in hist], smoothing),
                       "accuracy": smooth([h.get("accuracy") for h in hist], smoothing)})
    return training_curves(series)


def _mark_phases(fig: go.Figure, epochs: list[dict]) -> None:
    """A dashed line where fine-tuning starts (after the head phase)."""
    first = next((e for e in epochs if e["phase"] == "fine-tune"), None)
    if first:
        for col in (1, 2):
            fig.add_vline(x=first["epoch"] - 1, line_dash="dash", line_color="grey", row=1, col=col)


def confusion_matrix(cm: list[list[int]], classes: list[str], selected: tuple[int, int] | None = None) -> go.Figure:
    """Rows: true class; columns: predicted class; the chosen cell outlined.

    A heatmap cannot be selected in the browser, so an invisible marker sits on each cell: clicking
    a cell selects its marker, whose customdata is (true, predicted) — see cell_of_selection.
    """
    n = len(classes)
    fig = go.Figure(go.Heatmap(z=cm, x=list(range(n)), y=list(range(n)), colorscale="Blues", text=cm,
                               texttemplate="%{text}", hoverinfo="skip", showscale=False))
    cells = [(true, pred) for true in range(n) for pred in range(n)]
    fig.add_trace(go.Scatter(
        x=[p for _, p in cells], y=[r for r, _ in cells], customdata=cells, mode="markers",
        marker=dict(size=max(12, 300 // max(n, 1)), symbol="square", opacity=0),
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)), showlegend=False,
        hovertext=[t("true {true}, predicted {predicted}: {n} — click to see these images",
                     true=classes[r], predicted=classes[p], n=cm[r][p]) for r, p in cells],
        hoverinfo="text"))
    if selected:
        true, pred = selected
        fig.add_shape(type="rect", x0=pred - 0.5, x1=pred + 0.5, y0=true - 0.5, y1=true + 0.5,
                      line=dict(color="#E45756", width=3))
    ticks = dict(tickmode="array", tickvals=list(range(n)), ticktext=classes)
    fig.update_layout(height=120 + 60 * n, margin=dict(l=10, r=10, t=30, b=10), clickmode="event+select",
                      dragmode=False, xaxis=dict(title=t("predicted"), range=[-0.5, n - 0.5], **ticks),
                      yaxis=dict(title=t("true"), range=[n - 0.5, -0.5], **ticks))
    return fig


def cell_of_selection(selection) -> tuple[int, int] | None:
    """The (true, predicted) cell a click on confusion_matrix selected, from st.plotly_chart's event."""
    points = (selection or {}).get("selection", {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)) and len(data) == 2:
            return int(data[0]), int(data[1])
    return None


def ladder(rows: list[dict]) -> go.Figure:
    """One bar per run (its test accuracy) and, for a run of a recipe, the published figure as a
    marker beside it. rows: {"label", "ours", "published" (None when there is none)}."""
    fig = go.Figure(go.Bar(x=[r["label"] for r in rows], y=[r["ours"] for r in rows], name=t("ours (test)"),
                           marker_color="#4C78A8", text=[f"{r['ours']:.1%}" for r in rows], textposition="inside"))
    published = [r for r in rows if r.get("published") is not None]
    low = min([r["ours"] for r in rows] + [r["published"] for r in published])
    if published:
        fig.add_trace(go.Scatter(x=[r["label"] for r in published], y=[r["published"] for r in published],
                                 mode="markers", name=t("published"),
                                 marker=dict(symbol="line-ew-open", size=40, line=dict(width=4, color="#E45756"))))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25),
                      yaxis=dict(title=t("test accuracy"), tickformat=".0%", range=[max(0.0, low - 0.1), 1.0]))
    return fig
