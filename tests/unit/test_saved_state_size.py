"""A notebook saved with widgets holds bounded widget state: at most 2x the bytes each widget's view shows.

What a save holds: ipywidgets' ``embed.dependency_state([widget])``, the widget-state JSON a front end writes into
the notebook's metadata (every model the widget references: its charts with their marks, scales, axes and layouts;
binary buffers base64-encoded). The ES module and CSS source (``_esm``, ``_css``) are left out of both sides: they
are code, the same few tens of kB for every instance of a class whatever it shows (printed, not bounded here).

What the view shows, counted from the widget's own description of its current view (its ``*_meta`` traits):
each raster at the size it is drawn (channels x height x width bytes, uint8), the value ranges its hover read-outs
use, every data array of its bqplot charts (every element is a drawn mark), and the JSON of its settings, names,
labels and chart structure (pickers, captions, axes). A buffer the view does not draw (a cache of other layers or
images, a full-resolution copy) counts as not shown, so it fails the bound; and each raster buffer is bounded alone
too (at most 2x its drawn size), so a big cache cannot hide behind a lot of text. Composite widgets (the Explorer)
are measured model by model: each panel's buffers against what that panel draws. Rasters the view shows at their
stored size only on demand are counted as drawn: tile value ranges (hover read-outs), the ActivationAtlas's image
thumbnails (its hover strip) and its icons at their rendered resolution (reached with its zoom).

Print the figures: ``.venv/bin/pytest tests/unit/test_saved_state_size.py -q -s -m "slow or not slow"``.
"""
from __future__ import annotations

import base64
import json

import pytest

from cnnwidget import demo

RATIO = 2.0
CODE = ("_esm", "_css")


def saved_state(widget) -> dict:
    from ipywidgets.embed import dependency_state

    return dependency_state([widget], drop_defaults=False)


def _json_len(value) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def _instances() -> dict:
    from ipywidgets.widgets.widget import _instances

    return _instances


def measure(widget) -> dict:
    """Saved and shown bytes of ``widget`` and every widget its state references. Each anywidget model's binary
    traits are counted as shown up to what its view draws (``RASTERS`` by class); bqplot data arrays count as shown;
    a buffer of any other model, or of an anywidget class not in ``RASTERS``, fails the test (not counted)."""
    state = saved_state(widget)
    instances = _instances()
    saved = code = charts = text = drawn = 0
    per_buffer = []  # (class.trait, held, drawn)
    for model_id, model in state.items():
        for key, value in model["state"].items():
            n = _json_len({key: value})
            if key in CODE:
                code += n
                continue
            saved += n
            text += n  # settings, names, labels, metas, chart structure: rendered as text, pickers and axes
        buffers = {}
        for buf in model.get("buffers", []):
            saved += _json_len(buf)
            buffers[buf["path"][0]] = len(base64.b64decode(buf["data"]))
        if not buffers:
            continue
        if model["model_module"] == "bqplot":
            charts += sum(buffers.values())  # every element of a mark's arrays is drawn
            continue
        owner = instances.get(model_id)
        name = type(owner).__name__
        assert name in RASTERS, f"{name} ({model['model_module']}) holds buffers {sorted(buffers)}: not counted"
        rasters = RASTERS[name](owner)
        unknown = set(buffers) - set(rasters)
        assert not unknown, f"{name}: binary traits {sorted(unknown)} not counted by this test"
        for trait, held in buffers.items():
            drawn += min(held, rasters[trait])
            per_buffer.append((f"{name}.{trait}", held, rasters[trait]))
    shown = drawn + charts + text
    return {"saved": saved, "shown": shown, "rasters": drawn, "charts": charts, "text": text, "code": code,
            "buffers": per_buffer, "models": len(state), "ratio": saved / max(1, shown)}


def check(name: str, widget) -> dict:
    m = measure(widget)
    print(f"\n{name}: saved {m['saved']} B in {m['models']} models, shown {m['shown']} B (rasters {m['rasters']}, "
          f"chart arrays {m['charts']}, text {m['text']}), ratio {m['ratio']:.2f}; ES module + CSS {m['code']} B"
          + "".join(f"\n    {trait}: {held} B held, {drawn} B drawn" for trait, held, drawn in m["buffers"]))
    assert m["ratio"] <= RATIO, m
    for trait, held, drawn in m["buffers"]:
        assert held <= RATIO * drawn or held <= 64, f"{name}: {trait} holds {held} B, its view draws {drawn}"
    return m


# ---------------------------------------------------------------------------------------------- what each view draws
def _image(w) -> int:
    h, wd = w.image_shape
    return h * wd * 3


def grid_rasters(w) -> dict:
    tm, sm, fm = w.tile_meta, w.strip_meta, w.focus_meta
    return {"tiles": tm["k"] * tm["h"] * tm["w"], "tile_ranges": tm["k"] * 2 * 4, "image": _image(w),
            "strip": len(sm.get("layers", [])) * sm.get("t", 0) ** 2, "focus": fm.get("h", 0) * fm.get("w", 0)}


