"""Keep and share (cnnwidget/widgets/_export.py through the base): ``to_numpy``/``save_npz`` round-trip exactly,
``export_html`` writes one self-contained file (nothing it loads comes from the network) within 1.4x the raw bytes
it holds, ``save_png`` refuses without a displayed view, and every widget's module is wrapped with the PNG tools.

The quick tests use a small widget made here (a bqplot chart as its child, binary traits, no TensorFlow work); the
slow one builds every widget kind on the demo model.
"""
from __future__ import annotations

import json
import re

import bqplot
import ipywidgets
import numpy as np
import pytest
import traitlets as t

import cnnwidget as cw
from cnnwidget.widgets import _export
from cnnwidget.widgets._base import CnnWidget
from cnnwidget.widgets._esm import bundle


class Toy(CnnWidget):
    _esm = bundle("filter_grid.js")
    layer = t.Unicode("conv").tag(sync=True)
    colormap = t.Unicode("viridis").tag(sync=True)
    seed = t.Int(3).tag(sync=True)
    tiles = t.Bytes(b"").tag(sync=True, owner="python")
    ranges = t.Bytes(b"").tag(sync=True, owner="python")
    chart = t.Instance(bqplot.Figure, allow_none=True).tag(sync=True, owner="python",
                                                           **ipywidgets.widget_serialization)


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    x = bqplot.LinearScale()
    y = bqplot.LinearScale()
    line = bqplot.Lines(x=np.arange(50.0), y=rng.normal(size=50), scales={"x": x, "y": y})
    chart = bqplot.Figure(marks=[line], axes=[bqplot.Axis(scale=x), bqplot.Axis(scale=y, orientation="vertical")])
    w = Toy(tiles=rng.integers(0, 256, 64 * 32 * 32, dtype=np.uint8).tobytes(),
            ranges=np.linspace(-1, 1, 128, dtype="<f4").tobytes(), chart=chart)
    yield w
    w.close()


LIBRARY = re.compile(r"<script>window\.cnnwAmd\.next\([^)]*\);</script>\n<script>.*?</script>", re.S)


def http_references(html: str) -> list[str]:
    """Every http(s):// in the file outside the installed libraries it embeds (our page, state, arrays and ES
    modules). The libraries (ipywidgets, bqplot) hold such strings that are never fetched: namespace URIs such as
    "http://www.w3.org/2000/svg", a commented-out CSS @import, the classic notebook's own embed-dialog text; the
    browser test aborts and records every request the page makes to prove nothing is fetched."""
    return re.findall(r"https?://[^\s\"'<>]*", LIBRARY.sub("", html))


def test_npz_round_trips_the_held_arrays_and_the_settings_exactly(toy, tmp_path):
    held = toy.to_numpy()
    assert set(held["arrays"]) == {"tiles", "ranges"}
    assert held["arrays"]["tiles"].tobytes() == toy.tiles
    np.testing.assert_array_equal(held["arrays"]["ranges"], np.linspace(-1, 1, 128, dtype="<f4").reshape(64, 2))
    assert held["settings"]["seed"] == 3 and held["settings"]["layer"] == "conv"
    assert held["settings"]["widget"] == "Toy"
    back = cw.load_npz(toy.save_npz(tmp_path / "toy.npz"))
    assert back["settings"] == json.loads(json.dumps(held["settings"]))
    assert set(back["arrays"]) == set(held["arrays"])
    for name, array in held["arrays"].items():
        assert back["arrays"][name].dtype == array.dtype
        np.testing.assert_array_equal(back["arrays"][name], array)


