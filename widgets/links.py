"""Links for the widgets: `widget.link()` gives the widget's setup as the same query-string link
the app copies (`?tab=cnn&sample=coffee&layer=conv2…`, see vlmlab.links), and
`Widget.from_link(link)` builds a widget in that state (on the sample photo the link names)."""

from __future__ import annotations

import functools
import inspect

from vlmlab import links
from vlmlab.images import sample_images

DEFAULT_SAMPLE = "chelsea"


class Linkable:
    """Mixin: `LINK_TAB` names the app tab; `LINK_INIT` maps link fields to constructor keywords
    (what the widget is built with, like the model), `LINK_CONTROLS` to the widget's controls
    (attribute names: read for `link()`, set by `from_link` when not a constructor keyword);
    `LINK_PHOTO` says whether the constructor takes the photo first."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__init__
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            self._link_args = dict(bound.arguments)  # what it was built with
            init(self, *args, **kwargs)

        cls.__init__ = recording

    LINK_TAB: str = ""
    LINK_INIT: dict[str, str] = {}
    LINK_CONTROLS: dict[str, str] = {}
    LINK_PHOTO = True
    sample: str | None = None  # the sample photo's name, when the widget was built from a link
    link_notes: tuple[str, ...] = ()  # what the link asked for and did not get

    def link(self, base: str = "") -> str:
        """This widget's setup as a link: `base` (the lab's address) + "?" + the query."""
        values = {}
        built = getattr(self, "_link_args", {})
        for name, keyword in self.LINK_INIT.items():
            if isinstance(built.get(keyword), (str, int, float, bool)):
                values[name] = built[keyword]
        for name, attribute in self.LINK_CONTROLS.items():
            control = getattr(self, attribute, None)
            if hasattr(control, "value"):
                values[name] = control.value
        upload = self.LINK_PHOTO and self.sample is None
        state, _ = links.view_from_values(self.LINK_TAB, self.sample, values, upload=upload)
        return f"{base}?{links.encode(state)}"

    @classmethod
    def from_link(cls, link: str, **options):
        """A widget in the state `link` describes (what cannot be taken is in `link_notes`)."""
        query = link.split("?", 1)[1] if "?" in link else link
        view = links.decode(query)
        if view.tab != cls.LINK_TAB:
            raise links.LinkError(
                f"This link opens the {view.tab or 'first'} tab; {cls.__name__} takes links of "
                f"the {cls.LINK_TAB} tab."
            )
        settings = view.settings
        kwargs = dict(options)
        for name, keyword in cls.LINK_INIT.items():
            value = getattr(settings, name)
            if value is not None:
                kwargs[keyword] = value
        sample = view.sample or DEFAULT_SAMPLE
        args = (sample_images()[sample],) if cls.LINK_PHOTO else ()
        widget = cls(*args, **kwargs)
        widget.sample = sample if cls.LINK_PHOTO else None
        for name, attribute in cls.LINK_CONTROLS.items():
            value = getattr(settings, name)
            control = getattr(widget, attribute, None)
            if value is not None and name not in cls.LINK_INIT and hasattr(control, "value"):
                control.value = value
        widget.link_notes = view.notes
        return widget
