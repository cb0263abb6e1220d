"""routelab: distil a strong, slow LLM teacher into a fast, cheap intent router."""

__version__ = "0.1.0"
