"""cnnwidget.core.attention on small models built here: captured MultiHeadAttention scores against the layer called
directly with return_attention_scores=True, the model left unchanged, rollout against a numpy reference, gates."""

import functools

import keras
import numpy as np
import pytest

from cnnwidget.core import LayerError, ModelError, ModelProbe, OptionError
from cnnwidget.core import attention as att

SIZE = 8


def _images(n=3, seed=0, zeros=False):
    x = np.random.default_rng(seed).uniform(0.05, 1, (n, SIZE, SIZE, 3)).astype(np.float32)
    if zeros:  # whole rows of pixels at exactly 0: masked tokens behind a Masking layer
        x[0, :3] = 0
        x[1, 5:] = 0
    return x


def _tokens(x, dim=8, name="embed"):
    """A spatial layer (the probe needs one), then (N, 64, dim) tokens; zero pixels stay exactly zero."""
    h = keras.layers.Conv2D(dim, 1, use_bias=False, name=name)(x)
    return keras.layers.Reshape((SIZE * SIZE, dim), name=f"{name}_tokens")(h)


def _model(case):
    """(model, {site: (query, value, mask or None)}) with the KerasTensors the site was called on."""
    keras.utils.set_random_seed(1)
    x = keras.Input((SIZE, SIZE, 3), name="image")
    t = _tokens(x)
    sites = {}
    if case == "self":
        a = keras.layers.MultiHeadAttention(2, 4, name="mha")(t, t)
        sites["mha"] = (t, t, None)
    elif case == "self_mask":  # an attention mask computed in the graph (causal, here from a layer's output)
        m = keras.layers.Masking(mask_value=0.0, name="masking")(t)
        a = keras.layers.MultiHeadAttention(2, 4, name="mha")(m, m)
        sites["mha"] = (m, m, "keras_mask")
    elif case == "causal":
        a = keras.layers.MultiHeadAttention(2, 4, name="mha")(t, t, use_causal_mask=True)
        sites["mha"] = (t, t, "causal")
    elif case == "cross":
        k = keras.layers.Reshape((16, 8), name="kv")(keras.layers.Conv2D(8, 2, strides=2, name="kvconv")(
            keras.layers.Conv2D(8, 1, use_bias=False, name="embed2")(x)))
        a = keras.layers.MultiHeadAttention(2, 4, name="mha")(t, k)
        sites["mha"] = (t, k, None)
    elif case == "cross_mask":
        m = keras.layers.Masking(mask_value=0.0, name="masking")(t)
        k = keras.layers.Reshape((16, 8), name="kv")(keras.layers.Conv2D(8, 2, strides=2, name="kvconv")(x))
        a = keras.layers.MultiHeadAttention(2, 4, name="mha")(k, m)  # 16 queries over 64 masked keys
        sites["mha"] = (k, m, "keras_mask_value")
    else:
        raise AssertionError(case)
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D(name="pool")(a))
    return keras.Model(x, out, name=f"toy_{case}"), sites


def _direct(model, layer, query, value, mask, images):
    """The layer called directly on its inputs' values with return_attention_scores=True."""
    q, v = keras.Model(model.input, [query, value])(images)
    q, v = np.asarray(q), np.asarray(v)
    kwargs = {}
    if mask == "causal":
        kwargs["use_causal_mask"] = True
    elif mask == "keras_mask":  # Masking's mask on query and value -> query x key mask
        keep = np.any(q != 0, axis=-1)
        kwargs["attention_mask"] = keep[:, :, None] & keep[:, None, :]
    elif mask == "keras_mask_value":
        keep = np.any(v != 0, axis=-1)
        kwargs["attention_mask"] = np.broadcast_to(keep[:, None, :], (len(q), q.shape[1], v.shape[1]))
    _, scores = layer(q, v, return_attention_scores=True, **kwargs)
    return np.asarray(scores)


SLOW = pytest.mark.slow


@pytest.mark.parametrize("case", [pytest.param("self", marks=SLOW), "self_mask", pytest.param("causal", marks=SLOW),
                                  pytest.param("cross", marks=SLOW), pytest.param("cross_mask", marks=SLOW)])
