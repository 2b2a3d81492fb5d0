"""The one access and blinding policy: who may see what, and which recordings a user may reach.

Every page, endpoint, serializer and template asks this module; nothing else checks the
reference, provenance or model-output permissions. A later campaign narrows what a rater reaches
by registering a recording scope (`register_recording_scope`), which every queryset helper,
view mixin and DRF permission below then applies.
"""
from __future__ import annotations

import copy
import hashlib
import hmac
from functools import cached_property
from typing import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.contrib.auth.models import Group, Permission
from django.db.models import Aggregate, JSONField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Concat
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission, DjangoModelPermissions

from core.services import prepared

SEE_REFERENCE = "datasets.view_reference_stage"
SEE_PROVENANCE = "datasets.view_recording_provenance"
DOWNLOAD_ORIGINAL_PSG = "datasets.download_original_psg"
SEE_MODEL_OUTPUTS = "inference.view_prediction"
REACH_RECORDINGS = "datasets.view_recording"

# Each scope maps a user to a Q over the recordings their assignments reach (None: no narrowing).
# A user reaches the union of what the scopes give (a rater in a scoring and a rating campaign reaches both).
_RECORDING_SCOPES: list[Callable[[object], Q | None]] = []


def register_recording_scope(scope: Callable[[object], Q | None]) -> None:
    """Narrow the recordings a user reaches to those of their assignments (e.g. a rater's campaigns)."""
    if scope not in _RECORDING_SCOPES:
        _RECORDING_SCOPES.append(scope)


def pseudonym(recording_pk: int) -> str:
    """A stable name that does not identify the subject: an HMAC of the id under the secret key."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"recording:{recording_pk}".encode(), hashlib.sha256).hexdigest()
    return f"Recording {digest[:8].upper()}"


class PermissionBackend(ModelBackend):
    """Django's ModelBackend, reading a user's own and their groups' permissions in one prepared statement
    (core.services.prepared), not two queries built afresh: every request checks at least one permission on a
    user loaded afresh (an API request's token statement brings them along: TokenAuthentication)."""

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            if user_obj.is_superuser:
                names = prepared.fetch(("permissions", "all"), _permissions)
            else:
                names = prepared.fetch(("permissions", "own and groups"), _permissions, user_id=user_obj.pk)
            user_obj._perm_cache = set(names)
        return user_obj._perm_cache


def _granted(user_id=None) -> QuerySet:
    """Every permission, or those the user has themself or through a group (`user_id` may be an OuterRef)."""
    permissions = Permission.objects.all()
    if user_id is not None:
        own = get_user_model().user_permissions.through.objects.filter(user=user_id).values("permission")
        grouped = Group.permissions.through.objects.filter(group__user=user_id).values("permission")
        permissions = permissions.filter(Q(pk__in=own) | Q(pk__in=grouped))
    return permissions.order_by()


def _permission_name():
    """A permission's name as Django's has_perm takes it: 'app_label.codename'."""
    return Concat("content_type__app_label", Value("."), "codename")


def _permissions(user_id=None):
    """The names of every permission, or of those the user has themself or through a group."""
    return _granted(user_id).values_list(_permission_name(), flat=True)


class _JSONArrayAgg(Aggregate):
    """Its rows' values as one JSON array: jsonb_agg on PostgreSQL (NULL over no rows), json_group_array on
    SQLite."""

    function = "JSONB_AGG"
    output_field = JSONField()

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="JSON_GROUP_ARRAY", **extra)


