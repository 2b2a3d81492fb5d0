from django.contrib import admin

from releases.models import Release, ReleaseFile


class ReleaseFileInline(admin.TabularInline):
    model = ReleaseFile
    extra = 0
    readonly_fields = ("path", "size", "sha256", "archive", "storage_name")
    can_delete = False


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    """Releases are built by their job and immutable: read-only here (create them with the API or export_release)."""

    list_display = ("name", "version", "stage_source", "state", "epochs", "created_at")
    list_filter = ("state", "stage_source")
    inlines = [ReleaseFileInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
