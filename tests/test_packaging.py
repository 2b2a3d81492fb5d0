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
