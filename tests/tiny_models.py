"""A tiny convnet with the layer names of our models, shared by the explain and visualize tests."""
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
