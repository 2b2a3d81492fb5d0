from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo command: it draws on every app, so it sits above them all."""

    name = "demo"
