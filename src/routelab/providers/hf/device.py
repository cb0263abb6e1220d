"""Where a run computes: CPU, the GPU found by itself, bf16 where the GPU supports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu" | "cuda"
    name: str  # what it is, in words (shown in estimates and events)
    mixed_precision: str  # "no" | "bf16" | "fp16": what accelerate is asked for
    threads: int  # CPU threads torch uses

    @property
    def gpu(self) -> bool:
        return self.kind == "cuda"


def pick_device(wanted: str = "auto", threads: int | None = None) -> Device:
    """`auto`: the first CUDA GPU when torch sees one, else the CPU. bf16 on GPUs that support it
    (Ampere and later), fp16 on older ones, full precision on CPU (bf16 matmuls are slow there)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from routelab.domain import BadInput

            raise BadInput("--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False)")
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        count = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0) + (f" (1 of {count})" if count > 1 else "")
        return Device("cuda", name, precision, torch.get_num_threads())
    return Device("cpu", f"cpu ({torch.get_num_threads()} threads)", "no", torch.get_num_threads())


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
