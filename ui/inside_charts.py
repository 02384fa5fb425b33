"""Plotly figures of the Inspect and Visualize pages. Pure functions from plain data to a figure."""
from __future__ import annotations

import plotly.graph_objects as go

from ui.i18n import t

PREDICTED, OTHER, SECOND = "#4C78A8", "#BAB0AC", "#E45756"


def class_probabilities(probs, classes: list[str], true: int | None = None) -> go.Figure:
    """One horizontal bar per class, the most probable on top and coloured; the true class named."""
    order = sorted(range(len(classes)), key=lambda i: probs[i])
    top = order[-1]
    labels = [t("{name} (true)", name=classes[i]) if i == true else classes[i] for i in order]
    fig = go.Figure(go.Bar(x=[float(probs[i]) for i in order], y=labels, orientation="h",
                           marker_color=[PREDICTED if i == top else OTHER for i in order],
                           text=[f"{float(probs[i]):.1%}" for i in order], textposition="auto",
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_layout(height=80 + 34 * len(classes), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title=t("probability")))
    return fig


def before_after(before, after, classes: list[str]) -> go.Figure:
    """Grouped bars: the probabilities of each class on the original image and on the attacked one."""
    fig = go.Figure()
    fig.add_bar(name=t("original"), x=classes, y=[float(p) for p in before], marker_color=PREDICTED,
                text=[f"{float(p):.1%}" for p in before], textposition="auto")
    fig.add_bar(name=t("adversarial"), x=classes, y=[float(p) for p in after], marker_color=SECOND,
                text=[f"{float(p):.1%}" for p in after], textposition="auto")
    fig.update_layout(barmode="group", height=280, margin=dict(l=10, r=10, t=10, b=10),
                      yaxis=dict(range=[0, 1], tickformat=".0%", title=t("probability")),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def probability_by_step(history: list[dict], class_name: str) -> go.Figure:
    """The class probability at each gradient-ascent step of an "ideal class" image."""
    fig = go.Figure(go.Scatter(x=[h["step"] for h in history], y=[h["probability"] for h in history],
                               mode="lines", line=dict(color=PREDICTED, width=2), name=class_name))
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=t("step"),
                      yaxis=dict(range=[0, 1.02], tickformat=".0%", title=t("probability of {name}", name=class_name)))
    return fig


def accuracy_vs_epsilon(points: list[tuple[float, float]], sample: int) -> go.Figure:
    """Accuracy under FGSM against epsilon, epsilon shown in pixel levels (1/255)."""
    xs = [round(e * 255, 2) for e, _ in points]
    fig = go.Figure(go.Scatter(x=xs, y=[a for _, a in points], mode="lines+markers",
                               line=dict(color=SECOND, width=2), marker=dict(size=8),
                               hovertemplate=t("ε = %{x}/255: accuracy %{y:.1%}") + "<extra></extra>"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10),
                      title=dict(text=t("accuracy under FGSM on {n} test images", n=sample), font=dict(size=13)),
                      xaxis=dict(title=t("epsilon (pixel levels out of 255)")),
                      yaxis=dict(range=[0, 1.02], tickformat=".0%", title=t("accuracy")))
    return fig
