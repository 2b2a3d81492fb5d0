from django.contrib import admin
from django.shortcuts import redirect

from annotation.models import Adjudication, CampaignItem, Label, RecordingReservation, Reservation, ScoringCampaign


@admin.register(ScoringCampaign)
class ScoringCampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "unit", "sample", "overlap", "rescore_share", "rationale_mode", "review_model", "created_at")
    list_filter = ("unit", "sample")
    search_fields = ("name",)
    filter_horizontal = ("raters", "adjudicators")
    raw_id_fields = ("recordings",)

    def has_change_permission(self, request, obj=None):
        """Read-only: edits go through the campaign API (PATCH), which keeps the queue's invariants and records them."""
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """A campaign is created with its sampled items: through the campaign page, never as a bare row."""
        return redirect("annotation:campaign-new")


@admin.register(CampaignItem)
class CampaignItemAdmin(admin.ModelAdmin):
    list_display = ("campaign", "position", "recording", "epoch")
    list_filter = ("campaign",)
    raw_id_fields = ("epoch", "recording")


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ("item", "slot", "rater", "expires_at", "labelled")
    list_filter = ("labelled", "item__campaign")
    raw_id_fields = ("item",)


@admin.register(RecordingReservation)
class RecordingReservationAdmin(admin.ModelAdmin):
    list_display = ("campaign", "recording", "slot", "rater", "expires_at")
    raw_id_fields = ("recording",)


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    """Labels are an append-only history: read-only here."""

    list_display = ("item", "rater", "stage", "uncertain", "accepted", "revision", "rescore", "created_at")
    list_filter = ("rescore", "stage", "item__campaign")
    readonly_fields = [f.name for f in Label._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ("item", "stage", "adjudicator", "created_at")
    readonly_fields = [f.name for f in Adjudication._meta.fields]
