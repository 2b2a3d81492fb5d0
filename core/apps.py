from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    """Job engine, access policy, roles, audit trail and test classes that every domain app stands on."""

    name = "core"

    def ready(self) -> None:
        from celery.signals import task_postrun, task_prerun
        from django.contrib.auth.signals import user_login_failed

        from config.celery import ensure_broker_folders
        from core.roles import sync_roles
        from core.services import audit

        ensure_broker_folders()  # embedded broker: every process (web, workers, beat) may publish or consume first

        post_migrate.connect(sync_roles, dispatch_uid="sync_roles")
        user_login_failed.connect(audit.record_failed_login, dispatch_uid="audit_failed_login")
        task_prerun.connect(audit.enter_worker_context, dispatch_uid="audit_worker_context")
        task_postrun.connect(audit.leave_worker_context, dispatch_uid="audit_worker_context")
