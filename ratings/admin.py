from django.contrib import admin
from django.shortcuts import redirect

from ratings.models import Rating, RatingCampaign, RatingItem, RatingReservation, Rubric


class RubricInline(admin.TabularInline):
    model = Rubric
    extra = 0
    readonly_fields = ("version", "dimensions", "created_at")
    can_delete = False


@admin.register(RatingCampaign)
class RatingCampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "overlap", "sample_size", "fast_floor_s", "created_at")
    search_fields = ("name",)
    filter_horizontal = ("raters", "cohorts", "model_versions")
    inlines = [RubricInline]

    def has_change_permission(self, request, obj=None):
        """Read-only: edits go through the campaign API (PATCH), which keeps the queue's invariants and records them."""
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """A campaign is created with its sampled items: through the API or `manage.py create_rating_campaign`."""
        self.message_user(request, "Create rating campaigns with the API (POST /api/ratings/campaigns/) or "
                                   "`manage.py create_rating_campaign FILE`: they sample their items.")
        return redirect("admin:ratings_ratingcampaign_changelist")


@admin.register(RatingItem)
class RatingItemAdmin(admin.ModelAdmin):
    list_display = ("campaign", "position", "recording", "epoch", "origin", "model_version", "stage", "correct")
    list_filter = ("campaign", "origin", "correct")
    raw_id_fields = ("epoch", "recording", "prediction")


@admin.register(RatingReservation)
class RatingReservationAdmin(admin.ModelAdmin):
    list_display = ("item", "slot", "rater", "expires_at", "labelled")
    raw_id_fields = ("item",)


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    """Ratings are an append-only history: read-only here."""

    list_display = ("item", "rater", "scores", "fast", "revision", "rescore", "created_at")
    list_filter = ("fast", "item__campaign")
    readonly_fields = [f.name for f in Rating._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