def attribution_rasters(w) -> dict:
    m = w.maps_meta
    return {"map_bytes": m["k"] * m["h"] * m["w"], "map_ranges": m["k"] * 2 * 4, "image": _image(w)}


def featurevis_rasters(w) -> dict:
    m = w.images_meta
    return {"pixels": m.get("n", 0) * m.get("size", 0) ** 2 * 3}


def filter_rasters(w) -> dict:
    m = w.meta
    per_tile = m["h"] * m["w"] * (m["inputs"] if m.get("per_input") else m.get("c", 1))
    return {"tiles": m["k"] * per_tile if m.get("view") == "kernels" else len(w.tiles)}


def robustness_rasters(w) -> dict:
    h, wd = w.image_shape
    return {"clean_image": h * wd * 3, "adv_image": h * wd * 3, "perturbation_image": h * wd * 3,
            "cam_bytes": 2 * h * wd, "cam_ranges": 2 * 2 * 4}


def uncertainty_rasters(w) -> dict:
    m = w.maps_meta
    h, wd = m.get("h", 0), m.get("w", 0)
    return {"image": h * wd * 3, "maps": m.get("k", 0) * h * wd, "map_ranges": m.get("k", 0) * 2 * 4,
            "uncertain": len(w.uncertain_meta) * h * wd * 3}


def attention_rasters(w) -> dict:
    hm, rm, gm = w.heads_meta, w.rollout_meta, w.gate_meta
    heads = hm.get("k", 0) * hm.get("h", 0) * hm.get("w", 0)
    rollout = rm.get("k", 0) * rm.get("h", 0) * rm.get("w", 0)
    gate_map = gm.get("h", 0) * gm.get("w", 0) if gm.get("kind") == "spatial" else 0
    c = gm.get("c", 0)
    return {"image": _image(w), "head_bytes": heads, "head_ranges": hm.get("k", 0) * 8, "rollout_bytes": rollout,
            "rollout_ranges": rm.get("k", 0) * 8, "gate_bytes": gate_map, "gate_ranges": 8 if gate_map else 0,
            "gate_values": 4 * c, "gate_mean": 4 * c}


def card_rasters(w) -> dict:
    pm, fm = w.patches_meta, w.fv_meta
    return {"patches": pm.get("n", 0) * pm.get("h", 0) * pm.get("w", 0) * 4, "fv_pixels": fm.get("size", 0) ** 2 * 3}


def examples_rasters(w) -> dict:
    m = w.tiles_meta
    return {"tiles": m.get("n", 0) * m.get("h", 0) * m.get("w", 0) * 4}


def atlas_rasters(w) -> dict:
    c = w.cells
    m = c.get("m", 0)
    used = len({i for strip in c.get("strip", []) for i in strip})
    # icons: one per cell; thumbs: the images behind the cells, drawn in the hover strip
    return {"icons": m * c.get("icon", 0) ** 2 * 3, "thumbs": used * c.get("thumb", 0) ** 2 * 3}


def explorer_rasters(w) -> dict:
    m = w.thumbs_meta
    return {"thumbs": m.get("n", 0) * m.get("h", 0) * m.get("w", 0) * 3}


RASTERS = {"ActivationGrid": grid_rasters, "AttributionMap": attribution_rasters,
           "FeatureVisualization": featurevis_rasters, "FilterGrid": filter_rasters,
           "RobustnessView": robustness_rasters, "UncertaintyView": uncertainty_rasters,
           "AttentionMap": attention_rasters, "ChannelCard": card_rasters, "DatasetExamples": examples_rasters,
           "ActivationAtlas": atlas_rasters, "Explorer": explorer_rasters}


# ---------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def model():
    return demo.load_model()


@pytest.fixture(scope="module")
def images():
    return demo.shapes(12, seed=1).images


@pytest.mark.slow
def test_activation_grid_holds_the_page_shown_not_every_layer(model, images):
    import cnnwidget as cw

    grid = cw.ActivationGrid(model, images[:4])
    try:
        grid.wait(60)
        check("ActivationGrid", grid)
        # visit every spatial layer and another image: nothing of what was shown before stays in the state
        for layer in [info["name"] for info in grid.layers][:6]:
            grid.layer = layer
        grid.image_index = 2
        grid.selected_channel = 0
        grid.wait(60)
        check("ActivationGrid after 6 layers, another image, a channel enlarged", grid)
    finally:
        grid.close()


@pytest.mark.slow
def test_attribution_map_holds_the_maps_of_the_image_shown(model, images):
    import cnnwidget as cw

    am = cw.AttributionMap(model, images[:4], methods=["saliency", "gradient_x_input"], curves=False)
    try:
        am.wait(60)
        am.image_index = 3
        am.wait(60)
        check("AttributionMap", am)
    finally:
        am.close()


