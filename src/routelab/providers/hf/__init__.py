"""The `hf` backend: open-weights students trained with Hugging Face transformers.

Two methods, one job lifecycle (validating -> running -> succeeded, cancellable from any
process, checkpointed, resumable):

- `classifier`: a sequence-classification head on an encoder (any Hub id or local folder),
  the conversation history in the input, early stopping on validation loss;
- `lora`: LoRA (peft) on a causal LM over the exported chat JSONL, loss on the assistant's
  answer only; it routes by scoring every action's answer, never by free text.

Models live in a folder beside the workspace (`<stem>-models/<job id>/model`); the
workspace's models table stores the folder's path, never weights. torch, transformers,
peft and accelerate are an optional extra (`pip install 'routelab[hf]'`): nothing here
imports them until a run needs them (backend.py says what to install when they are missing).

Modules: backend (the registry's view), options, deps, device, data (encoding, batches),
models (loading, building), loop (the training loop), checkpoints, scoring (LoRA answers),
router (routing in-process), estimate (tokens, steps, minutes, dollars), trainer (the
Trainer), launch and worker (several GPUs through `accelerate launch`), export (what vLLM
or Ollama load).
"""
