"""The shape every widget here shares: an ipywidgets box around one anywidget ``view`` that holds the synced state.

A widget lists its view's traits in ``_view_traits``; those names then read, write and observe the view's traits
on the widget itself (``grid.layer``, ``grid.observe(f, "selected_channel")``), so there is one copy of each value
and a bad one can be put back (a traitlets.link between two copies could not revert it). Setting one from Python
holds the view's sync, so the change and everything its observers change leave in one message.
"""

from __future__ import annotations

import contextlib

import traitlets as t


class ViewTraits:
    """Mixin for an ipywidgets Box with a ``view`` attribute; see the module docstring."""

    _view_traits: tuple[str, ...] = ()
    _reverting = False  # True while the widget itself sets its view: its own observers then stay still

    @contextlib.contextmanager
    def _quiet(self):
        """Set view traits without the widget's observers reacting: it made the state, or is putting one back."""
        self._reverting = True
        try:
            yield
        finally:
            self._reverting = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in cls.__dict__.get("_view_traits", ()):
            setattr(cls, name, _forward(name))

    def _coerce_view_trait(self, name: str, value):
        """Hook: turn a value a person gives into the view trait's own form (e.g. an int into a list)."""
        return value

    def observe(self, handler, names=t.All, type="change"):
        """Observe traits; names in ``_view_traits`` are observed on the view (``change.owner`` is the view)."""
        mine, theirs = self._split_names(names)
        if theirs:
            self.view.observe(handler, names=theirs, type=type)
        if mine:
            super().observe(handler, names=mine, type=type)

    def unobserve(self, handler, names=t.All, type="change"):
        mine, theirs = self._split_names(names)
        if theirs:
            self.view.unobserve(handler, names=theirs, type=type)
        if mine:
            super().unobserve(handler, names=mine, type=type)

    def _split_names(self, names):
        shared = self._view_traits
        if names is t.All:
            return t.All, list(shared)
        names = [names] if isinstance(names, str) else list(names)
        return [n for n in names if n not in shared], [n for n in names if n in shared]


def _forward(name: str) -> property:
    def get(self):
        return getattr(self.view, name)

    def set_(self, value):
        with self.view.hold_sync():
            setattr(self.view, name, self._coerce_view_trait(name, value))

    return property(get, set_, doc=f"The view's synced ``{name}`` trait.")
