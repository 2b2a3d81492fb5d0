"""The four roles as Django groups, each with an explicit list of permissions."""
from django.contrib.auth.models import Group, Permission

RATER, CURATOR, RESEARCHER, ADMIN = "rater", "curator", "researcher", "admin"
ROLES = (RATER, CURATOR, RESEARCHER, ADMIN)

_READ_DATA = [
    "datasets.view_cohort",
    "datasets.view_recording",
    "datasets.view_epoch",
    "datasets.view_epochimage",
]
_READ_MODELS = [
    "inference.view_aasmrule",
    "inference.view_modelversion",
    "inference.view_inferencejob",
    "inference.view_prediction",
]
ROLE_PERMISSIONS = {
    # Raters see signals and images only: reference stages stay hidden (blinding).
    RATER: _READ_DATA,
    RESEARCHER: _READ_DATA + _READ_MODELS + ["datasets.view_reference_stage", "datasets.view_importjob"],
    CURATOR: _READ_DATA
    + _READ_MODELS
    + [
        "inference.change_aasmrule",
        "inference.add_modelversion",
        "inference.change_modelversion",
        "inference.add_inferencejob",
        "inference.change_inferencejob",
        "datasets.view_reference_stage",
        "datasets.view_importjob",
        "datasets.add_importjob",
        "datasets.add_cohort",
        "datasets.change_cohort",
        "datasets.delete_cohort",
        "datasets.change_recording",
        "datasets.delete_recording",
    ],
}


def _permissions(names):
    for name in names:
        app_label, codename = name.split(".")
        perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if perm is not None:
            yield perm


def sync_roles(**_kwargs) -> None:
    """Create the role groups and set their permissions (idempotent; run after every migrate)."""
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(list(_permissions(names)))
    admin, _ = Group.objects.get_or_create(name=ADMIN)
    admin.permissions.set(Permission.objects.all())


def user_roles(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    roles = set(user.groups.values_list("name", flat=True)) & set(ROLES)
    if user.is_superuser:
        roles.add(ADMIN)
    return roles
