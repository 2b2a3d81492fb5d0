"""Inference backends: each turns epoch queries into raw model text in the SleepVLM output shape."""
from inference.services.backends.base import Backend, EpochQuery, RawOutput


def get_backend(backend: str, settings: dict) -> Backend:
    """Instantiate the backend class for a ModelVersion's backend name and settings."""
    if backend == "baseline":
        from inference.services.backends.baseline import BaselineBackend as cls
    elif backend == "openai":
        from inference.services.backends.openai_backend import OpenAIBackend as cls
    elif backend == "transformers":
        from inference.services.backends.transformers_backend import TransformersBackend as cls
    else:
        raise ValueError(f"unknown backend {backend!r}")
    return cls(settings)


__all__ = ["Backend", "EpochQuery", "RawOutput", "get_backend"]