def test_export_is_one_self_contained_file_within_1_4x_its_raw_bytes(toy, tmp_path):
    info = toy.export_html(tmp_path / "toy.html")
    html = (tmp_path / "toy.html").read_text(encoding="utf-8")
    print(f"\nexport: {info['bytes']} bytes for {info['raw_bytes']} raw ({info['ratio']:.3f}x); arrays "
          f"{info['array_encoded_bytes']} for {info['array_bytes']} ({info['array_ratio']:.3f}x)")
    assert info["ratio"] <= 1.4 and info["array_ratio"] <= 1.4
    ours = LIBRARY.sub("", html)
    assert len(ours) < len(html) - 1_900_000  # the three libraries (~1.9 MB) were taken out
    assert re.findall(r"https?://", ours) == []
    assert "<script src" not in ours and "<link" not in ours
    # the state, the arrays, the module and the chart's library are all inside
    data = json.loads(re.search(r'id="cnnw-export-data">(.*?)</script>', html, re.S).group(1).replace("<\\/", "</"))
    root = data["models"][data["root"]]
    assert root["state"]["layer"] == "conv" and "export default __cnnwExportTools" in root["state"]["_esm"]
    assert {m["model_module"] for m in data["models"].values()} >= {"anywidget", "bqplot", "bqscales"}
    assert data["libraries"] == ["@jupyter-widgets/extension", "bqplot", "bqscales"]
    paths = {tuple(b["path"]) for b in root["buffers"]}
    assert {("tiles",), ("ranges",)} <= paths
    # only browser-drawn traits may change in the file; the rest need the kernel
    assert "layer" in root["kernel_traits"] and "colormap" not in root["kernel_traits"]