def test_captured_scores_equal_the_layer_called_directly(case):
    model, sites = _model(case)
    images = _images(zeros="mask" in case)
    probe = ModelProbe(model)
    [site] = probe.attention_layers
    assert (site.path, site.kind) == ("mha", "mha")
    assert site.self_attention == (case in ("self", "self_mask", "causal"))
    got = att.attention_maps(probe, images)["mha"]
    want = _direct(model, model.get_layer("mha"), *sites["mha"], images)
    assert got.shape == want.shape == (len(images),) + site.shape
    np.testing.assert_allclose(got, want, atol=1e-6)
    if "mask" in case:  # the mask mattered: some keys got exactly zero weight
        assert (got == 0).any()


def test_the_users_model_is_unchanged():
    model, _ = _model("self_mask")
    images = _images(zeros=True)
    before = np.asarray(model(images))
    layers = list(model.layers)
    weights = [w.copy() for w in model.get_weights()]
    mha = model.get_layer("mha")
    probe = ModelProbe(model)
    nodes = len(mha._inbound_nodes)
    att.attention_maps(probe, images)
    att.attention_rollout(probe, images)
    assert all(a is b for a, b in zip(model.layers, layers)) and len(model.layers) == len(layers)
    assert model.get_layer("mha") is mha and len(mha._inbound_nodes) == nodes
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(model(images)), before)
    np.testing.assert_allclose(probe.predict(images), keras.ops.softmax(before).numpy(), atol=1e-6)


def _stack(layers=2, heads=2, class_token=False, seed=3):
    keras.utils.set_random_seed(seed)
    x = keras.Input((SIZE, SIZE, 3), name="image")
    t = _tokens(x)
    if class_token:  # a class token at index 0, made from stock layers
        cls = keras.layers.Reshape((1, 8), name="cls")(keras.layers.Dense(8, name="cls_dense")(
            keras.layers.GlobalAveragePooling1D(name="cls_pool")(t)))
        t = keras.layers.Concatenate(axis=1, name="with_cls")([cls, t])
    for i in range(layers):
        h = keras.layers.MultiHeadAttention(heads, 4, name=f"mha{i}")(t, t)
        t = keras.layers.Add(name=f"add{i}")([t, h])
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D(name="pool")(t))
    return keras.Model(x, out, name="stack")


@functools.lru_cache(maxsize=None)
def _shared_stack(layers=2, heads=2, class_token=False):
    """One model per structure for the tests that only read it: built, and its remembered probe traced, once per
    session, not once per test (_stack stays the builder for tests that need a model of their own: leak tests)."""
    return _stack(layers=layers, heads=heads, class_token=class_token)


def test_rows_of_every_heads_map_sum_to_one():
    maps = att.attention_maps(_shared_stack(), _images())
    assert len(maps) == 2
    for scores in maps.values():
        np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
        assert scores.min() >= 0


@pytest.mark.parametrize("class_token", [False, pytest.param(True, marks=SLOW)])
def test_rollout_of_one_layer_one_head_without_residual_is_that_heads_map(class_token):
    model, images = _shared_stack(layers=1, heads=1, class_token=class_token), _images()
    scores = att.attention_maps(model, images)["mha0"][:, 0]  # (N, T, T)
    want = scores[:, 0, 1:] if class_token else scores.mean(axis=1)
    got = att.attention_rollout(model, images, residual=False, upsample=False)
    np.testing.assert_allclose(got, want.reshape(-1, SIZE, SIZE), atol=1e-6)


def _reference_rollout(maps, fusion, discard, residual, class_token):
    """Abnar and Zuidema's rollout in numpy, Gildenblat's discard."""
    rolled = None
    for scores in maps:
        a = getattr(np, fusion)(scores, axis=1)
        if discard:
            for i in range(len(a)):
                flat = a[i].copy()
                if class_token:
                    flat[:, 0] = np.inf
                values = np.sort(flat.ravel())
                k = int(np.floor(discard * (flat.size - (len(flat) if class_token else 0))))
                low = (a[i] < values[k])
                if class_token:
                    low[:, 0] = False
                a[i][low] = 0
        if residual:
            a = 0.5 * a + 0.5 * np.eye(a.shape[-1])[None]
        a = a / a.sum(-1, keepdims=True)
        rolled = a if rolled is None else a @ rolled
    return rolled[:, 0, 1:] if class_token else rolled.mean(axis=1)


