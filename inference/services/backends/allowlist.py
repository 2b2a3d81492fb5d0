"""What a model version's settings may point a backend at: only what the operator allows (config/settings.py).

INFERENCE_API_KEY_ENVS: environment variables an api_key_env may name; INFERENCE_BASE_URL_HOSTS: hosts
a base_url may reach (http or https); INFERENCE_PROMPT_DIRS and INFERENCE_CHECKPOINT_DIRS: folders a
system_prompt_file or checkpoint_dir may lie in, symlinks resolved. Checked when a version is saved and
again when a backend is built in the worker, so a row edited in the database cannot reach further.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings as django_settings

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"  # what the openai backend reads when api_key_env is not set
PATH_SETTINGS = {"system_prompt_file": "INFERENCE_PROMPT_DIRS", "checkpoint_dir": "INFERENCE_CHECKPOINT_DIRS"}
UNSAFE_URL_CHARACTERS = re.compile(r"[\s\\\x00-\x1f\x7f]")


def check_settings(backend: str, settings) -> None:
    """Raise ValueError, naming the setting and what is allowed, where `settings` reach beyond the allowlists."""
    if not isinstance(settings, dict):
        raise ValueError("settings must be a JSON object")
    key_env = settings.get("api_key_env") or (DEFAULT_API_KEY_ENV if backend == "openai" else None)
    if key_env is not None and key_env not in (allowed := list(django_settings.INFERENCE_API_KEY_ENVS)):
        raise ValueError(f"api_key_env {key_env!r} is not allowed; the operator allows "
                         f"{_listing(allowed)} (INFERENCE_API_KEY_ENVS)")
    if settings.get("base_url"):
        check_base_url(settings["base_url"])
    for key in PATH_SETTINGS:
        if settings.get(key):
            allowed_path(key, settings[key])


def check_base_url(url) -> None:
    """An http(s) URL without credentials whose host is one of INFERENCE_BASE_URL_HOSTS."""
    hosts = [host.lower() for host in django_settings.INFERENCE_BASE_URL_HOSTS]
    allowed = f"http(s) URLs on {_listing(hosts)} (INFERENCE_BASE_URL_HOSTS)"
    if not isinstance(url, str) or UNSAFE_URL_CHARACTERS.search(url):
        raise ValueError(f"base_url {url!r} is not a plain URL; the operator allows {allowed}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"base_url {url!r} is not a valid URL ({exc}); the operator allows {allowed}") from None
    if parts.scheme not in ("http", "https") or parts.username is not None or parts.hostname not in hosts:
        raise ValueError(f"base_url {url!r} is not allowed; the operator allows {allowed}")


def allowed_path(key: str, value) -> Path:
    """The resolved path of setting `key` (symlinks followed), refused unless it lies in an allowed folder."""
    name = PATH_SETTINGS[key]
    folders = [Path(folder).expanduser().resolve() for folder in getattr(django_settings, name)]
    allowed = f"paths under {_listing([str(f) for f in folders])} ({name})"
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a path string; the operator allows {allowed}")
    path = Path(value).expanduser().resolve()
    if not any(path.is_relative_to(folder) for folder in folders):
        raise ValueError(f"{key} {value!r} (resolved {path}) is not allowed; the operator allows {allowed}")
    return path


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "nothing"
