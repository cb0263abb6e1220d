"""Messages panes post to the app, so one pane can open something in another.

- `ShowExamples(ids, title, split)`: the Evaluate pane asks for these examples (e.g. one cell of
  a confusion matrix) to be opened in the Review pane. The app (or the review pane)
  handles it with `on_show_examples`, e.g. by switching to the Review tab and filtering
  on `ExampleFilter(ids=tuple(ids), split=split)`: test-split questions show only when
  `split` names the test split (the evaluation was on it).
- `OpenInPlayground(model_id)`: open a model in the Playground (the Jobs pane posts it for
  `p` on a trained job; the app shows the Playground tab and calls `PlaygroundPane.select_model`).
"""

from __future__ import annotations

from textual.message import Message


class ShowExamples(Message):
    def __init__(self, ids: list[int], title: str, split: str | None = None) -> None:
        super().__init__()
        self.ids = list(ids)
        self.title = title
        self.split = split


class OpenInPlayground(Message):
    def __init__(self, model_id: str) -> None:
        super().__init__()
        self.model_id = model_id


__all__ = ["OpenInPlayground", "ShowExamples"]
