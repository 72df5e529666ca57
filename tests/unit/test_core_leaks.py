"""Memory and compiled functions: the probe owns every compiled pass (one cache, built once per key, bounded), a
plain Keras model maps to one remembered probe, and whatever was computed, a probe and its model are freed once
the user lets go of them."""

import gc
import os
import threading
import time
import weakref

import keras
import numpy as np
import pytest

from cnnwidget import ModelProbe
from cnnwidget.core import attribution as attr
from cnnwidget.core import diagnostics, probe_for, similarity
from cnnwidget.core import featurevis as fv
from cnnwidget.core.probe import MAX_COMPILED

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.usefixtures("older_objects_set_aside")]  # conftest: cheap gc.collect()




SIZE = 16
OPTIONS = {  # the cheapest settings of each method: what is checked is what stays alive afterwards
    "smoothgrad": {"samples": 2}, "integrated_gradients": {"steps": 2}, "occlusion": {"patch": 8, "stride": 8},
    "rise": {"masks": 8, "grid": 4}, "lime": {"samples": 8, "n_segments": 4}, "kernel_shap": {"samples": 8, "n_segments": 4},
}


def _model():
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv2")(h)
    h = keras.layers.ReLU(name="relu2")(h)
    out = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inp, out)


def _images(n=8):
    return np.random.default_rng(1).uniform(0, 1, (n, SIZE, SIZE, 3)).astype("float32")


def _freed(*refs) -> bool:
    gc.collect()
    return all(r() is None for r in refs)


def _used(work):
    """Weak references to a fresh model and its probe after ``work(probe)`` ran; no strong one is left."""
    model = _model()
    probe = ModelProbe(model)
    work(probe)
    return weakref.ref(model), weakref.ref(probe)


def _used_plain(work):
    """Weak references to a fresh model and its remembered probe after ``work(model)`` ran."""
    model = _model()
    work(model)
    return weakref.ref(model), weakref.ref(probe_for(model))


# -- a probe and its model are freed, whatever was computed with them -----------------------------------------

def test_a_probe_and_its_model_are_freed_after_activations_and_predictions():
    assert _freed(*_used(lambda p: (p.activations(_images(), ["conv1", "relu2"]), p.predict(_images()))))


@pytest.mark.slow
@pytest.mark.parametrize("method", list(attr.METHODS))
def test_a_probe_and_its_model_are_freed_after_every_attribution_method(method):
    assert _freed(*_used(lambda p: attr.METHODS[method](p, _images(2), **OPTIONS.get(method, {}))))


@pytest.mark.slow
def test_a_probe_and_its_model_are_freed_after_the_faithfulness_curves():
    def work(p):
        maps = attr.saliency(p, _images(2))
        attr.deletion(p, _images(2), maps, steps=4)
        attr.insertion(p, _images(2), maps, steps=4)
    assert _freed(*_used(work))


@pytest.mark.slow
def test_a_probe_and_its_model_are_freed_after_a_render():
    assert _freed(*_used(lambda p: fv.render(p, fv.channel("conv2", 1), steps=2)))


@pytest.mark.slow
def test_a_probe_and_its_model_are_freed_after_cka():
    def work(p):
        similarity.layer_similarity(p, None, _images(16), layers=["conv1", "relu2"], batch_size=8)
    assert _freed(*_used(work))


@pytest.mark.slow
def test_a_model_compared_with_a_probe_that_stays_is_freed_with_its_probe():
    kept = ModelProbe(_model())
    other, other_probe = _used(lambda p: similarity.layer_similarity(kept, p, _images(16), layers=["conv1", "relu2"],
                                                                     batch_size=8))
    assert _freed(other, other_probe)
    assert kept.activations(_images(2), ["conv1"])["conv1"].shape == (2, SIZE, SIZE, 4)


@pytest.mark.slow
def test_a_model_and_its_monitor_are_freed_after_a_fit():
    model = _model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _images(16), np.arange(16) % 3
    callback = diagnostics.DiagnosticsCallback(probe_data=(x[:8], y[:8]), every=1, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[callback], verbose=0)
    assert callback.trace_count == 1 and len(callback.history["probe_step"]) == 2
    refs = weakref.ref(model), weakref.ref(callback), weakref.ref(callback._pass.probe)
    del model, callback
    assert _freed(*refs)


# -- a plain Keras model maps to one remembered probe, held weakly ---------------------------------------------

