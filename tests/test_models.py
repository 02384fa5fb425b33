"""core.models: the scratch net, flat transfer graphs, unfreezing, the cut for cached fine-tuning."""
from __future__ import annotations

import os

import h5py
import keras
import numpy as np
import pytest

from core import models


def test_scratch_net_is_the_seeds_convnet():
    m = models.build_scratch(64, 3)
    kinds = [type(l).__name__ for l in m.layers]
    assert [l.filters for l in m.layers if isinstance(l, keras.layers.Conv2D)] == [32, 64, 128, 128]
    assert kinds.count("MaxPooling2D") == 4 and "Flatten" in kinds and "Dropout" in kinds
    assert m.get_layer("head_dense").units == 512 and m.output.shape[-1] == 3


@pytest.mark.parametrize("name", list(models.BACKBONES))
def test_every_backbone_builds_flat_with_its_own_preprocessing(name):
    size = max(models.BACKBONES[name].min_size, 32)
    m = models.build_transfer(name, size, 2, weights=None)
    assert not any(isinstance(l, keras.Model) for l in m.layers)  # one flat graph
    assert m.get_layer("preprocess").backbone == name
    assert models.trainable_params(m) == m.get_layer("predictions").count_params()  # base frozen
    x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    probs = m.predict(x, verbose=0)
    assert probs.shape == (1, 2) and abs(float(probs.sum()) - 1) < 1e-4


def test_unfreeze_top_counts_from_the_top_and_keeps_batchnorm_frozen():
    m = models.build_transfer("mobilenet_v2", 32, 2, weights=None)
    base = models.base_layers(m)
    head_only = models.trainable_params(m)
    more = models.unfreeze_top(m, 10)
    assert more > head_only
    assert all(not l.trainable for l in base[:-10])
    assert all(not l.trainable for l in base[-10:] if isinstance(l, keras.layers.BatchNormalization))
    assert any(l.trainable for l in base[-10:])
    table = models.layer_table(m, 10)
    assert [r["name"] for r in table[:3]] == [l.name for l in reversed(base[-3:])]
    assert {r["name"] for r in table if r["trains"]} == {l.name for l in base[-10:] if l.trainable_weights}
    assert models.unfreeze_top(m, 0) == head_only
    assert models.unfreeze_top(m, 10_000) > more  # more than the base has: the whole base


def test_cut_points_split_the_graph_without_changing_its_output():
    m = models.build_transfer("mobilenet_v2", 64, 2, weights=None)
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    full = m.predict(x, verbose=0)
    for n in (0, 20, 54):
        models.unfreeze_top(m, n)
        prefix, suffix = models.cut_points(m, n)
        assert not any(w.trainable for l in prefix.layers for w in l.weights)
        np.testing.assert_allclose(suffix.predict(prefix.predict(x, verbose=0), verbose=0), full, atol=1e-5)
    assert len(prefix.outputs) == 2  # the residual connection crosses the cut at 54 layers


def test_missing_weights_offline_is_one_clear_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x/vgg16_notop.h5: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.vgg16.file_utils.get_file", offline)
    with pytest.raises(models.WeightsUnavailable) as e:
        models.build_transfer("vgg16", 32, 2)
    msg = str(e.value)
    assert "vgg16_notop.h5" in msg and os.path.join(str(tmp_path), "models") in msg and "\n" not in msg


def test_weights_from_keras_cache_load_offline():
    cached = os.path.join(models.keras_cache_dir(), "mobilenet_2_5_128_tf_no_top.h5")
    if not os.path.exists(cached):
        pytest.skip("no offline weights in KERAS_HOME")
    m = models.build_transfer("mobilenet_025", 128, 2)
    with h5py.File(cached, "r") as weights_file:  # Keras's legacy h5 layout: layer / weight name
        for layer in ("conv1", "conv_dw_7", "conv_pw_13_bn"):  # the first, a middle and the last layer
            group = weights_file[layer]
            stored = [np.asarray(group[name.decode()]) for name in group.attrs["weight_names"]]
            loaded = m.get_layer(layer).get_weights()
            assert len(loaded) == len(stored), layer
            for got, want in zip(loaded, stored):
                np.testing.assert_array_equal(got, want, err_msg=layer)


def test_saved_model_loads_in_safe_mode(tmp_path):
    from core import runs

    m = models.build_transfer("mobilenet_v2", 32, 2, weights=None)
    os.makedirs(tmp_path / "run")
    runs.save_model(str(tmp_path / "run"), m)
    loaded = runs.load_model(str(tmp_path / "run"))
    x = np.full((1, 32, 32, 3), 100, "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)
