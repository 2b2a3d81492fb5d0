from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    """Job engine, access policy, roles and test classes that every domain app stands on."""

    name = "core"

    def ready(self) -> None:
        from core.roles import sync_roles

        post_migrate.connect(sync_roles, dispatch_uid="sync_roles")
