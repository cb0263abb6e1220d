"""The Playground pane: type a question, see where every selected router sends it.

The pane paints at once; the model list and the routers load in a worker thread.
Enter routes the question with every selected model side by side (action, confidence,
latency, cost); each try goes into the history (select a row to see its routes again);
ctrl+s saves the question (with its routes as proposals) into the workspace, source
"playground", for review; ctrl+r lists the models again (one trained meanwhile appears). Earlier turns of a conversation go before the question,
separated by " | ".
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, SelectionList, Static
from textual.widgets.selection_list import Selection
from textual.worker import get_current_worker

from routelab.domain import RoutelabError
from routelab.services.formatting import fmt_confidence, fmt_ms, fmt_route_cost
from routelab.services.playground import RouteResult, Try
from routelab.services.workspace import Workspace
from routelab.tui.components.model_names import short_model
from routelab.tui.safe import literal

MODEL_WIDTH = 30  # the routes table's model column (the full ids are in its tooltip)
LIST_WIDTH = 26  # what the model list shows of an id beside its checkbox
COST_WIDTH = 9  # `<$0.0001`, `$0.00012`, `$0.012`, `free`


def route_cells(r: RouteResult) -> tuple[Text, Text, str, str, str]:
    """(action, error, confidence, latency, cost) of one route, for the routes table."""
    if r.error:
        return literal("error", "red"), literal(r.error, "red"), "", "", ""
    action = literal(r.action, "bold") if r.valid and r.action else literal("(invalid)", "red")
    return action, literal(""), fmt_confidence(r.confidence), fmt_ms(r.latency_ms), \
        fmt_route_cost(r.cost, r.tokens_in + r.tokens_out)


class PlaygroundPane(Vertical):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save for review", priority=True),
        Binding("ctrl+l", "focus_input", "Ask", show=False),
        Binding("ctrl+r", "reload_models", "Reload models"),
    ]

    def __init__(self, workspace: Workspace, **kwargs):
        super().__init__(**kwargs)
        self.workspace = workspace
        self.playground = None  # services.playground.Playground, built in a worker
        self.models: list[str] = []
        self.tries: list[Try] = []  # oldest first
        self.current: int | None = None  # index into tries shown in the results table
        self._pending: list[str] = []  # select_model() calls before the models loaded
        self.ready = False
        self._loading = False  # models load the first time the pane is shown: the app paints first

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Ask something… (earlier turns first: 'I need a day off | Which day? | Friday')  "
                                "⏎ route · ctrl+s save for review", id="pg-input")
        with Horizontal(id="pg-main"):
            models = SelectionList[str](id="pg-models")
            models.border_title = "Models · space toggles"
            yield models
            with Vertical(id="pg-right"):
                results = DataTable(id="pg-results", cursor_type="row")
                results.border_title = "Routes"
                yield results
                history = DataTable(id="pg-history", cursor_type="row", zebra_stripes=True)
                history.border_title = "History · select a try to see its routes"
                yield history
        yield Static(Text("loading models…", style="dim"), id="pg-status")

    def on_mount(self) -> None:
        results = self.query_one("#pg-results", DataTable)
        for label in ("model", "action", "confidence", "latency"):
            results.add_column(label)
        results.add_column("cost", width=COST_WIDTH)  # never cut to `$0.`
        results.add_column("")
        self.query_one("#pg-history", DataTable).add_columns("#", "saved", "question", "routes")


    def on_show(self) -> None:
        """Shown (its tab opened): the question box takes the keys; the models start loading."""
        if self.app.focused is None or self.app.focused not in self.query("*"):
            self.query_one("#pg-input", Input).focus()
        if not self._loading:
            self._loading = True
            self.load_models()

    # ------------------------------------------------------------------ models

    @work(thread=True, exclusive=True, group="pg-load")
    def load_models(self) -> None:
        try:
            if self.playground is None:
                self.playground = self.workspace.playground()
            models = self.playground.models()
        except RoutelabError as e:
            self.app.call_from_thread(self._status, str(e), "red")
            return
        self.app.call_from_thread(self._models_listed, models)
        errors = self.playground.warm(models)  # the slow part: embeddings, trained models
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._models_ready, errors)

    def _models_listed(self, models: list[str]) -> None:
        self.models = list(models)
        sl = self.query_one("#pg-models", SelectionList)
        sl.clear_options()
        sl.add_options([self._option(m) for m in self.models])
        self._list_tooltip()
        for model in self._pending:
            self._add_model(model)
        self._pending.clear()
        self._status("loading models…", "dim")

    def _models_ready(self, errors: dict[str, str]) -> None:
        self.ready = True
        if errors:
            self._status("; ".join(f"{m}: {e}" for m, e in errors.items()), "red")
        else:
            self._status(f"{len(self.models)} models ready · type a question and press Enter", "dim")

    def select_model(self, model_id: str) -> None:
        """Open a model (e.g. freshly trained) in the playground: listed, selected, loaded."""
        if not self.models:
            self._pending.append(model_id)
            return
        self._add_model(model_id)
        if self.playground is not None:
            self.playground.forget(model_id)
            self._warm_one(model_id)

    def _add_model(self, model_id: str) -> None:
        sl = self.query_one("#pg-models", SelectionList)
        if model_id not in self.models:
            self.models.append(model_id)
            sl.add_option(self._option(model_id))
            self._list_tooltip()
        else:
            sl.select(model_id)

    @staticmethod
    def _option(model_id: str) -> Selection:
        """A model in the list: its id shortened to fit (`ft:…:suffix:id`), the value the full id."""
        return Selection(literal(short_model(model_id, LIST_WIDTH)), model_id, True)

    def _list_tooltip(self) -> None:
        """The full ids of the models the list shows shortened."""
        cut = [m for m in self.models if short_model(m, LIST_WIDTH) != m]
        self.query_one("#pg-models", SelectionList).tooltip = Text("\n".join(cut)) if cut else None

    @work(thread=True, group="pg-warm")
    def _warm_one(self, model_id: str) -> None:
        errors = self.playground.warm([model_id])
        message = errors.get(model_id) or f"{model_id} ready"
        self.app.call_from_thread(self._status, message, "red" if model_id in errors else "dim")

    def selected_models(self) -> list[str]:
        chosen = set(self.query_one("#pg-models", SelectionList).selected)
        return [m for m in self.models if m in chosen]

    # ------------------------------------------------------------------ routing

    @on(Input.Submitted, "#pg-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if self.playground is None:
            self._status("models are still loading…", "yellow")
            return
        models = self.selected_models()
        if not models:
            self._status("select at least one model (space toggles)", "yellow")
            return
        self._status("routing…", "dim")
        self.route(text, models)

    @work(thread=True, group="pg-route")
    def route(self, text: str, models: list[str]) -> None:
        try:
            attempt = self.playground.route(text, models)
        except RoutelabError as e:
            self.app.call_from_thread(self._status, str(e), "red")
            return
        self.app.call_from_thread(self.add_try, attempt)

    def add_try(self, attempt: Try) -> None:
        """Show a routed question: a new row of the history, its routes in the table."""
        self.tries.append(attempt)
        index = len(self.tries) - 1
        summary = " · ".join(
            f"{short_model(r.model, 24)}→{r.action if r.valid and r.action else ('error' if r.error else 'invalid')}"
            for r in attempt.results
        )
        history = self.query_one("#pg-history", DataTable)
        question = attempt.text + (f"  (+{len(attempt.conversation)} turns)" if attempt.conversation else "")
        history.add_row(str(index + 1), "", literal(question), literal(summary), key=str(index))
        history.move_cursor(row=history.row_count - 1)
        self._show_try(index)
        self.query_one("#pg-input", Input).value = ""
        self._status("ctrl+s saves this question for review", "dim")

    def _show_try(self, index: int) -> None:
        self.current = index
        attempt = self.tries[index]
        results = self.query_one("#pg-results", DataTable)
        results.clear()
        title = attempt.text if not attempt.conversation else f"{attempt.text}  (+{len(attempt.conversation)} earlier turns)"
        results.border_title = Text("Routes · ") + literal(title[:80])
        for r in attempt.results:
            action, error, conf, latency, cost = route_cells(r)
            results.add_row(literal(short_model(r.model, MODEL_WIDTH)), action, conf, latency, cost, error)
        cut = [(short_model(r.model, MODEL_WIDTH), r.model) for r in attempt.results
               if short_model(r.model, MODEL_WIDTH) != r.model]
        results.tooltip = Text("\n".join(f"{a} = {b}" for a, b in cut)) if cut else None  # the full ids

    @on(DataTable.RowHighlighted, "#pg-history")
    def _history_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            index = int(event.row_key.value)
            if index != self.current and 0 <= index < len(self.tries):
                self._show_try(index)

    # ------------------------------------------------------------------ saving

    def action_save(self) -> None:
        if self.current is None or not self.tries:
            self._status("route a question first, then ctrl+s saves it", "yellow")
            return
        attempt = self.tries[self.current]
        if attempt.saved_id is not None:
            self._status(f"already saved as #{attempt.saved_id}", "dim")
            return
        self.save(self.current)

    @work(thread=True, group="pg-save")
    def save(self, index: int) -> None:
        attempt = self.tries[index]
        try:
            example_id = self.playground.save(attempt)
        except RoutelabError as e:
            self.app.call_from_thread(self._status, str(e), "red")
            return
        self.app.call_from_thread(self._saved, index, example_id)

    def _saved(self, index: int, example_id: int) -> None:
        history = self.query_one("#pg-history", DataTable)
        history.update_cell(str(index), history.ordered_columns[1].key, f"#{example_id}")
        self._status(f"saved as #{example_id} (source playground): it is in the Review pane", "green")

    def action_reload_models(self) -> None:
        """List the models again (a model trained meanwhile appears) and reload every router."""
        if self.playground is not None:
            self.playground.forget()
        self.ready = False
        self._status("loading models…", "dim")
        self.load_models()

    def action_focus_input(self) -> None:
        self.query_one("#pg-input", Input).focus()

    def _status(self, message: str, style: str = "") -> None:
        self.query_one("#pg-status", Static).update(literal(message, style))
