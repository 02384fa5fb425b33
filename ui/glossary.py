"""The words of deep learning this dashboard uses, each explained in one sentence for a learner.

A page lists the ones it shows under its introduction ("Words on this page"), and widgets reuse
the same sentence as their help, so a term is explained the same way everywhere.
"""
from __future__ import annotations

import streamlit as st

from ui.i18n import N_, t

TERMS = {
    "epoch": N_("**Epoch**: one pass of the training over every training image."),
    "batch": N_("**Batch**: the few images the network looks at before it adjusts its weights once."),
    "loss": N_("**Loss**: how wrong the model is, as one number the training makes smaller; 0 is perfect."),
    "val_loss": N_("**Validation loss** (val_loss): the loss on the validation images, which the model never "
                   "trains on. When it rises while the training loss still falls, the model is overfitting."),
    "accuracy": N_("**Accuracy**: the share of images whose predicted class is the right one."),
    "overfitting": N_("**Overfitting**: the model learns the training images by heart, details and noise "
                      "included, and does worse on new images."),
    "augmentation": N_("**Data augmentation**: random turns, shifts, zooms and flips of the training images, so "
                       "the model never sees the same picture twice and overfits less."),
    "learning_rate": N_("**Learning rate**: how big a step the weights take at each batch; too big and the "
                        "training jumps around, too small and it crawls."),
    "feature_extraction": N_("**Feature extraction**: a network trained on ImageNet describes each image; only a "
                             "small new classifier (the head) learns from those descriptions."),
    "fine_tuning": N_("**Fine-tuning**: after the head, the top layers of the pretrained base learn too, slowly, "
                      "to fit your images better."),
    "frozen": N_("**Frozen**: a layer whose weights do not change during training."),
    "head": N_("**Head**: the small classifier on top of the base that turns its features into your classes."),
    "batchnorm": N_("**BatchNorm** (batch normalization): a layer that keeps each channel's values in a steady "
                    "range; it learns no features, and it stays frozen when a base is fine-tuned."),
    "mixed_precision": N_("**Mixed precision**: computing in 16-bit numbers where the GPU supports it — faster, "
                          "with the same accuracy; always off on a CPU."),
    "xla": N_("**XLA**: TensorFlow compiling the model into fewer, faster steps; \"auto\" lets Keras decide "
              "(off on a CPU)."),
    "feature_map": N_("**Feature map**: what one filter of a layer sees in the image: bright where its pattern is."),
    "grad_cam": N_("**Grad-CAM** (class activation map): a heatmap of where in the photo the evidence for a class "
                   "lies, from the gradients of that class's score."),
    "grad_cam_pp": N_("**Grad-CAM++**: a refinement of Grad-CAM that weighs each part of the feature maps by how "
                      "much it adds, and finds several objects of one class better."),
    "fgsm": N_("**FGSM** (fast gradient sign method): every pixel moves by ε in the direction that makes the "
               "model most wrong — one step, and the change is invisible."),
    "epsilon": N_("**ε** (epsilon): the most any pixel may change in an attack, in levels out of 255."),
    "confusion_matrix": N_("**Confusion matrix**: one row per true class, one column per predicted class; "
                           "everything off the diagonal is a mistake."),
    "precision_recall": N_("**Precision**: of the images predicted as a class, the share that are; **recall**: of "
                           "the images of a class, the share found."),
}

PAGE_TERMS = {
    "augment": ("augmentation", "overfitting"),
    "train": ("epoch", "batch", "loss", "val_loss", "accuracy", "learning_rate", "feature_extraction",
              "fine_tuning", "frozen", "head", "batchnorm", "mixed_precision", "xla"),
    "evaluate": ("accuracy", "loss", "confusion_matrix", "precision_recall", "overfitting"),
    "predict": ("accuracy",),
    "inspect": ("feature_map", "grad_cam", "grad_cam_pp"),
    "visualize": ("feature_map", "fgsm", "epsilon"),
}


def help_of(term: str) -> str:
    """The term's sentence, for a widget's help."""
    return t(TERMS[term])


def words_on(page: str) -> None:
    """The page's terms, folded under its introduction."""
    terms = PAGE_TERMS.get(page)
    if terms:
        with st.expander(t("Words on this page"), icon=":material/menu_book:"):
            st.markdown("\n".join(f"- {t(TERMS[term])}" for term in terms))
