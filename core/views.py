"""Page pieces shared by the campaign apps (scoring, rating)."""
from django.views.generic import ListView

from core.access import PolicyViewMixin


class CampaignListView(PolicyViewMixin, ListView):
    """The campaigns the user reaches, newest first; subclasses name the permission, template and service."""

    context_object_name = "campaigns"
    visible_campaigns = None  # staticmethod(service): the campaigns a user may reach

    def get_queryset(self):
        return self.visible_campaigns(self.request.user).order_by("-created_at").prefetch_related("raters")
