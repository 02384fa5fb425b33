"""The hand-written baseline: the TensorFlow transfer-learning tutorial recipe, as published.

https://www.tensorflow.org/tutorials/images/transfer_learning — MobileNetV2 at 160 px, frozen
base *inside* the model with augmentation (RandomFlip + RandomRotation 0.2), Adam 1e-4,
10 epochs; optionally then fine-tuning from layer 100 with RMSprop 1e-5 for 10 more epochs.
Images are decoded from disk every epoch, as in the tutorial (image_dataset_from_directory +
prefetch). Prints one JSON line: seconds, val_accuracy, test_accuracy.

    KERAS_HOME=../shared/weights python bench/tutorial_baseline.py ../shared/datasets/cats_and_dogs_small [--fine-tune]
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(data_dir: str, epochs: int = 10, fine_tune_epochs: int = 0, seed: int = 0) -> dict:
    import keras
    import tensorflow as tf

    t0 = time.time()
    keras.utils.set_random_seed(seed)
    size = (160, 160)
    load = lambda split, shuffle: keras.utils.image_dataset_from_directory(  # noqa: E731
        os.path.join(data_dir, split), shuffle=shuffle, batch_size=32, image_size=size, seed=seed)
    train, val, test = load("train", True), load("validation", False), load("test", False)
    autotune = tf.data.AUTOTUNE
    train, val, test = (d.prefetch(autotune) for d in (train, val, test))

    data_augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal"),
                                          keras.layers.RandomRotation(0.2)])
    preprocess_input = keras.applications.mobilenet_v2.preprocess_input
    base_model = keras.applications.MobileNetV2(input_shape=size + (3,), include_top=False,
                                                weights="imagenet")
    base_model.trainable = False
    inputs = keras.Input(shape=size + (3,))
    x = data_augmentation(inputs)
    x = preprocess_input(x)
    x = base_model(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-4),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])
    history = model.fit(train, epochs=epochs, validation_data=val, verbose=2)
    val_acc = history.history["val_accuracy"][-1]

    if fine_tune_epochs:
        base_model.trainable = True
        for layer in base_model.layers[:100]:
            layer.trainable = False
        model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      optimizer=keras.optimizers.RMSprop(learning_rate=1e-5),
                      metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])
        history = model.fit(train, epochs=epochs + fine_tune_epochs, initial_epoch=epochs,
                            validation_data=val, verbose=2)
        val_acc = history.history["val_accuracy"][-1]

    _, test_acc = model.evaluate(test, verbose=0)
    return {"recipe": "tf-tutorial", "fine_tune": bool(fine_tune_epochs), "seconds": round(time.time() - t0, 1),
            "val_accuracy": float(val_acc), "test_accuracy": float(test_acc)}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--fine-tune", action="store_true", help="then 10 epochs fine-tuning from layer 100")
    a = p.parse_args()
    print(json.dumps(run(a.data, a.epochs, 10 if a.fine_tune else 0)))
