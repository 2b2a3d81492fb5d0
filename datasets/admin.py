from django.contrib import admin
from django.db import transaction

from core.models import ChangeRecord
from core.services import audit
from datasets.models import Cohort, Epoch, ImportJob, Recording
from datasets.services.recordings import delete_recording


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):
    list_display = ("name", "cohort", "file_format", "epoch_count", "duration_s", "created_at")
    list_filter = ("cohort", "file_format")
    search_fields = ("name", "sha256", "source_filename")
    readonly_fields = [f.name for f in Recording._meta.fields if f.name not in ("cohort", "name")]

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            before = audit.snapshot(Recording.objects.get(pk=obj.pk)) if change else None
            super().save_model(request, obj, form, change)
            if change and before != (after := audit.snapshot(obj)):
                audit.record(ChangeRecord.UPDATE, obj, actor=request.user, before=before, after=after)

    def delete_model(self, request, obj):
        delete_recording(obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for recording in queryset:
            delete_recording(recording, user=request.user)


@admin.register(Epoch)
class EpochAdmin(admin.ModelAdmin):
    list_display = ("recording", "index", "massex_n", "onset_s", "stage")
    list_filter = ("stage", "recording__cohort")
    readonly_fields = ("recording", "index", "massex_n", "onset_s")


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("pk", "source_name", "cohort_name", "state", "done", "total", "created_at")
    list_filter = ("state",)
    readonly_fields = [f.name for f in ImportJob._meta.fields]
