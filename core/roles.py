"""The four roles as Django groups; each app declares its roles' permissions in `<app>/roles.py`.

An app's `roles.py` holds `ROLE_PERMISSIONS = {role: ["app_label.codename", ...]}`. Role sync (after
every migrate) merges the declarations of all installed apps and fails loudly on a permission that
does not exist, so a misspelt name cannot silently leave a role without a right.
"""
from importlib import import_module

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import module_has_submodule

RATER, CURATOR, RESEARCHER, ADMIN = "rater", "curator", "researcher", "admin"
ROLES = (RATER, CURATOR, RESEARCHER, ADMIN)

# The audit trail: everyone reads the records of their own answers, curators every record.
ROLE_PERMISSIONS = {
    RATER: ["core.view_changerecord"],
    RESEARCHER: ["core.view_changerecord"],
    CURATOR: ["core.view_changerecord", "core.view_all_changes"],
}


def declared_permissions() -> dict[str, set[str]]:
    """role -> permission names, merged over every installed app's `roles.ROLE_PERMISSIONS`."""
    merged: dict[str, set[str]] = {role: set() for role in ROLES if role != ADMIN}
    for config in apps.get_app_configs():
        if not module_has_submodule(config.module, "roles"):
            continue
        declared = getattr(import_module(f"{config.name}.roles"), "ROLE_PERMISSIONS", {})
        for role, names in declared.items():
            if role not in merged:
                raise ImproperlyConfigured(f"{config.name}/roles.py: unknown role {role!r}; roles are {', '.join(merged)}")
            merged[role].update(names)
    return merged


def resolve_permissions(names) -> list[Permission]:
    """The Permission rows of `names`; ImproperlyConfigured naming every one that does not exist."""
    wanted = set(names)
    malformed = sorted(n for n in wanted if n.count(".") != 1)
    if malformed:
        raise ImproperlyConfigured(f"permission names must read 'app_label.codename': {', '.join(malformed)}")
    found = {
        f"{app_label}.{codename}": perm
        for perm, app_label, codename in (
            (p, p.content_type.app_label, p.codename)
            for p in Permission.objects.select_related("content_type").filter(codename__in={n.split(".")[1] for n in wanted})
        )
    }
    missing = sorted(wanted - found.keys())
    if missing:
        raise ImproperlyConfigured(f"role declarations name permissions that do not exist: {', '.join(missing)}")
    return [found[n] for n in sorted(wanted)]


def sync_roles(sender=None, **_kwargs) -> None:
    """Create the role groups and set their permissions (idempotent; run after every migrate).

    As a post_migrate receiver it acts once, for the last app with models, when every app's
    permissions exist.
    """
    if sender is not None and sender is not [c for c in apps.get_app_configs() if c.models_module][-1]:
        return
    for role, names in declared_permissions().items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(resolve_permissions(names))
    admin, _ = Group.objects.get_or_create(name=ADMIN)
    admin.permissions.set(Permission.objects.all())


def user_roles(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    roles = set(user.groups.values_list("name", flat=True)) & set(ROLES)
    if user.is_superuser:
        roles.add(ADMIN)
    return roles
