from django.contrib import admin
from django.db.models import Count

from inference.models import AasmRule, InferenceJob, ModelVersion, Prediction
from inference.services import versions


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
    """The model's clean() refuses settings beyond the allowlists and changes to a frozen version;
    "Save as new" makes a new version of a frozen one with the changed settings."""

    list_display = ("name", "backend", "prediction_count", "created_at")
    list_filter = ("backend",)
    readonly_fields = ("frozen_state", "settings_hash")
    save_as = True

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(prediction_count=Count("predictions"))

    def save_model(self, request, obj, form, change):
        versions.save_version(obj, user=request.user)

    @admin.display(description="frozen")
    def frozen_state(self, obj):
        if not obj.frozen:
            return "No: backend and settings may still change."
        return (f"Yes: {obj.prediction_count} predictions were made with this backend and these settings, which can "
                "no longer change (name and description can). Change them and use \"Save as new\" with a new name.")


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
