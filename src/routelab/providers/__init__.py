"""Backends behind one registry: what routes, writes questions, labels in bulk and trains.

- base.py: the interfaces (Backend, Router, QuestionGenerator, BatchLabeler, Trainer,
  JobReporter) and the one error family;
- registry.py: which backends exist (entry-point group `routelab.providers`) and which
  one serves a model id;
- openai/: any OpenAI-compatible endpoint; local/: the embedded, offline backend;
- prompts.py: the router prompt and the chat format of routing data.

Heavy imports (openai, wordllama, scikit-learn) stay inside the implementations.
"""