@SLOW
@pytest.mark.parametrize("fusion,discard,residual,class_token", [
    ("mean", 0.0, True, False), ("max", 0.0, True, False), ("min", 0.5, True, False), ("mean", 0.9, True, True),
    ("max", 0.3, False, True)])
def test_rollout_matches_a_numpy_reference(fusion, discard, residual, class_token):
    model, images = _shared_stack(layers=2, heads=3, class_token=class_token), _images()
    maps = att.attention_maps(model, images)
    want = _reference_rollout([maps["mha0"], maps["mha1"]], fusion, discard, residual, class_token)
    got = att.attention_rollout(model, images, head_fusion=fusion, discard_ratio=discard, residual=residual,
                                upsample=False)
    np.testing.assert_allclose(got, want.reshape(-1, SIZE, SIZE), rtol=1e-4, atol=1e-6)
    up = att.attention_rollout(model, images, head_fusion=fusion, discard_ratio=discard, residual=residual)
    assert up.shape == (len(images), SIZE, SIZE) and up.dtype == np.float32


@SLOW
def test_passes_are_traced_once():
    model, images = _shared_stack(), _images()
    probe = ModelProbe(model)  # a probe of its own: its trace count starts at 0
    att.attention_maps(probe, images)
    att.attention_rollout(probe, images, discard_ratio=0.2)
    count = probe.trace_count
    att.attention_maps(probe, images[:2])
    att.attention_rollout(probe, images, discard_ratio=0.5)
    assert probe.trace_count == count


def _gated(nested=False):
    keras.utils.set_random_seed(2)
    x = keras.Input((SIZE, SIZE, 3), name="image")
    f = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="features")(x)
    inner_in = f
    if nested:
        inner_in = keras.Input((SIZE, SIZE, 6), name="block_in")
    s = keras.layers.GlobalAveragePooling2D(name="squeeze")(inner_in)
    s = keras.layers.Dense(6, activation="sigmoid", name="excite")(s)
    s = keras.layers.Reshape((1, 1, 6), name="excite_shape")(s)
    g = keras.layers.Multiply(name="channel_gate")([inner_in, s])
    m = keras.layers.Conv2D(1, 7, padding="same", activation="sigmoid", name="spatial")(g)
    g = keras.layers.Multiply(name="spatial_gate")([g, m])
    if nested:
        g = keras.Model(inner_in, g, name="cbam")(f)
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D(name="pool")(g))
    return keras.Model(x, out, name="cbam_toy")


@SLOW
@pytest.mark.parametrize("nested", [False, True])
def test_cbam_gates_are_found_and_read(nested):
    model, images = _gated(nested), _images()
    prefix = "cbam/" if nested else ""
    sites = ModelProbe(model).attention_layers
    assert [(s.path, s.kind, s.shape) for s in sites] == [
        (prefix + "channel_gate", "channel_gate", (6,)), (prefix + "spatial_gate", "spatial_gate", (SIZE, SIZE))]
    maps = att.attention_maps(model, images)
    inner = model.get_layer("cbam") if nested else model
    features = keras.Model(model.input, model.get_layer("features").output)(images)
    chan = keras.Model(inner.input, inner.get_layer("excite_shape").output)(
        features if nested else images)
    spat = keras.Model(inner.input, inner.get_layer("spatial").output)(features if nested else images)
    np.testing.assert_allclose(maps[prefix + "channel_gate"], np.asarray(chan)[:, 0, 0], atol=1e-6)
    np.testing.assert_allclose(maps[prefix + "spatial_gate"], np.asarray(spat)[..., 0], atol=1e-6)
    assert att.mean_gates(model, images)[prefix + "channel_gate"].shape == (6,)
    assert att.attention_maps(model, images, layer="spatial_gate").keys() == {prefix + "spatial_gate"}


def test_a_multiply_of_two_feature_maps_is_no_gate():
    x = keras.Input((SIZE, SIZE, 3))
    a = keras.layers.Conv2D(4, 1, name="a")(x)
    b = keras.layers.Conv2D(4, 1, activation="sigmoid", name="b")(x)
    g = keras.layers.Multiply(name="swish_like")([a, b])
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(g)))
    assert ModelProbe(model).attention_layers == []


