"""Pages of the annotation app: the rater's campaigns, the scoring page, the campaign dashboard."""
from functools import cached_property

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import FormView, TemplateView

from annotation.forms import CampaignForm
from annotation.models import ScoringCampaign
from annotation.services.campaigns import create_campaign, visible_campaigns
from core import views as campaign_pages
from core.access import PolicyViewMixin
from core.services.blinding import RATING, blinding_overlaps
from datasets.exceptions import InputError
from datasets.models import Recording
from inference.models import AasmRule

STAGE_KEYS = [("W", "W"), ("N1", "1"), ("N2", "2"), ("N3", "3"), ("R", "R")]
ADJUDICATION_REASONS = ["Spindle or K-complex present", "Arousal / alpha in the epoch", "Slow waves ≥ 20 %",
                        "REMs with low chin EMG", "Majority rule of the epoch", "Context of the neighbouring epochs"]


class CampaignListView(campaign_pages.CampaignListView):
    permission_required = "annotation.view_scoringcampaign"
    template_name = "annotation/campaign_list.html"
    visible_campaigns = staticmethod(visible_campaigns)


class CampaignNewView(PolicyViewMixin, FormView):
    """Create a scoring campaign (curators): the same service as the API and `manage.py create_campaign`."""

    permission_required = "annotation.add_scoringcampaign"
    template_name = "annotation/campaign_new.html"
    form_class = CampaignForm

    def form_valid(self, form):
        data = dict(form.cleaned_data)
        data["recordings"] = list(data["recordings"]) or None
        overlaps = self.blinding_overlaps(data)
        if overlaps and not self.request.POST.get("overlaps_seen"):
            return self.render_to_response(self.get_context_data(form=form, overlaps=overlaps))
        try:
            campaign = create_campaign(data.pop("name"), user=self.request.user, **data)
        except InputError as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        messages.info(self.request, f"Campaign {campaign.name!r} created with {campaign.items.count()} epochs.")
        return redirect("annotation:campaign-list")

    @staticmethod
    def blinding_overlaps(data) -> list:
        """Rating campaigns whose raters rate rationales on this campaign's recordings, when it hides the model
        or the reference (shown before the campaign is created)."""
        if data["show_model_outputs"] and data["show_reference"]:
            return []
        recordings = data["recordings"] or Recording.objects.filter(cohort=data["cohort"])
        return blinding_overlaps(data["raters"], recordings, kind=RATING)


class ScoreView(PolicyViewMixin, TemplateView):
    """Score the campaign's epochs: only its raters (a guessed campaign id is a 404)."""

    permission_required = "annotation.score_epochs"
    template_name = "annotation/score.html"

    def get_context_data(self, **kwargs):
        campaign = get_object_or_404(ScoringCampaign.objects.filter(raters=self.request.user), pk=self.kwargs["pk"])
        rules = AasmRule.objects.all() if campaign.rationale_mode else []
        return super().get_context_data(campaign=campaign, stage_keys=STAGE_KEYS, rules=rules, **kwargs)


class DashboardView(PolicyViewMixin, TemplateView):
    """Progress, agreement and disagreements of a campaign (roles that see reference data)."""

    permission_required = "annotation.view_scoringcampaign"
    capability = "can_see_reference"
    template_name = "annotation/dashboard.html"

    def get_context_data(self, **kwargs):
        from annotation.services import plots
        from annotation.services.consensus import can_adjudicate
        from annotation.services.dashboard import dashboard_statistics

        campaign = get_object_or_404(ScoringCampaign, pk=self.kwargs["pk"])
        snapshot = dashboard_statistics(campaign)  # a big campaign's last stored figures, with their age
        stats = snapshot.result
        figures = plots.dashboard_figures(stats) if stats else {}
        return super().get_context_data(campaign=campaign, stats=stats, figures=figures, snapshot=snapshot,
                                        hypnograms=_stacked_hypnograms(campaign, plots) if stats else [],
                                        to_adjudicate=stats["to_adjudicate"] if stats else 0,
                                        may_adjudicate=can_adjudicate(self.request.user, campaign), **kwargs)


def _stacked_hypnograms(campaign, plots, limit: int = 3) -> list[tuple[str, str]]:
    """Per recording (the first few): each rater's labels and the consensus, as stacked strips."""
    from collections import defaultdict

    from annotation.services.consensus import campaign_consensus
    from annotation.services.queue import current_labels

    out = []
    for recording in campaign.recordings.order_by("pk")[:limit]:  # each recording's items only (big campaigns)
        consensus = campaign_consensus(campaign, recording=recording)
        index_of = dict(campaign.items.filter(recording=recording).values_list("epoch_id", "epoch__index"))
        rows = defaultdict(dict)
        labels = current_labels(campaign, rescore=False).filter(item__recording=recording)
        for rater, index, stage in labels.values_list("rater__username", "item__epoch__index", "stage"):
            rows[rater][index] = stage
        agreed = {index_of[s.epoch_id]: s.stage for s in consensus.values() if s.stage and s.epoch_id in index_of}
        labelled = {x for r in rows.values() for x in r}
        agreed = {i: s for i, s in agreed.items() if i in labelled}
        strips = sorted(rows.items()) + [("consensus", agreed)]
        out.append((recording.pk, plots.stacked_hypnograms_svg(strips, recording.epoch_count)))
    return out


class AdjudicateView(PolicyViewMixin, TemplateView):
    """The disputed epochs of a campaign, one at a time in the signal view, resolved by keys (curators and the
    campaign's adjudicators); saves go through the adjudication API."""

    permission_required = "annotation.view_scoringcampaign"
    template_name = "annotation/adjudicate.html"

    def has_permission(self) -> bool:
        from annotation.services.consensus import can_adjudicate

        return super().has_permission() and can_adjudicate(self.request.user, self.campaign)

    @cached_property
    def campaign(self):
        return get_object_or_404(ScoringCampaign, pk=self.kwargs["pk"])

    def get_context_data(self, **kwargs):
        from annotation.services.consensus import LOW_AGREEMENT, disputes

        return super().get_context_data(campaign=self.campaign, disputes=disputes(self.campaign, self.request.user),
                                        stage_keys=STAGE_KEYS, reasons=ADJUDICATION_REASONS,
                                        threshold=LOW_AGREEMENT, **kwargs)
