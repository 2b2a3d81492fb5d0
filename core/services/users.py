"""Role changes of user accounts (people page, admin, CLI): one change record each."""
from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import transaction

from core.exceptions import InputError
from core.models import ChangeRecord
from core.roles import ROLES
from core.services import audit


def role_state(user) -> dict:
    """What a role change record holds of an account: its roles (groups), and the admin and active flags."""
    return {"username": user.get_username(), "roles": sorted(user.groups.filter(name__in=ROLES)
                                                             .values_list("name", flat=True)),
            "is_superuser": user.is_superuser, "is_staff": user.is_staff, "is_active": user.is_active}


def record_role_change(user, before: dict, *, actor=None) -> ChangeRecord | None:
    """Record a change of `user`'s role state from `before` (inside the change's transaction); None if unchanged."""
    after = role_state(user)
    if after == before:
        return None
    return audit.record(ChangeRecord.ROLE_CHANGE, user, actor=actor, before=before, after=after)


@transaction.atomic
def set_roles(user, roles, *, actor=None) -> ChangeRecord | None:
    """Give `user` exactly the roles named (other groups kept); InputError on an unknown role."""
    roles = set(roles)
    unknown = sorted(roles - set(ROLES))
    if unknown:
        raise InputError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    before = role_state(user)
    kept = list(user.groups.exclude(name__in=ROLES))
    user.groups.set(kept + list(Group.objects.filter(name__in=roles)))
    return record_role_change(user, before, actor=actor)
