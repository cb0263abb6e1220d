"""The OpenAI backend: any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp
server) through the official SDK, as one stack.

- endpoints.py: which endpoint a model id names (NAME/MODEL, else the default one) and the
  checks a new named endpoint passes; capabilities.py: what an endpoint supports, declared or
  detected and remembered in the workspace; formats.py: the structured-output forms;
- client.py: the endpoint (key, base URL, timeout; Azure through the SDK's Azure clients),
  tenacity retries on a client built with max_retries=0, the response-format probe, the one
  error mapping (errors.py), call statistics;
- prompts.py / answers.py: the teacher's and the generator's prompts, and reading the answers;
- router.py, generator.py: routing and question writing; batch.py: the Batch API;
- finetune_api.py / trainer.py: fine-tuning files, jobs and events, and the Trainer over them;
  endpoint_trainer.py: the same on the endpoint a base model names;
- tokens.py: prompt tokens counted offline (o200k_base);
- backend.py: what the registry loads (the `openai` entry point).

Nothing here imports the SDK at import time: the TUI paints first.
"""
