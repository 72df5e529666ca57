"""The base every widget is built on (widgets/_base.py), on a small widget with no model: checks, refusals from
Python and from the page, reactions, the job runner, links and close()."""

import gc
import sys
import threading
import weakref

import bqplot
import ipywidgets
import numpy as np
import pytest
import traitlets as t

from cnnwidget.core import CnnWidgetError, OptionError
from cnnwidget.widgets._base import CnnWidget, checks, reacts


class Counter(CnnWidget):
    """Shows ``value`` (0..limit-1) and what a job made of it in ``shown`` (only Python sets that)."""

    _esm = "export default { render() {} };"
    value = t.Int(0).tag(sync=True)
    colour = t.Enum(("red", "blue"), "red").tag(sync=True)
    shown = t.Unicode("").tag(sync=True, owner="python")
    chart = t.Instance(bqplot.Figure, allow_none=True).tag(sync=True, owner="python",
                                                           **ipywidgets.widget_serialization)

    def __init__(self, limit=10, fail_at=None, slow=None, chart=False):
        self.limit, self.fail_at, self.slow = limit, fail_at, slow
        super().__init__(chart=_figure() if chart else None)

    @checks("value")
    def _check_value(self, value):
        if not 0 <= value < self.limit:
            raise OptionError(f"value must be between 0 and {self.limit - 1}; got {value}.")
        return value

    @reacts("value")
    def _on_value(self, change):
        self._start(self._show, settle=True, revert={"value": change["old"]})

    def _show(self, job):
        value = self.value
        if self.slow is not None:
            self.slow.wait(5)
        if value == self.fail_at:
            raise OptionError(f"cannot show {value}.")
        self._report(job, shown=f"showing {value}")
        return {"error": ""}


def _figure():
    x, y = bqplot.LinearScale(), bqplot.LinearScale()
    marks = [bqplot.Bars(x=np.arange(3.0), y=np.ones(3), scales={"x": x, "y": y})]
    return bqplot.Figure(marks=marks, axes=[bqplot.Axis(scale=x), bqplot.Axis(scale=y, orientation="vertical")])


@pytest.fixture
def widget():
    w = Counter()
    yield w
    w.close()


def test_a_bad_value_from_python_raises_is_not_taken_and_is_shown(widget):
    with pytest.raises(OptionError, match="between 0 and 9; got 12"):
        widget.value = 12
    assert widget.value == 0 and "got 12" in widget.error


def test_a_wrong_type_from_python_raises_a_trait_error_that_is_also_an_option_error(widget):
    with pytest.raises(t.TraitError, match="value must be an int; got 'x'") as info:
        widget.value = "x"
    assert isinstance(info.value, OptionError) and "got 'x'" in widget.error


def test_a_wrong_type_from_the_page_is_refused_shown_and_the_page_put_back(widget, monkeypatch):
    sent = []
    monkeypatch.setattr(widget, "send_state", lambda key=None: sent.append(key))
    widget.set_state({"value": "3"})
    assert widget.value == 0 and "value must be an int; got '3'" in widget.error and ["value"] in sent


def test_a_python_owned_trait_cannot_be_set_from_the_page(widget, monkeypatch):
    monkeypatch.setattr(widget, "send_state", lambda key=None: None)
    widget.set_state({"shown": "forged", "running": True})
    assert widget.shown == "" and not widget.running and "set by the widget" in widget.error


def test_an_unknown_option_from_the_page_is_refused_and_nothing_of_the_message_is_applied(widget, monkeypatch):
    monkeypatch.setattr(widget, "send_state", lambda key=None: None)
    widget.set_state({"value": 4, "colour": "jet"})
    assert (widget.value, widget.colour) == (0, "red") and "colour must be any of" in widget.error


def test_a_value_refused_by_a_check_from_the_page_is_put_back_without_raising(widget, monkeypatch):
    monkeypatch.setattr(widget, "send_state", lambda key=None: None)
    widget.set_state({"value": 99})
    assert widget.value == 0 and "got 99" in widget.error


def test_a_valid_change_is_shown_by_the_time_the_setter_returns_and_clears_the_error(widget):
    with pytest.raises(OptionError):
        widget.value = 99
    widget.value = 3
    assert widget.shown == "showing 3" and widget.error == "" and not widget.running


def test_a_job_that_fails_puts_the_value_back_and_raises_to_the_python_caller():
    w = Counter(fail_at=5)
    w.value = 2
    with pytest.raises(OptionError, match="cannot show 5"):
        w.value = 5
    assert w.value == 2 and w.shown == "showing 2" and "cannot show 5" in w.error and w.status == "stopped"
    w.close()


def test_reports_of_a_superseded_job_are_dropped():
    release = threading.Event()
    w = Counter(slow=release)
    first = w._start(w._show)
    w._push(value=7)
    second = w._start(w._show)
    release.set()
    assert w.wait(5) and first.cancelled
    assert w.shown == "showing 7" and w.job is second


def test_the_follower_ends_on_the_leaders_final_state_whatever_threads_change_it():
    leader, follower = Counter(limit=100), Counter(limit=100)
    follower._follow(leader, "value", lambda: follower._push(value=leader.value))

    def clicks(seed):
        for v in np.random.default_rng(seed).integers(0, 100, 25):
            leader.value = int(v)

    threads = [threading.Thread(target=clicks, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert follower.value == leader.value
    leader.close()
    follower.close()


def test_public_state_is_real_traits_that_link_both_ways(widget):
    slider = ipywidgets.IntSlider(max=9)
    assert widget.has_trait("value")
    link = ipywidgets.link((widget, "value"), (slider, "value"))
    slider.value = 4
    assert widget.value == 4 and widget.shown == "showing 4"
    widget.value = 6
    assert slider.value == 6
    link.unlink()
    dlink = t.dlink((widget, "value"), (slider, "value"))
    widget.value = 1
    assert slider.value == 1
    dlink.unlink()


def test_close_closes_every_widget_it_made_and_frees_the_widget():
    before = set(ipywidgets.Widget.widgets)
    w = Counter(chart=True)
    w.value = 1
    ref = weakref.ref(w)
    w.close()
    del w
    gc.collect()
    assert set(ipywidgets.Widget.widgets) - before == set() and ref() is None


def test_a_closed_widget_refuses_new_values_with_a_message():
    w = Counter()
    w.close()
    with pytest.raises(CnnWidgetError, match="Counter is closed, so value can no longer be set"):
        w.value = 3
    assert w.value == 0


def test_a_constructor_that_raises_halfway_leaves_nothing_on_stderr_at_collection(monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    class Broken(Counter):
        def __init__(self):
            raise OptionError("no")

    with pytest.raises(OptionError):
        Broken()
    gc.collect()
    assert unraisable == []


def test_repr_is_one_short_line(widget):
    assert repr(widget) == "<Counter>" and "\n" not in repr(widget)


def test_the_widget_is_its_own_view(widget):
    assert widget.view is widget


def test_every_widget_tells_the_page_which_of_its_changes_need_the_kernel(widget):
    # with the kernel shut down the page puts such a change back (js/export_tools.js cnnwKernelGuard): the same rule
    # as the exported HTML (_export.kernel_traits), synced by the base for every widget, not only the Explorer
    from cnnwidget.widgets import _export

    assert widget._kernel_traits == _export.kernel_traits(widget)
    assert "value" in widget._kernel_traits and "shown" not in widget._kernel_traits
    assert widget.get_state(["_kernel_traits"]) == {"_kernel_traits": widget._kernel_traits}
