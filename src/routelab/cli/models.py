"""Model commands: export-model (what vLLM or Ollama load)."""

from __future__ import annotations

from pathlib import Path

from routelab.cli.output import add_json_flag, emit_json


def register(sub, common) -> None:
    p = sub.add_parser(
        "export-model", parents=[common], help="write a trained hf model where vLLM or Ollama load it",
        description="LoRA models: the adapter merged into its base, saved as safetensors with the tokenizer and "
                    "its chat template, and an Ollama Modelfile (vllm serve DIR). Classifiers: the fine-tuned "
                    "transformers folder.",
    )
    p.add_argument("model", help="a model id from `routelab jobs list` (hf-lora-..., hf-classifier-...)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (replaced if it is an earlier export)")
    add_json_flag(p)
    p.set_defaults(func=cmd_export_model)


def cmd_export_model(ctx) -> int:
    from routelab.domain import printable
    from routelab.services.model_export import export_model

    result = export_model(ctx.store(), ctx.args.model, Path(ctx.args.out), ctx.settings())
    if ctx.args.json:
        emit_json(result)
        return 0
    print(f"wrote {result['method']} model {printable(result['model'])} to {result['out']}: {', '.join(result['files'])}")
    print(f"serve it: {result['serve']}")
    return 0