@pytest.mark.slow
def test_filter_grid_holds_the_page_of_filters_shown(model):
    import cnnwidget as cw

    fg = cw.FilterGrid(model)
    try:
        fg.wait(60)
        check("FilterGrid", fg)
    finally:
        fg.close()


@pytest.mark.slow
def test_feature_visualization_holds_the_images_shown(model):
    import cnnwidget as cw

    fv = cw.FeatureVisualization(model, layer="block2_relu", channels=[0, 1], steps=4, size=48)
    try:
        fv.render().wait()
        fv.wait(120)
        assert fv.images_meta.get("n"), fv.images_meta
        check("FeatureVisualization", fv)
    finally:
        fv.close()


@pytest.mark.slow
def test_robustness_view_holds_the_images_shown(model, images):
    import cnnwidget as cw

    rv = cw.RobustnessView(model, images[:2], steps=2)
    try:
        rv.wait(120)
        check("RobustnessView", rv)
    finally:
        rv.close()


@pytest.mark.slow
def test_uncertainty_view_holds_the_maps_shown(model, images):
    import cnnwidget as cw

    uv = cw.UncertaintyView(model, images[:2], samples=4)
    try:
        uv.wait(120)
        check("UncertaintyView", uv)
    finally:
        uv.close()


@pytest.mark.slow
def test_attention_map_holds_the_maps_shown(images):
    import cnnwidget as cw

    model = demo.load_hybrid_model()  # the demo model with attention (MultiHeadAttention, channel gates)
    am = cw.AttentionMap(model, images[:2])
    try:
        am.wait(120)
        check("AttentionMap", am)
    finally:
        am.close()


@pytest.mark.slow
def test_training_monitor_and_layer_similarity_hold_their_charts(model, images):
    import cnnwidget as cw

    data = demo.shapes(32, seed=2)
    mon = cw.TrainingMonitor((data.images[:16], data.labels[:16]), every=1, max_rate=0)
    sim = cw.LayerSimilarity(model, data=data.images, layers=["block1_conv", "block2_conv", "block3_conv"])
    try:
        m = demo.load_model()
        m.fit(data.images, data.labels, epochs=2, batch_size=16, verbose=0, callbacks=[mon.callback])
        sim.wait(120)
        check("TrainingMonitor after 2 epochs", mon)
        check("LayerSimilarity", sim)
    finally:
        mon.close()
        sim.close()


@pytest.mark.slow
def test_channel_card_dataset_examples_and_atlas_hold_what_they_show(model):
    import cnnwidget as cw

    data = demo.shapes(48, seed=3)
    # 4 optimization steps for the card's rendering and the atlas's icons (128 by default): what is held is the
    # same images at the same size, whatever their quality, and up to 37 renders of 128 steps were most of this test
    card = cw.ChannelCard(model, (data.images, data.labels), "block2_relu", channel=3, k=8, fv_steps=4)
    examples = cw.DatasetExamples(model, (data.images, data.labels), "block2_relu", page_size=16)
    atlas = cw.ActivationAtlas(model, data.images, "block3_relu", grid=6, steps=4)
    try:
        for w in (card, examples, atlas):
            w.wait(180)
        check("ChannelCard", card)
        check("DatasetExamples", examples)
        check("ActivationAtlas", atlas)
    finally:
        for w in (card, examples, atlas):
            w.close()


@pytest.mark.slow
def test_explorer_holds_what_its_open_panels_show(model):
    import cnnwidget as cw

    data = demo.shapes(12, seed=4)
    # the feature visualization panel's two renderings in 4 steps, not 128: the same image size is held
    ex = cw.Explorer(model, data.images[:6], class_names=data.class_names, panel_options={"featurevis": {"steps": 4}})
    try:
        ex.wait(180)
        ex.layer = "block2_relu"
        ex.channel = 5
        ex.image = 3
        ex.wait(180)
        check("Explorer (its panels included)", ex)
    finally:
        ex.close()


def test_the_bound_fails_a_widget_that_keeps_more_than_it_shows():
    """The measure itself: a view that keeps a cache of pages it does not draw fails, one that keeps its page passes."""
    import anywidget
    import traitlets as t

    class CachingView(anywidget.AnyWidget):
        _esm = "export default { render() {} }"
        pixels = t.Bytes(b"").tag(sync=True)
        meta = t.Dict().tag(sync=True)

    RASTERS["CachingView"] = lambda w: {"pixels": w.meta["n"]}
    page = 64 * 64 * 3
    view = CachingView(pixels=bytes(page), meta={"n": page})
    try:
        assert check("one page kept", view)["ratio"] < 1.4
        view.pixels = bytes(3 * page)  # the page shown and two cached ones
        with pytest.raises(AssertionError):
            check("three pages kept, one shown", view)
        view.meta = {"n": page // 4}  # drawn at half the resolution it is kept at
        view.pixels = bytes(page)
        with pytest.raises(AssertionError):
            check("kept at full resolution, drawn at half", view)
    finally:
        view.close()
        del RASTERS["CachingView"]
