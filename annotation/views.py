"""Pages of the annotation app: the rater's campaigns, the scoring page, the campaign dashboard."""
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import FormView, TemplateView, View

from annotation.forms import CampaignForm
from annotation.models import ScoringCampaign
from annotation.services.campaigns import create_campaign, visible_campaigns
from core import views as campaign_pages
from core.access import PolicyViewMixin
from datasets.exceptions import InputError
from inference.models import AasmRule

STAGE_KEYS = [("W", "W"), ("N1", "1"), ("N2", "2"), ("N3", "3"), ("R", "R")]


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
        try:
            campaign = create_campaign(data.pop("name"), user=self.request.user, **data)
        except InputError as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        messages.info(self.request, f"Campaign {campaign.name!r} created with {campaign.items.count()} epochs.")
        return redirect("annotation:campaign-list")


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
        from core.services.plots import kappa_heatmap_svg
        from annotation.services.consensus import can_adjudicate, for_adjudication
        from annotation.services.dashboard import PUBLISHED, campaign_statistics
        from datasets.constants import STAGES
        from inference.services.plots import confusion_svg

        campaign = get_object_or_404(ScoringCampaign, pk=self.kwargs["pk"])
        stats = campaign_statistics(campaign)
        names = [p["rater"] for p in stats["progress"] if p["done"]]
        figures = {
            "heatmap": kappa_heatmap_svg(names, stats.get("pairwise", [])) if stats.get("pairwise") else "",
            "stage_kappa": plots.stage_bars_svg(stats.get("stage_kappa", {}), PUBLISHED["stage_kappa"],
                                                title="One-vs-rest kappa per stage (tick: Lee et al. 2022)"),
            "stage_agreement": plots.stage_bars_svg(
                {s: v["value"] for s, v in stats.get("stage_agreement_with_majority", {}).items()},
                PUBLISHED["stage_agreement_with_majority"], title="Agreement with the majority per stage (tick: AASM ISR)"),
            "confusions": [(kind, row["rater"], confusion_svg(row["confusion"], STAGES, rows=row["rater"], columns=kind))
                           for kind, rows in stats["against"].items() for row in rows],
        }
        return super().get_context_data(campaign=campaign, stats=stats, figures=figures,
                                        hypnograms=_stacked_hypnograms(campaign, plots),
                                        to_adjudicate=for_adjudication(campaign)[:50],
                                        may_adjudicate=can_adjudicate(self.request.user, campaign), **kwargs)


def _stacked_hypnograms(campaign, plots, limit: int = 3) -> list[tuple[str, str]]:
    """Per recording (the first few): each rater's labels and the consensus, as stacked strips."""
    from collections import defaultdict

    from annotation.services.consensus import campaign_consensus
    from annotation.services.queue import current_labels

    consensus = campaign_consensus(campaign)
    index_of = dict(campaign.items.values_list("epoch_id", "epoch__index"))
    out = []
    for recording in campaign.recordings.order_by("pk")[:limit]:
        rows = defaultdict(dict)
        labels = current_labels(campaign, rescore=False).filter(item__recording=recording)
        for rater, index, stage in labels.values_list("rater__username", "item__epoch__index", "stage"):
            rows[rater][index] = stage
        agreed = {index_of[s.epoch_id]: s.stage for s in consensus.values() if s.stage and s.epoch_id in index_of}
        agreed = {i: s for i, s in agreed.items() if i in {x for r in rows.values() for x in r}}
        strips = sorted(rows.items()) + [("consensus", agreed)]
        out.append((recording.pk, plots.stacked_hypnograms_svg(strips, recording.epoch_count)))
    return out


class AdjudicateView(PolicyViewMixin, View):
    """Resolve one item of the dashboard's list (curators and the campaign's adjudicators)."""

    permission_required = "annotation.view_scoringcampaign"

    def post(self, request, pk):
        from annotation.services.consensus import adjudicate

        campaign = get_object_or_404(ScoringCampaign, pk=pk)
        item = get_object_or_404(campaign.items, pk=request.POST.get("item"))
        try:
            adjudicate(item, request.POST.get("stage", ""), request.POST.get("reason", ""), request.user)
        except InputError as exc:
            messages.error(request, str(exc))
        else:
            messages.info(request, f"Epoch {item.epoch_id} resolved.")
        return redirect("annotation:dashboard", pk=pk)
