"""Tiny models with the layer names of ours, shared by the explain, visualize and adversarial tests."""
from __future__ import annotations

import keras
from keras import layers


def tiny_convnet(size: int = 32, conv2_filters: int = 16, augment: bool = False) -> keras.Model:
    """image -> [augmentation] -> preprocess -> conv1/pool1/conv2 -> head_pool -> predictions."""
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.RandomFlip("horizontal", name="augmentation")(inputs) if augment else inputs
    x = layers.Rescaling(1 / 255.0, name="preprocess")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(conv2_filters, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


TINT_SIZE = 32
TINT_CAST = 6.0  # pixel levels added to red and taken from blue (or the reverse), noise spans 136


def tint_images(n: int, seed: int, size: int = TINT_SIZE):
    """The toy task of the visualize and adversarial tests: a faint colour cast over loud noise
    (class 0 a little red, class 1 a little blue). Easy to learn and, like real photos, decided by
    many pixels a little each, which is what makes small adversarial perturbations work."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.uniform(60, 196, (n, size, size, 3)).astype(np.float32)
    y = rng.integers(0, 2, n)
    cast = np.where(y == 0, TINT_CAST, -TINT_CAST)[:, None, None]
    x[..., 0] += cast
    x[..., 2] -= cast
    return x, y


def tint_model() -> keras.Model:
    """tiny_convnet (8 conv2 filters) trained on tint_images (a few seconds, seeded)."""
    keras.utils.set_random_seed(0)
    model = tiny_convnet(TINT_SIZE, 8)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*tint_images(256, seed=0), epochs=10, batch_size=32, verbose=0)
    return model
