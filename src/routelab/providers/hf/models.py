"""Loading models and tokenizers: a base to train, or a trained folder to route with.

A base is any Hub id or local folder. Offline, a Hub id that is not in the local cache
fails; that failure becomes one line naming the model, not a stack of HTTP errors.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from routelab.domain import BadInput

META = "routelab.json"  # beside the weights: what routelab needs to route with the folder


def quiet() -> None:
    """transformers' progress bars and load reports are not for our users' terminals."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _load(what: str, base: str, loader, **kwargs: Any):
    try:
        return loader(base, **kwargs)
    except (OSError, ValueError) as e:
        where = "the folder" if Path(base).exists() else "a local folder, and the Hugging Face Hub"
        reason = " ".join(str(e).split())[:200]
        raise BadInput(f"cannot load {what} {base!r} (looked in {where}): {reason}") from None


def load_tokenizer(base: str):
    from transformers import AutoTokenizer

    quiet()
    tok = _load("the tokenizer of", base, AutoTokenizer.from_pretrained)
    if tok.pad_token_id is None:  # many causal LMs ship without one: pad with end-of-text
        tok.pad_token = tok.eos_token
    return tok


def load_classifier(base: str, classes: list[str] | None = None):
    """A sequence classifier: from a base (a new head for `classes`) or from a trained folder."""
    from transformers import AutoModelForSequenceClassification

    quiet()
    if classes is None:
        return _load("the classifier", base, AutoModelForSequenceClassification.from_pretrained)
    labels = dict(enumerate(classes))
    return _load("the base model", base, AutoModelForSequenceClassification.from_pretrained,
                 num_labels=len(classes), id2label=labels, label2id={c: i for i, c in labels.items()})


def load_encoder(base: str):
    from transformers import AutoModel

    quiet()
    return _load("the base model", base, AutoModel.from_pretrained)


def load_causal_lm(base: str, dtype=None):
    from transformers import AutoModelForCausalLM

    quiet()
    kwargs = {"dtype": dtype} if dtype is not None else {}
    return _load("the base model", base, AutoModelForCausalLM.from_pretrained, **kwargs)


def is_causal(base: str) -> bool:
    """Is `base` a chat/causal LM (else an encoder)? From its config alone."""
    from transformers import AutoConfig

    quiet()
    config = _load("the config of", base, AutoConfig.from_pretrained)
    return any(a.endswith("ForCausalLM") for a in (config.architectures or [])) or bool(
        getattr(config, "is_decoder", False))


def cache_keyword(model) -> str:
    """The forward() argument that takes a KV cache: `cache` in transformers 5, `past_key_values` before."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def output_cache(out):
    return out.cache if hasattr(out, "cache") and out.cache is not None else out.past_key_values


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    (folder / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / META
    if not path.exists():
        raise BadInput(f"{folder}: not a routelab hf model folder (no {META}); was it moved or deleted?")
    return json.loads(path.read_text(encoding="utf-8"))