def _permission_names() -> Subquery:
    """One value of a query over rows with a `user_id`: the names (`_permission_name`) of that user's own and
    group permissions, a JSON array (no GROUP BY: the constant grouping value groups every row into one). The
    user is referenced two levels out, from _granted's own subqueries."""
    return Subquery(_granted(OuterRef(OuterRef("user_id"))).values(all=Value(1)).annotate(
        names=_JSONArrayAgg(_permission_name())).values("names"))


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication: the token, its user and the user's permissions in one prepared statement
    (a superuser's, all of them, are left to PermissionBackend)."""

    def authenticate_credentials(self, key):
        model = self.get_model()
        token = prepared.first(("token", model._meta.label), lambda key: model.objects.select_related("user")
                               .filter(key=key).annotate(permission_names=_permission_names()),
                               key=key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if not user.is_superuser:
            user._perm_cache = set(token.permission_names or ())
        return user, token


def role_key(user) -> tuple:
    """All that what a signed-in user reaches depends on besides their id: the key of prepared statements over it."""
    return user.is_superuser, user.is_active, frozenset(user.get_all_permissions())


def as_user(user, user_id: int):
    """A copy of `user`, their permissions included, under another id and without a cached policy: the stand-in
    from which a prepared statement over what `user` reaches is built (core.services.prepared)."""
    stand_in = copy.copy(user)
    vars(stand_in).pop("_access_policy", None)
    stand_in.pk = user_id
    return stand_in


class Policy:
    """What one user may see. Build it with `policy_for(user)` (cached on the request's user)."""

    def __init__(self, user):
        self.user = user

    @cached_property
    def can_see_reference(self) -> bool:
        """Reference stages, rules and rationales, and hypnograms drawn from them."""
        return self.user.has_perm(SEE_REFERENCE)

    @cached_property
    def can_see_provenance(self) -> bool:
        """Source file names, EDF identity fields, original dates, SHA-256, hypnogram files and notes: they
        identify subjects."""
        return self.user.has_perm(SEE_PROVENANCE)

    @cached_property
    def can_download_original_psg(self) -> bool:
        """The original PSG file, kept only under KEEP_ORIGINAL_PSG: admins alone (no role is given the permission)."""
        return self.user.has_perm(DOWNLOAD_ORIGINAL_PSG)

    @cached_property
    def can_see_model_outputs(self) -> bool:
        return self.user.has_perm(SEE_MODEL_OUTPUTS)

    @cached_property
    def can_see_model_names(self) -> bool:
        return self.can_see_model_outputs

    @cached_property
    def can_evaluate(self) -> bool:
        """Evaluation shows reference-derived confusion matrices beside model outputs: it needs both."""
        return self.can_see_reference and self.can_see_model_outputs

    def recording_scope(self) -> Q:
        """A Q over recordings that this user reaches (nothing without the view permission)."""
        if not self.user.is_authenticated or not self.user.has_perm(REACH_RECORDINGS):
            return Q(pk__in=[])
        reaches = [narrow(self.user) for narrow in _RECORDING_SCOPES]
        if not reaches or any(q is None for q in reaches):
            return Q()
        scope = reaches[0]
        for q in reaches[1:]:
            scope |= q
        return scope

    def reaches_every_recording(self) -> bool:
        """True when no scope narrows this user's recordings (curators, researchers, admins; not raters)."""
        scope = self.recording_scope()
        return not scope.children and not scope.negated

    def reachable(self, queryset: QuerySet, recording_path: str = "") -> QuerySet:
        """`queryset` narrowed to rows whose recording (at `recording_path`, '' for recordings) is reachable."""
        if self.reaches_every_recording():
            return queryset
        scope = self.recording_scope()
        if not recording_path:
            return queryset.filter(scope)
        from django.apps import apps

        recordings = apps.get_model("datasets", "Recording").objects.filter(scope).values("pk")
        return queryset.filter(**{f"{recording_path}__in": recordings})

    def recording_label(self, recording) -> str:
        return recording.name if self.can_see_provenance else pseudonym(recording.pk)

    def model_label(self, model_version, position: int = 0) -> str:
        return model_version.name if self.can_see_model_names else f"Model {chr(ord('A') + position)}"


def policy_for(user) -> Policy:
    cached = getattr(user, "_access_policy", None)
    if cached is None:
        cached = Policy(user)
        try:
            user._access_policy = cached
        except AttributeError:  # AnonymousUser instances are shared: no caching
            pass
    return cached


class PolicyViewMixin(PermissionRequiredMixin):
    """Class-based pages: the role's permission (403 when missing), `self.policy`, reachable objects only.

    `recording_path` names the field leading to the recording ('' for Recording itself, None for
    models without one); `get_queryset` applies the policy's scope, so a guessed id is a 404.
    `capability` names a Policy property that must hold as well (e.g. 'can_evaluate').
    """

    raise_exception = True
    recording_path: str | None = None
    capability: str | None = None

    def has_permission(self) -> bool:
        if not super().has_permission():
            return False
        return self.capability is None or getattr(self.policy, self.capability)

    @cached_property
    def policy(self) -> Policy:
        return policy_for(self.request.user)

    def get_queryset(self):
        queryset = super().get_queryset()
        return queryset if self.recording_path is None else self.policy.reachable(queryset, self.recording_path)

    def get_context_data(self, **kwargs):
        return super().get_context_data(policy=self.policy, **kwargs)


class PolicyPermission(DjangoModelPermissions):
    """API: Django model permissions (reads need view_*), the view's policy capability, reachable objects.

    Views may set `capability` (a Policy property) and `recording_path`; `reachable_queryset(view,
    queryset)` applies the scope in get_queryset, and object checks repeat it.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        capability = getattr(view, "capability", None)
        return capability is None or getattr(policy_for(request.user), capability)


class ActionPermission(BasePermission):
    """API actions: `view.action_permissions[action][method]` names the permission the requester needs
    (None: the view checks itself); a method not listed is refused."""

    def has_permission(self, request, view) -> bool:
        if not request.user.is_authenticated:
            return False
        perms = view.action_permissions[view.action]
        if request.method not in perms:
            return False
        return perms[request.method] is None or request.user.has_perm(perms[request.method])


def reachable_queryset(view, queryset: QuerySet) -> QuerySet:
    """For API views: `queryset` narrowed by the policy along `view.recording_path`."""
    path = getattr(view, "recording_path", None)
    return queryset if path is None else policy_for(view.request.user).reachable(queryset, path)
