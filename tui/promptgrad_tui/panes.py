"""Which pane is shown and which has the cursor: all four side by side on a wide terminal, one at a
time with tabs on a narrow one; ctrl+n and tab move between them."""

from __future__ import annotations

from textual import events
from textual.widgets import Input, Tabs

from promptgrad_tui.widgets.config_form import ConfigForm
from promptgrad_tui.widgets.predictions import PredictionsPane

PANES = {"config": "Config", "chart": "Loss", "predictions": "Predictions", "nearest": "Nearest"}
WIDE = 120  # columns from which the four panes stand side by side
OPTION_DIGITS = (
    "inverted_exclamation_mark",
    "trade_mark_sign",
    "pound_sign",
    "cent_sign",
)  # ¡ ™ £ ¢: option+1-4 on a Mac


class Panes:
    """Mixin of MainScreen."""

    focus_given: set  # widgets this screen focused itself, whose focus message has not come yet

    def watch_pane(self, pane: str) -> None:
        self.show_panes()
        tabs = self.query_one(Tabs)
        with self.prevent(Tabs.TabActivated):  # set from here: no echo that could undo a later switch
            tabs.active = f"tab-{pane}"

    def show_panes(self) -> None:
        """All four panes on a wide screen, the current one on a narrow one. Set as inline display, not as
        a CSS class: a class change makes Textual restyle every widget in the pane (the form has hundreds),
        which took half a second a key press."""
        narrow = self.size.width < WIDE
        for name in PANES:
            self.query_one(f"#{name}").display = not narrow or name == self.pane

    def on_resize(self, event: events.Resize) -> None:
        self.show_panes()
        self.apply_size_policy()

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        # the tabs announce their first tab when mounted: that is no user's choice, and taking it would put the
        # cursor in the form's first field at launch (the first keys typed would land there)
        if event.tab is not None and event.tab.id and event.tab.id.removeprefix("tab-") != self.pane:
            self.show_pane(event.tab.id.removeprefix("tab-"))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Tab (or a click) moving the cursor into another pane makes that pane the current one (for ctrl+n),
        and its border the accented one. A focus this screen gave itself (show_pane) changes nothing: when
        keys come quickly its message can arrive after the next key has already moved on, and taking it
        then would send the pane back."""
        programmatic = event.widget in self.focus_given
        self.focus_given.discard(event.widget)
        for name in PANES:
            pane = self.query_one(f"#{name}")
            has_cursor = pane in (event.widget, *event.widget.ancestors)
            if has_cursor and not programmatic:
                self.pane = name
            # the title in bold accent, set inline: a class change would restyle every widget inside the
            # pane, and a border change would lay the whole screen out again
            pane.styles.border_title_color = self.app.theme_variables["accent"] if has_cursor else None
            pane.styles.border_title_style = "bold" if has_cursor else "none"

    def pane_focus_target(self, pane: str):
        widget = self.query_one(f"#{pane}")
        if isinstance(widget, ConfigForm):
            return next(iter(widget.config_fields.values())).control
        if isinstance(widget, PredictionsPane):
            return widget.table
        return widget

    def show_pane(self, pane: str, focus: bool = True) -> None:
        self.pane = pane
        if focus:
            target = self.pane_focus_target(pane)

            def focus_if_still_current() -> None:  # a later switch may have come first: then it wins
                if self.pane == pane:
                    self.focus_given.add(target)
                    target.focus()

            self.call_after_refresh(focus_if_still_current)

    def action_next_pane(self) -> None:
        names = list(PANES)
        self.show_pane(names[(names.index(self.pane) + 1) % len(names)])

    def action_show_pane(self, pane: str) -> None:  # 1-4, alt+1-4, f6-f9
        self.show_pane(pane)

    def action_leave_field(self) -> None:
        """escape: the cursor leaves the text field (the pane stays), so that 1-4 and q are keys again."""
        if isinstance(self.app.focused, Input):
            self.app.set_focus(None)
