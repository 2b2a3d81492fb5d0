"""The distribution holds every app: what setuptools finds with pyproject.toml's package patterns."""
import tomllib
from pathlib import Path

from django.conf import settings
from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_every_app_package_is_in_the_distribution():
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packaged = set(find_packages(where=ROOT, include=find["include"]))
    apps = {app for app in settings.INSTALLED_APPS if (ROOT / app / "__init__.py").is_file()}
    assert {"core", "datasets", "inference", "annotation", "ratings", "releases", "demo"} <= apps
    project_packages = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in ROOT.glob("*/**/__init__.py")
                        if p.parts[len(ROOT.parts)] in apps | {"config"}}
    assert project_packages - packaged == set()  # every app, its migrations, services, commands; and config
    assert "tests" not in packaged and "bench" not in packaged


def test_the_wsgi_application_loads_every_view_before_the_first_request(tmp_path):
    """gunicorn --preload imports config.wsgi once: the URLconf, views and APIs come with it, so no worker's first
    requests wait through seconds of imports."""
    import os
    import subprocess
    import sys

    code = ("import sys, config.wsgi; "
            "print(all(m in sys.modules for m in ('config.urls', 'annotation.api', 'ratings.api', 'releases.views')))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "SLEEPREVIEW_VAR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr[-2000:]
