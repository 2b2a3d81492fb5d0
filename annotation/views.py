"""Pages of the annotation app: the rater's campaigns, the scoring page, the campaign dashboard."""
from django.shortcuts import get_object_or_404
from django.views.generic import ListView, TemplateView

from annotation.models import ScoringCampaign
from core.access import PolicyViewMixin
from inference.models import AasmRule

STAGE_KEYS = [("W", "W"), ("N1", "1"), ("N2", "2"), ("N3", "3"), ("R", "R")]


def campaigns_for(user):
    """Every campaign for roles that see reference data; a rater's own campaigns otherwise."""
    from core.access import policy_for

    campaigns = ScoringCampaign.objects.order_by("-created_at")
    return campaigns if policy_for(user).can_see_reference else campaigns.filter(raters=user)


class CampaignListView(PolicyViewMixin, ListView):
    permission_required = "annotation.view_scoringcampaign"
    template_name = "annotation/campaign_list.html"
    context_object_name = "campaigns"

    def get_queryset(self):
        return campaigns_for(self.request.user).prefetch_related("raters")


class ScoreView(PolicyViewMixin, TemplateView):
    """Score the campaign's epochs: only its raters (a guessed campaign id is a 404)."""

    permission_required = "annotation.score_epochs"
    template_name = "annotation/score.html"

    def get_context_data(self, **kwargs):
        campaign = get_object_or_404(ScoringCampaign.objects.filter(raters=self.request.user), pk=self.kwargs["pk"])
        rules = AasmRule.objects.all() if campaign.rationale_mode else []
        return super().get_context_data(campaign=campaign, stage_keys=STAGE_KEYS, rules=rules, **kwargs)
