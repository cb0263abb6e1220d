"""The knobs of one hf training run, read from the job's params and checked once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from routelab.domain import BadInput

METHODS = ("classifier", "lora")
DEFAULT_BASE = {"classifier": "sentence-transformers/all-MiniLM-L6-v2", "lora": "Qwen/Qwen3-0.6B"}
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class HFOptions:
    method: str = "classifier"
    epochs: int | None = None  # None: 6 (classifier, with early stopping) / 2 (lora)
    learning_rate: float | None = None  # None: 5e-5 (classifier body; the head gets head_lr) / 2e-4 (lora)
    head_lr: float | None = None  # classifier: the new head learns faster (None: 20x learning_rate)
    batch_size: int = 32
    max_length: int | None = None  # None: 64 (classifier) / 512 (lora)
    checkpoint_every: int = 200  # optimizer steps between checkpoints
    eval_every: int | None = None  # steps between validations (None: once per epoch)
    patience: int = 2  # classifier: validations without a better validation loss before stopping
    warmup: float = 0.06  # share of the steps with a rising learning rate
    weight_decay: float = 0.01
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    device: str = "auto"
    gpus: int = 1  # >1: several GPUs through `accelerate launch`
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    resume: bool = True  # continue from the last checkpoint of an unfinished run of the same data
    seed: int = 0
    log_every: int | None = None  # steps between training-loss events (None: about 50 per run)

    @property
    def lr(self) -> float:
        return self.learning_rate or (5e-5 if self.method == "classifier" else 2e-4)

    @property
    def head_learning_rate(self) -> float:
        return self.head_lr or self.lr * 20

    @property
    def n_epochs(self) -> int:
        return self.epochs or (6 if self.method == "classifier" else 2)

    @property
    def length(self) -> int:
        return self.max_length or (64 if self.method == "classifier" else 512)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_key(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed (everything that changes the training)."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "gpus", "threads", "resume", "log_every")}


def parse_options(raw: dict[str, Any]) -> HFOptions:
    """HFOptions from a dict (CLI flags, job params); BadInput naming the field that is wrong."""
    known = {f.name: f for f in fields(HFOptions)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise BadInput(f"the hf trainer has no option {', '.join(unknown)} (it takes: {', '.join(known)})")
    values = {k: v for k, v in raw.items() if v is not None}
    try:
        opts = HFOptions(**values)
    except TypeError as e:
        raise BadInput(f"hf options: {e}") from None
    _check(opts)
    return opts


def _check(o: HFOptions) -> None:
    if o.method not in METHODS:
        raise BadInput(f"--method must be one of {', '.join(METHODS)} (got {o.method!r})")
    if o.device not in DEVICES:
        raise BadInput(f"--device must be one of {', '.join(DEVICES)} (got {o.device!r})")
    positive = {"batch_size": o.batch_size, "checkpoint_every": o.checkpoint_every, "gpus": o.gpus,
                "patience": o.patience, "lora_r": o.lora_r, "lora_alpha": o.lora_alpha}
    for name, value in [*positive.items(), ("epochs", o.epochs), ("max_length", o.max_length),
                        ("eval_every", o.eval_every), ("threads", o.threads), ("log_every", o.log_every)]:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise BadInput(f"--{name.replace('_', '-')} must be a positive whole number (got {value!r})")
    for name, value in (("learning_rate", o.learning_rate), ("head_lr", o.head_lr)):
        if value is not None and not (0 < float(value) < 1):
            raise BadInput(f"--{name.replace('_', '-')} must be between 0 and 1 (got {value!r})")
    if not (0 <= o.warmup < 1 and 0 <= o.lora_dropout < 1 and o.weight_decay >= 0):
        raise BadInput("hf options: warmup and lora_dropout must be in [0, 1), weight_decay >= 0")
    if o.gpus > 1 and o.device == "cpu":
        raise BadInput("--gpus above 1 needs --device cuda (or auto)")
