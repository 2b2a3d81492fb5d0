from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DatasetsConfig(AppConfig):
    name = "datasets"
    verbose_name = "PSG datasets"

    def ready(self) -> None:
        from config.roles import sync_roles
        from datasets import signals  # noqa: F401  (connects the storage clean-up receivers)

        post_migrate.connect(sync_roles, dispatch_uid="sync_roles")
