from django.contrib import admin

from datasets.models import Cohort, Epoch, ImportJob, Recording


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
