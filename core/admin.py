"""The audit trail in the admin, read-only; user accounts whose role changes leave change records."""
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from core.models import ChangeRecord
from core.services.users import record_role_change, role_state


@admin.register(ChangeRecord)
class ChangeRecordAdmin(admin.ModelAdmin):
    list_display = ("pk", "time", "actor_name", "action", "object_type", "object_id", "object_repr", "source")
    list_filter = ("action", "source", "object_type")
    search_fields = ("actor_name", "object_repr", "object_id", "request_id")
    readonly_fields = [f.name for f in ChangeRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(UserAdmin):
    """Django's user admin; a change of roles (groups), admin or active flags leaves a role change record."""

    def save_model(self, request, obj, form, change):
        request._role_state_before = role_state(User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        before = request._role_state_before or {"username": form.instance.get_username(), "roles": [],
                                                "is_superuser": False, "is_staff": False, "is_active": False}
        record_role_change(form.instance, before, actor=request.user)
