"""Pages of the ratings app: the rater's campaigns, the rating page, the campaign dashboard and downloads."""
from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.generic import FormView, TemplateView, View

from core import views as campaign_pages
from core.access import PolicyViewMixin
from core.exceptions import InputError
from core.services.blinding import SCORING, blinding_overlaps
from datasets.constants import STAGES
from datasets.models import Recording
from inference.models import AasmRule
from ratings.forms import RatingCampaignForm
from ratings.models import RatingCampaign
from ratings.services.campaigns import create_rating_campaign, visible_campaigns
from ratings.services.queue import RATING


class CampaignListView(campaign_pages.CampaignListView):
    permission_required = "ratings.view_ratingcampaign"
    template_name = "ratings/campaign_list.html"
    visible_campaigns = staticmethod(visible_campaigns)


class CampaignNewView(PolicyViewMixin, FormView):
    """Create a rating campaign (curators): the same service as the API and `manage.py create_rating_campaign`."""

    permission_required = "ratings.add_ratingcampaign"
    template_name = "ratings/campaign_new.html"
    form_class = RatingCampaignForm

    def form_valid(self, form):
        data = dict(form.cleaned_data)
        data["rubric"] = data["rubric"] or None
        overlaps = blinding_overlaps(data["raters"], Recording.objects.filter(cohort__in=data["cohorts"]), kind=SCORING)
        if overlaps and not self.request.POST.get("overlaps_seen"):
            return self.render_to_response(self.get_context_data(form=form, overlaps=overlaps))
        try:
            campaign = create_rating_campaign(data.pop("name"), user=self.request.user, **data)
        except InputError as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        messages.info(self.request, f"Rating campaign {campaign.name!r} created with {campaign.items.count()} items.")
        return redirect("ratings:campaign-list")


class RateView(PolicyViewMixin, TemplateView):
    """Rate the campaign's rationales: only its raters (a guessed campaign id is a 404)."""

    permission_required = "ratings.rate_rationales"
    template_name = "ratings/rate.html"

    def get_context_data(self, **kwargs):
        campaign = get_object_or_404(RatingCampaign.objects.filter(raters=self.request.user), pk=self.kwargs["pk"])
        return super().get_context_data(campaign=campaign, rubric=campaign.rubric, stages=STAGES,
                                        rules=AasmRule.objects.all(),
                                        waiting=RATING.waiting_for_scoring(campaign, self.request.user), **kwargs)


class DashboardView(PolicyViewMixin, TemplateView):
    """The campaign's figures: scores per dimension, breakdowns, agreement, the paper's table."""

    permission_required = "ratings.view_ratingcampaign"
    capability = "can_see_reference"
    template_name = "ratings/dashboard.html"

    def get_context_data(self, **kwargs):
        from ratings.services import plots
        from ratings.services.statistics import dashboard_statistics

        campaign = get_object_or_404(RatingCampaign, pk=self.kwargs["pk"])
        snapshot = dashboard_statistics(campaign)  # a big campaign's last stored figures, with their age
        stats = snapshot.result
        if stats is None:
            return super().get_context_data(campaign=campaign, stats=None, snapshot=snapshot, **kwargs)
        figures = plots.dashboard_figures(stats)
        titles = {d["key"]: d["title"] for d in stats["rubric"]["dimensions"]}
        dimensions = [{"key": key, "title": titles[key], "stats": d, "figures": figures[key]}
                      for key, d in stats["dimensions"].items()]
        paper = [{"title": titles[row["dimension"]], "cells": row["cells"]} for row in stats["paper_table"]["rows"]]
        raters = [{**r, "dimensions": [(titles[k], v) for k, v in r["dimensions"].items()]} for r in stats["raters"]]
        contradicted = [{"source": source, **share, "stages": stats["contradicted"]["by_source_stage"][source]}
                        for source, share in stats["contradicted"]["by_source"].items()]
        return super().get_context_data(campaign=campaign, stats=stats, dimensions=dimensions, paper=paper,
                                        raters=raters, contradicted=contradicted, snapshot=snapshot, **kwargs)


class ReportView(PolicyViewMixin, View):
    """The campaign's report: without a format, the Markdown report as a page; ?format=json, csv or md downloads
    it (the agreement_report command's output)."""

    permission_required = "ratings.view_ratingcampaign"
    capability = "can_see_reference"
    CONTENT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "md": "text/markdown; charset=utf-8"}

    def get(self, request, pk):
        from core.services.docs import markdown_html
        from ratings.services.statistics import campaign_statistics, dashboard_statistics, render_report

        campaign = get_object_or_404(RatingCampaign, pk=pk)
        fmt = request.GET.get("format")
        if fmt is not None and fmt not in self.CONTENT_TYPES:
            raise Http404(f"unknown format {fmt!r}")
        snapshot = dashboard_statistics(campaign)  # a big campaign's last stored figures (downloads: else computed)
        stats = snapshot.result
        if fmt is None:
            return render(request, "ratings/report.html", {
                "campaign": campaign, "snapshot": snapshot,
                "report": stats and markdown_html(render_report(stats, "md"))})
        stats = stats or campaign_statistics(campaign)
        if fmt == "json":
            return JsonResponse(stats)
        response = HttpResponse(render_report(stats, fmt), content_type=self.CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="rating-campaign-{campaign.pk}.{fmt}"'
        return response
