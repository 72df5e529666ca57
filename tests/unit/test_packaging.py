"""A plain `pip install .` carries everything a widget needs: the ES modules and the demo model, no npm."""

import subprocess
import sys
import zipfile

import pytest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(root)], check=True)
    (path,) = out.glob("cnnwidget-*.whl")
    return zipfile.ZipFile(path)


@pytest.mark.slow
def test_the_wheel_ships_the_es_modules_inside_the_package(wheel):
    names = set(wheel.namelist())
    assert {"cnnwidget/_js/activation_grid.js", "cnnwidget/_js/tiles.js", "cnnwidget/_js/colormaps.js"} <= names


@pytest.mark.slow
def test_the_wheel_ships_the_demo_model(wheel):
    info = wheel.getinfo("cnnwidget/demo/shapes_cnn.keras")
    assert 0 < info.file_size < 5 * 2**20


@pytest.mark.slow
def test_the_wheel_ships_imagenets_class_names(wheel):
    assert wheel.getinfo("cnnwidget/data/imagenet_classes.json").file_size > 20_000
