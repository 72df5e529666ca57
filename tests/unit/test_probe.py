"""ModelProbe on every model form a user brings, and the refusals, on small random models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnwidget.core import LayerError, ModelError, ModelProbe

H = 16


def small_base(name="base"):
    inp = keras.Input((H, H, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inp)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="conv2")(x)
    return keras.Model(inp, x, name=name)


def head(x, classes=3, activation="softmax"):
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.layers.Dense(classes, activation=activation, name="out")(x)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, H, H, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def functional():
    inp = keras.Input((H, H, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv2")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv3")(x)
    return keras.Model(inp, head(x), name="functional")


def test_functional_model_lists_every_layer_with_shape_and_spatial_flag(functional):
    probe = ModelProbe(functional)
    assert [i.path for i in probe.layers] == ["conv1", "conv2", "conv3", "gap", "out"]
    assert probe.layer("conv2").output_shape == (H, H, 8)
    assert probe.layer("conv2").is_spatial and not probe.layer("gap").is_spatial


def test_activations_match_a_direct_keras_submodel(functional, images):
    got = ModelProbe(functional).activations(images, ["conv2"])["conv2"]
    want = keras.Model(functional.input, functional.get_layer("conv2").output)(images)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_same_shaped_layers_asked_in_any_order_each_get_their_own_output(images):
    # Three layers of one shape, named out of model order: a pass cached for one order and reused for another
    # must still give each name its own layer's output.
    inp = keras.Input((H, H, 3))
    x = inp
    for name in ("zeta", "alpha", "mid"):
        x = keras.layers.Conv2D(4, 3, padding="same", name=name)(x)
    model = keras.Model(inp, head(x))
    want = {n: keras.Model(inp, model.get_layer(n).output)(images).numpy() for n in ("zeta", "alpha", "mid")}
    probe = ModelProbe(model)
    for order in (["mid", "zeta", "alpha"], ["alpha", "mid", "zeta"], ["zeta", "alpha", "mid"]):
        got = probe.activations(images, order)
        assert list(got) == order
        for name in order:
            np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_predict_returns_probabilities_equal_to_the_model_output(functional, images):
    np.testing.assert_allclose(ModelProbe(functional).predict(images), functional(images), atol=1e-6)


def test_logit_outputs_are_put_through_a_softmax(images):
    inp = keras.Input((H, H, 3))
    model = keras.Model(inp, head(keras.layers.Conv2D(4, 3)(inp), activation=None))
    np.testing.assert_allclose(ModelProbe(model).predict(images), tf.nn.softmax(model(images)), atol=1e-6)


def test_a_single_sigmoid_unit_becomes_two_class_probabilities(images):
    inp = keras.Input((H, H, 3))
    model = keras.Model(inp, head(keras.layers.Conv2D(4, 3)(inp), classes=1, activation="sigmoid"))
    probe = ModelProbe(model)
    p = probe.predict(images)
    assert p.shape == (5, 2) and probe.class_names == ["0", "1"]
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_sequential_with_input(images):
    model = keras.Sequential([keras.Input((H, H, 3)), keras.layers.Conv2D(4, 3, name="c"),
                              keras.layers.Flatten(name="f"), keras.layers.Dense(2, name="d")])
    acts = ModelProbe(model).activations(images)
    assert {k: v.shape for k, v in acts.items()} == {"c": (5, 14, 14, 4), "f": (5, 784), "d": (5, 2)}


def test_unbuilt_sequential_is_built_from_the_first_images(images):
    model = keras.Sequential([keras.layers.Conv2D(4, 3, name="c"), keras.layers.GlobalAveragePooling2D(name="g"),
                              keras.layers.Dense(2, name="d")])
    probe = ModelProbe(model)
    with pytest.raises(ModelError, match="not known yet"):
        probe.layers
    assert probe.activations(images, ["c"])["c"].shape == (5, 14, 14, 4)
    assert probe.input_shape == (H, H, 3)


def test_transfer_learning_sequential_reaches_inner_layers_by_path(images):
    base = small_base()
    model = keras.Sequential([keras.Input((H, H, 3)), base, keras.layers.GlobalAveragePooling2D(name="gap"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    probe = ModelProbe(model)
    assert [i.path for i in probe.layers] == ["base/conv1", "base/relu1", "base/conv2", "gap", "out"]
    got = probe.activations(images, ["base/relu1"])["base/relu1"]
    np.testing.assert_allclose(got, keras.Model(base.input, base.get_layer("relu1").output)(images), atol=1e-5)
    np.testing.assert_allclose(probe.predict(images), model(images), atol=1e-6)


def test_functional_model_with_a_model_inside(images):
    base = small_base()
    inp = keras.Input((H, H, 3))
    model = keras.Model(inp, head(base(keras.layers.Rescaling(2.0, name="scale")(inp))))
    probe = ModelProbe(model)
    assert probe.layer("relu1").path == "base/relu1"
    got = probe.activations(images, "base/conv2")["base/conv2"]
    np.testing.assert_allclose(got, keras.Model(base.input, base.output)(images * 2.0), atol=1e-5)


def test_preprocessing_layers_inside_the_model_are_listed_and_applied(images):
    norm = keras.layers.Normalization(mean=[0.5, 0.5, 0.5], variance=[0.25, 0.25, 0.25], name="norm")
    model = keras.Sequential([keras.Input((H, H, 3)), keras.layers.Rescaling(1.0, offset=0.0, name="rescale"),
                              norm, keras.layers.Conv2D(2, 3, name="c"), keras.layers.Flatten(name="f")])
    acts = ModelProbe(model).activations(images, ["norm"])
    np.testing.assert_allclose(acts["norm"], (images - 0.5) / 0.5, atol=1e-5)


def test_a_preprocess_function_maps_display_space_before_the_model(functional, images):
    probe = ModelProbe(functional, preprocess=lambda x: x * 2.0 - 1.0)
    np.testing.assert_allclose(probe.predict(images), functional(images * 2.0 - 1.0), atol=1e-6)


def test_the_compiled_pass_is_reused_for_the_same_layers_and_any_batch_size(functional, images):
    probe = ModelProbe(functional)
    probe.activations(images, ["conv1", "conv2"])
    traced = probe.trace_count
    probe.activations(images[:2], ["conv1", "conv2"])
    probe.activations(images[:1], ["conv1", "conv2"])
    assert probe.trace_count == traced == 1


def test_the_pass_stops_at_the_deepest_layer_asked_for(functional, images):
    probe = ModelProbe(functional)
    probe.activations(images, ["conv1"])
    fn = next(iter(probe._fns.values()))
    ops = {op.type for op in fn.get_concrete_function().graph.get_operations()}
    convs = [op for op in fn.get_concrete_function().graph.get_operations() if op.type == "Conv2D"]
    assert len(convs) == 1 and "MatMul" not in ops


def test_unknown_layer_names_suggest_close_ones(functional):
    with pytest.raises(LayerError, match=r"No layer named 'conv_2'.*Did you mean 'conv2'"):
        ModelProbe(functional).layer("conv_2")


def test_a_nested_layer_is_found_by_its_own_name_and_suggested_by_path():
    model = keras.Sequential([keras.Input((H, H, 3)), small_base(), keras.layers.Flatten()])
    probe = ModelProbe(model)
    assert probe.layer("conv2").path == "base/conv2"
    with pytest.raises(LayerError, match="base/relu1"):
        probe.layer("relu")


def test_class_names_must_match_the_output_width(functional):
    with pytest.raises(ModelError, match="class_names has 2 names, but the model outputs 3"):
        ModelProbe(functional, class_names=["a", "b"])


def test_a_non_keras_object_is_refused():
    with pytest.raises(ModelError, match="expected a Keras 3 model.*got builtins.dict"):
        ModelProbe({"not": "a model"})


def test_a_model_without_spatial_layers_is_refused():
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    with pytest.raises(ModelError, match="no spatial layer"):
        ModelProbe(model)


def test_a_multi_input_model_is_refused_with_what_to_do():
    a, b = keras.Input((H, H, 3), name="image"), keras.Input((4,), name="meta")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(a))
    model = keras.Model([a, b], keras.layers.Concatenate()([x, b]))
    with pytest.raises(ModelError, match="takes 2 inputs.*single image input"):
        ModelProbe(model)


def test_a_subclassed_model_is_refused_with_what_to_do(images):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(images)
    with pytest.raises(ModelError, match="subclassed model.*functional model"):
        ModelProbe(net)


def test_forward_gives_pre_softmax_logits_of_a_softmax_dense_head(functional, images):
    logits = ModelProbe(functional).forward(logits=True)(tf.constant(images))[-1]
    np.testing.assert_allclose(tf.nn.softmax(logits), functional(images), atol=1e-6)
    assert not np.allclose(logits, functional(images))


def test_forward_gives_logits_before_a_softmax_activation_layer(images):
    inp = keras.Input((H, H, 3))
    x = head(keras.layers.Conv2D(4, 3)(inp), activation=None)
    model = keras.Model(inp, keras.layers.Activation("softmax", name="soft")(x))
    logits = ModelProbe(model).forward(logits=True)(tf.constant(images))[-1]
    np.testing.assert_allclose(logits, keras.Model(inp, x)(images), atol=1e-6)


def test_forward_is_differentiable_in_display_space_through_preprocess(functional, images):
    probe = ModelProbe(functional, preprocess=lambda x: x * 2.0)
    x = tf.constant(images[:1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = probe.forward(["conv1"])(x)[0]
        loss = tf.reduce_mean(out[..., 0])
    grad = tape.gradient(loss, x)
    with tf.GradientTape() as tape2:
        y = tf.constant(images[:1] * 2.0)
        tape2.watch(y)
        direct = tf.reduce_mean(keras.Model(functional.input, functional.get_layer("conv1").output)(y)[..., 0])
    np.testing.assert_allclose(grad, 2.0 * tape2.gradient(direct, y), atol=1e-6)


def test_keras_layer_and_source_of_read_the_flattened_graph():
    base = small_base()
    model = keras.Sequential([keras.Input((H, H, 3)), base, keras.layers.Flatten(name="flat")])
    probe = ModelProbe(model)
    assert probe.keras_layer("base/relu1") is base.get_layer("relu1")
    assert probe.source_of("relu1") == "base/conv1" and probe.source_of("flat") == "base/conv2"
    assert probe.source_of("conv1") is None


def test_output_classes_one_rule_for_softmax_heads_a_sigmoid_unit_and_other_layers():
    inp = keras.Input((H, H, 3))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.Conv2D(4, 3, name="conv")(inp))
    hidden = keras.layers.Dense(5, name="hidden")(x)
    softmax = ModelProbe(keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(hidden)))
    assert softmax.output_classes("out") == [0, 1, 2]  # unit i is class i
    assert [softmax.output_classes(name) for name in ("hidden", "gap", "conv")] == [None, None, None]
    sigmoid = ModelProbe(keras.Model(inp, keras.layers.Dense(1, activation="sigmoid", name="out")(x)))
    assert sigmoid.output_classes("out") == [1] and sigmoid.class_names == ["0", "1"]  # p of class 1, as predict
    # the logits before a separate softmax layer are not the output the probe predicts from
    logits = keras.layers.Dense(3, name="logits")(x)
    split = ModelProbe(keras.Model(inp, keras.layers.Activation("softmax", name="sm")(logits)))
    assert (split.output_classes("sm"), split.output_classes("logits")) == ([0, 1, 2], None)
