from django.contrib import admin

from inference.models import AasmRule, InferenceJob, ModelVersion, Prediction


@admin.register(AasmRule)
class AasmRuleAdmin(admin.ModelAdmin):
    """Curators edit titles and texts; ids are fixed (loaded by migration)."""

    list_display = ("rule_id", "stage", "title")
    readonly_fields = ("rule_id", "stage")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "backend", "created_at")
    list_filter = ("backend",)


@admin.register(InferenceJob)
class InferenceJobAdmin(admin.ModelAdmin):
    list_display = ("pk", "model_version", "cohort", "recording", "state", "done", "total", "created_at")
    list_filter = ("state", "model_version")
    readonly_fields = [f.name for f in InferenceJob._meta.fields]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ("epoch", "model_version", "status", "stage")
    list_filter = ("status", "model_version")
    readonly_fields = [f.name for f in Prediction._meta.fields]