def test_a_model_without_attention_says_so():
    x = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(4, 3, name="conv")(x))))
    assert ModelProbe(model).attention_layers == []
    assert att.attention_maps(model, _images()) == {}
    with pytest.raises(LayerError, match="no MultiHeadAttention"):
        att.attention_rollout(model, _images())
    with pytest.raises(LayerError, match="no attention site"):
        att.attention_maps(model, _images(), layer="conv")
    assert not att.has_rollout(model)


def test_bad_options_are_refused_with_what_is_allowed():
    model, images = _shared_stack(), _images()
    with pytest.raises(OptionError, match="head_fusion must be one of"):
        att.attention_rollout(model, images, head_fusion="median")
    with pytest.raises(OptionError, match=r"discard_ratio must be in \[0, 1\)"):
        att.attention_rollout(model, images, discard_ratio=1.0)
    with pytest.raises(OptionError, match="residual must be True or False"):
        att.attention_rollout(model, images, residual="yes")
    with pytest.raises(LayerError, match="its sites are"):
        att.attention_maps(model, images, layer="mha7")
    with pytest.raises(LayerError, match="cross-attention|self-attention"):
        att.attention_rollout(_model("cross")[0], images, layers=["mha"])


def test_token_grid_and_head_maps():
    assert att.token_grid(64, (64, 64)) == (0, 8, 8)
    assert att.token_grid(197, (224, 224)) == (1, 14, 14)
    assert att.token_grid(33, (32, 64)) == (1, 4, 8)
    with pytest.raises(ModelError, match="cannot place 51 tokens"):
        att.token_grid(51, (64, 64))
    scores = np.random.default_rng(0).dirichlet(np.ones(65), size=(2, 65)).astype(np.float32)
    maps = att.head_maps(scores, 3, (64, 64))
    assert maps.shape == (2, 8, 8)
    np.testing.assert_array_equal(maps[1].ravel(), scores[1, 3, 1:])
    with pytest.raises(OptionError):
        att.head_maps(scores, 65, (64, 64))


@SLOW
def test_rollout_takes_progress_and_cancel():
    import threading

    model, images = _shared_stack(), _images(5)
    seen = []
    att.attention_rollout(model, images, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    stop = threading.Event()
    stop.set()
    with pytest.raises(att.Cancelled):
        att.attention_rollout(model, images, cancel=stop)


@pytest.mark.slow
def test_efficientnet_b0_has_one_channel_gate_per_se_block():
    model = keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3))
    probe = ModelProbe(model)  # one probe for the sites and the maps: the model flattened and replayed once
    sites = probe.attention_layers
    se = [layer.name for layer in model.layers if layer.name.endswith("se_excite")]
    assert len(se) == 16
    assert [s.path for s in sites] == se and {s.kind for s in sites} == {"channel_gate"}
    maps = att.attention_maps(probe, np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32))
    for site in sites:
        assert maps[site.path].shape == (2,) + site.shape
        assert maps[site.path].min() >= 0 and maps[site.path].max() <= 1


# -- attention rollout as one more attribution method ----------------------------------------------------------

@pytest.fixture(scope="module")
def demo_models():
    """The demo hybrid (self-attention) and CNN models, loaded once for the two tests below."""
    from cnnwidget import demo

    return demo.load_hybrid_model(), demo.load_model()


def test_rollout_is_an_attribution_method_of_models_with_self_attention_only(demo_models):
    from cnnwidget.core import attribution as attr

    hybrid, cnn = demo_models
    assert "attention_rollout" in attr.methods_for(hybrid)
    assert "attention_rollout" not in attr.methods_for(cnn)
    assert attr.method("attention_rollout") is att.attention_rollout


@pytest.mark.slow
def test_the_attribution_map_widget_shows_rollout_and_refuses_it_without_attention(demo_models):
    import cnnwidget as cw
    from cnnwidget import demo

    (hybrid, cnn), x = demo_models, demo.shapes(2, seed=2).images
    am = cw.AttributionMap(hybrid, x, ("saliency", "attention_rollout"), curves=False)
    try:
        assert am.wait(120) and am.error == ""
        np.testing.assert_allclose(am.maps["attention_rollout"], att.attention_rollout(hybrid, x[:1])[0],
                                   atol=1e-6)
    finally:
        am.close()
    with pytest.raises(cw.OptionError, match="attention_rollout needs a model with self-attention"):
        cw.AttributionMap(cnn, x, ("attention_rollout",))