@pytest.mark.parametrize("work", [
    lambda m: attr.saliency(m, _images(2)),
    lambda m: attr.guided_backprop(m, _images(2)),
    lambda m: attr.grad_cam(m, _images(2)),
    lambda m: attr.occlusion(m, _images(2), patch=8, stride=8),
    lambda m: fv.render(m, fv.channel("conv2", 1), steps=2),
    lambda m: similarity.layer_similarity(m, None, _images(16), layers=["conv1", "relu2"], batch_size=8),
], ids=["saliency", "guided_backprop", "grad_cam", "occlusion", "render", "cka"])
@pytest.mark.slow
def test_a_plain_model_given_to_a_core_function_is_freed_with_its_remembered_probe(work):
    assert _freed(*_used_plain(work))


def test_a_plain_model_gets_one_remembered_probe_that_traces_once():
    model = _model()
    attr.saliency(model, _images(2))
    probe = probe_for(model)
    traced = probe.trace_count
    for _ in range(5):
        attr.saliency(model, _images(2))
    assert probe_for(model) is probe and probe.trace_count == traced == 1


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS read from /proc")
def test_memory_stays_flat_over_repeated_calls_with_a_plain_model():
    model, x = _model(), _images(2)
    for _ in range(5):  # the probe, its trace, TensorFlow's own warm-up
        attr.saliency(model, x)
    gc.collect()
    before = _rss_mb()
    for _ in range(40):
        attr.saliency(model, x)
    gc.collect()
    # A new probe and trace per call kept ~4 MB each on the demo model (160 MB over 40 calls).
    assert _rss_mb() - before < 25


# -- the probe's one cache -------------------------------------------------------------------------------------

def test_a_key_asked_for_by_several_threads_at_once_is_made_once():
    probe, made, start = ModelProbe(_model()), [], threading.Barrier(6)

    def make():
        made.append(1)
        time.sleep(0.2)  # long enough for every other thread to ask meanwhile
        return object()

    got = []

    def ask():
        start.wait(timeout=30)
        got.append(probe.compiled(("test", "slow"), make))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(made) == 1 and len(got) == 6 and all(g is got[0] for g in got)


def test_a_pass_asked_for_by_several_threads_at_once_is_traced_once():
    probe, x, start = ModelProbe(_model()), _images(2), threading.Barrier(4)
    results = []

    def run():
        start.wait(timeout=30)
        results.append(attr.saliency(probe, x, target=0))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 4 and probe.trace_count == 1
    assert all(np.array_equal(r, results[0]) for r in results)


@pytest.mark.slow
def test_renders_of_one_new_structure_from_several_threads_trace_its_step_once():
    # Before, each render click on settings not yet traced built and traced its own step (21 clicks: 42 traces).
    probe, start = ModelProbe(_model()), threading.Barrier(4)
    before, images = fv.trace_count(), []

    def render():
        start.wait(timeout=30)
        images.append(fv.render(probe, fv.channel("conv2", 2), steps=2))

    threads = [threading.Thread(target=render) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(images) == 4 and fv.trace_count() - before == probe.trace_count == 2  # the step and its images


def test_the_cache_is_bounded_and_drops_the_least_recently_used_first():
    probe = ModelProbe(_model())
    for i in range(MAX_COMPILED + 5):
        probe.compiled(("test", i), object)
        probe.compiled(("test", 0), object)  # kept in use
    assert len(probe._fns) == MAX_COMPILED
    assert ("test", 0) in probe._fns and ("test", 1) not in probe._fns


def test_a_failed_make_is_not_cached_and_the_next_ask_makes_it_again():
    probe, calls = ModelProbe(_model()), []

    def make():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first try fails")
        return "made"

    with pytest.raises(ValueError, match="first try fails"):
        probe.compiled(("test", "flaky"), make)
    assert probe.compiled(("test", "flaky"), make) == "made" and len(calls) == 2


def test_a_remembered_probe_kept_after_its_model_was_deleted_is_refused_with_a_clear_message():
    from cnnwidget.core import ModelError

    model, x = _model(), _images(2)
    attr.saliency(model, x)
    kept = probe_for(model)  # a user keeps the remembered probe, then lets go of the model
    del model
    gc.collect()
    for call in (lambda: probe_for(kept), lambda: attr.saliency(kept, x), lambda: kept.predict(x),
                 lambda: attr.occlusion(kept, x, patch=32, stride=32)):
        with pytest.raises(ModelError, match="that model has since been deleted.*ModelProbe\\(model\\)"):
            call()
    fresh = _model()  # a new model gets a probe of its own, alive
    assert probe_for(fresh) is not kept and probe_for(fresh).model is fresh