def test_variants_hold_other_settings_and_put_the_widget_back(toy, tmp_path):
    info = toy.export_html(tmp_path / "toy.html", variants=[{"layer": "other"}, {"layer": "third", "seed": 5}])
    assert info["variants"] == 2 and toy.layer == "conv" and toy.seed == 3
    html = (tmp_path / "toy.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="cnnw-export-data">(.*?)</script>', html, re.S).group(1).replace("<\\/", "</"))
    variants = data["variants"]
    assert variants["keys"] == ["layer", "seed"]
    assert [e["values"] for e in variants["entries"]] == [{"layer": "conv", "seed": 3}, {"layer": "other", "seed": 3},
                                                         {"layer": "third", "seed": 5}]
    assert variants["entries"][1]["models"][toy.model_id]["state"]["layer"] == "other"
    with pytest.raises(_export.ExportError, match="traits a person sets"):
        toy.export_html(tmp_path / "bad.html", variants=[{"tiles": b""}])


def test_child_controls_that_python_follows_need_the_kernel_in_the_file():
    toy, linked, followed, free = Toy(), ipywidgets.IntSlider(), ipywidgets.Dropdown(options=["a", "b"]), \
        ipywidgets.IntSlider()
    link = t.link((toy, "seed"), (linked, "value"))
    followed.observe(lambda change: None, names="value")
    try:
        assert _export.observed_traits(linked) == ["value"]
        assert _export.observed_traits(followed) == ["index"]  # a selection syncs its index, Python has value
        assert _export.observed_traits(free) == []  # ipywidgets' own observers need no kernel in the page
    finally:
        link.unlink()
        for w in (toy, linked, followed, free):
            w.close()


def test_a_child_whose_javascript_is_not_installed_is_named_in_the_file_and_warned(toy, tmp_path, monkeypatch):
    real = _export.find_library
    monkeypatch.setattr(_export, "find_library", lambda rel: None if rel.startswith("bqplot/") else real(rel))
    with pytest.warns(UserWarning, match="bqplot"):
        info = toy.export_html(tmp_path / "toy.html")
    assert info["missing"] and "bqplot (" in info["missing"][0]
    assert "Not drawn in this file" in (tmp_path / "toy.html").read_text(encoding="utf-8")


def test_save_png_without_a_displayed_view_says_so(toy, tmp_path):
    with pytest.raises(_export.ExportError, match="no displayed view"):
        toy.save_png(tmp_path / "x.png")


def test_save_png_writes_what_the_view_answers(toy, tmp_path):
    toy._view_count = 1
    png = b"\x89PNG\r\n\x1a\n" + b"rest"
    sent = []
    toy.send = lambda content, buffers=None: sent.append(content)
    future = toy.save_png(tmp_path / "x.png")
    toy._on_export_msg(toy, {"action": _export.PNG_ACTION, "id": sent[0]["id"], "width": 2, "height": 1}, [png])
    assert future.result(1)["width"] == 2 and (tmp_path / "x.png").read_bytes() == png
    failed = toy.save_png(tmp_path / "y.png")
    toy._on_export_msg(toy, {"action": _export.PNG_ACTION, "id": sent[1]["id"], "error": "no canvas"}, [])
    with pytest.raises(_export.ExportError, match="no canvas"):
        failed.result(1)


def test_every_widget_module_is_wrapped_with_the_png_tools():
    classes = []
    for name in cw._WIDGETS:  # the widgets other work adds during the day are included once they import
        try:
            value = getattr(cw, name)
        except (AttributeError, ImportError):
            continue
        if isinstance(value, type) and issubclass(value, CnnWidget):
            classes.append(value)
    assert len(classes) >= 9
    for cls in classes:
        assert cls._esm.rstrip().endswith("export default __cnnwExportTools(__cnnwView);"), cls.__name__
        assert len(re.findall(r"^export default", cls._esm, re.M)) == 1, cls.__name__


def test_a_closed_widget_cannot_be_exported(tmp_path):
    w = Toy()
    w.close()
    with pytest.raises(_export.ExportError, match="closed"):
        w.export_html(tmp_path / "x.html")


# -- every widget kind on the demo model --------------------------------------------------------------------------

def _kinds():
    from cnnwidget import demo

    data = demo.shapes(32, seed=0)
    images = data.images[:3]
    model = demo.load_model()
    probe = cw.ModelProbe(model, class_names=data.class_names)
    return {
        "ActivationGrid": lambda: cw.ActivationGrid(probe, images),
        "FeatureVisualization": lambda: cw.FeatureVisualization(probe, "block2_conv", 0, steps=4, size=32),
        "AttributionMap": lambda: cw.AttributionMap(probe, images, ("saliency",), curve_steps=4),
        "FilterGrid": lambda: cw.FilterGrid(probe),
        "TrainingMonitor": lambda: cw.TrainingMonitor(),
        "LayerSimilarity": lambda: cw.LayerSimilarity(model, model, data.images, layers=["block1_conv", "gap"]),
        "UncertaintyView": lambda: cw.UncertaintyView(probe, images, samples=4),
        "RobustnessView": lambda: cw.RobustnessView(probe, images, steps=2, curve_epsilons=[0.0, 0.03]),
        "AttentionMap": lambda: cw.AttentionMap(demo.load_hybrid_model(), images),
        # the widgets added later the same day, when present
        "ChannelCard": lambda: cw.ChannelCard(probe, data.images, "block2_conv", fv_steps=4),
        "DatasetExamples": lambda: cw.DatasetExamples(probe, data.images, "block2_conv"),
        "ActivationAtlas": lambda: cw.ActivationAtlas(probe, data.images, "block2_conv", grid=6, steps=4),
        "Explorer": lambda: cw.Explorer(probe, images),
    }


@pytest.mark.slow
def test_every_widget_kind_round_trips_npz_and_exports(tmp_path):
    for kind, make in _kinds().items():
        try:
            w = make()
        except (AttributeError, ImportError):  # a widget not in this checkout yet
            continue
        if kind == "FeatureVisualization":
            w.render()
        try:
            assert w.wait(240), kind
            held = w.to_numpy()
            back = _export.load_npz(w.save_npz(tmp_path / f"{kind}.npz"))
            assert set(back["arrays"]) == set(held["arrays"]), kind
            for name, array in held["arrays"].items():
                np.testing.assert_array_equal(back["arrays"][name], array, err_msg=f"{kind}.{name}")
            assert back["settings"]["widget"] == kind
            info = w.export_html(tmp_path / f"{kind}.html")
            assert info["ratio"] <= 1.4 and not info["missing"], (kind, info)
            assert http_references((tmp_path / f"{kind}.html").read_text(encoding="utf-8")) == [], kind
        finally:
            w.close()


def test_a_png_future_that_runs_out_says_the_page_answers_after_the_cell():
    from cnnwidget.widgets._export import PngFuture

    with pytest.raises(TimeoutError, match="in a later cell"):
        PngFuture().result(timeout=0.01)
