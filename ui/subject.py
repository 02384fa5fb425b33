"""What Predict, Inspect and Visualize look at: a trained run or a pretrained ImageNet classifier,
as one `Subject` (the model reference everything cached is keyed on, the class names, the image
size and resize mode), so the panels of ui.inside serve both alike.

The choice of source and of classifier is one for the three pages (kept when switching pages).
No TensorFlow here: core.pretrained is imported inside the functions (it imports none at import
either, but its models do when loaded).
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.runs import Run
from ui import i18n, inside
from ui.i18n import N_, t

SOURCES = {"run": N_("A trained run"), "pretrained": N_("A pretrained ImageNet classifier")}
RESIZE = "crop"  # a photo is cropped to the classifier's square, the way ImageNet models are evaluated


@dataclass(frozen=True)
class Subject:
    """The model a page looks at."""
    id: str                    # names its widgets and its kept results: the run id, or "pretrained-<key>"
    ref: tuple                 # the key of ui.inside's caches and of ui.inside.model(ref)
    classes: tuple[str, ...]   # the class names in output order
    size: int                  # input pixels (square)
    resize: str                # how an image is brought to that square (core.images)
    run: Run | None = None     # the trained run; None for a pretrained classifier
    key: str | None = None     # the classifier's key in core.pretrained.CLASSIFIERS

    @property
    def pretrained(self) -> bool:
        return self.run is None

    @property
    def name(self) -> str:
        """The run id, or the classifier's label (MobileNetV2)."""
        return self.run.id if self.run else classifier_label(self.key)


def of_run(run: Run) -> Subject:
    return Subject(run.id, inside.model_ref(run), tuple(run.config["classes"]), int(run.config["image_size"]),
                   run.config.get("resize", "crop"), run=run)


def of_classifier(key: str) -> Subject:
    from core import pretrained

    return Subject(f"pretrained-{key}", (inside.PRETRAINED, key), imagenet_classes(),
                   int(pretrained.CLASSIFIERS[key].size), RESIZE, key=key)


@st.cache_resource(show_spinner=False)
def imagenet_classes() -> tuple[str, ...]:
    """The 1,000 ImageNet class names (English), read once per server."""
    from core import pretrained

    return tuple(pretrained.class_names())


# ---------------------------------------------------------------- the picker

def picker() -> Subject | None:
    """A trained run or a pretrained classifier (shared by Predict, Inspect and Visualize); None
    when the chosen one cannot be used (the page has said why)."""
    source = st.radio(t("Model"), list(SOURCES), key=inside.SOURCE, persist_state="session", horizontal=True,
                      format_func=lambda s: t(SOURCES[s]),
                      help=t("A pretrained ImageNet classifier needs no training: it knows 1,000 everyday "
                             "classes (animals, objects, food), so every lesson of these pages works at once."))
    subject = classifier_picker() if source == "pretrained" else None
    if source != "pretrained":
        run = inside.run_picker()
        subject = of_run(run) if run else None
    if subject is not None:
        inside.warm(subject.ref)
    return subject


def classifier_picker() -> Subject | None:
    """Which pretrained classifier (all of them listed, the missing ones marked); its sentence when
    its weights are not here."""
    from core import pretrained

    keys = list(pretrained.CLASSIFIERS)
    if st.session_state.get(inside.CLASSIFIER) not in keys:
        st.session_state.pop(inside.CLASSIFIER, None)
    key = st.selectbox(t("Pretrained classifier"), keys, index=keys.index(pretrained.DEFAULT),
                       key=inside.CLASSIFIER, persist_state="session", format_func=classifier_choice,
                       help=t("Trained on ImageNet by their authors and downloaded once; a classifier whose "
                              "weights are not on this server is marked."))
    missing = availability(key)
    if missing is not None:
        st.warning(i18n.tm(missing))
        return None
    subject = of_classifier(key)
    problem = inside.model_problem_of(subject.ref)
    if problem:
        st.error(problem)
        return None
    return subject


def classifier_label(key: str) -> str:
    from core import pretrained

    return pretrained.CLASSIFIERS[key].label


def classifier_choice(key: str) -> str:
    """'MobileNetV2 · 224 px', or 'VGG16 · 224 px — weights not on this server'."""
    from core import pretrained

    label = f"{classifier_label(key)} · {pretrained.CLASSIFIERS[key].size} px"
    return label if availability(key) is None else t("{classifier} — weights not on this server", classifier=label)


@st.cache_resource(show_spinner=False, ttl=300)
def availability(key: str):
    """core.pretrained.availability, asked at most every five minutes (None: the weights are here)."""
    from core import pretrained

    return pretrained.availability(key)


def available_classifiers() -> list[str]:
    from core import pretrained

    return [k for k in pretrained.CLASSIFIERS if availability(k) is None]


def default_class(subject: Subject, wanted: str = "tabby") -> int:
    """The class a pretrained panel starts on (the tabby cat of the lessons), else the first."""
    if subject.pretrained:
        for i, name in enumerate(subject.classes):
            if wanted in name.lower():
                return i
    return 0
