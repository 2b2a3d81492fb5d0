"""REST API of rationale rating, under /api/ratings/ (session or token auth; the core access policy).

Raters reach only the campaigns they rate in, see only their own ratings and assignments, and never an
item's origin: not the model name or version, not whether a rationale came from a model or an expert,
not the reference stage.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from core.api import CampaignQueueViewSet, sees_everything
from core.exceptions import InputError
from core.schema import OBJECT, OBJECTS, PAGE_PARAMETERS, filter_parameters
from inference.models import AasmRule
from inference.services.evidence import NOT_MEASURABLE, summarize
from ratings.filters import RatingFilter
from ratings.models import Rating, RatingCampaign, RatingItem
from ratings.serializers import (OwnRatingSerializer, RaterRatingCampaignSerializer, RatingCampaignCreateSerializer,
                                 RatingCampaignEditSerializer,
                                 RatingCampaignSerializer, RatingInputSerializer, RatingItemSerializer,
                                 RatingSerializer)
from ratings.services import rubric as rubrics
from ratings.services.campaigns import create_rating_campaign, update_rating_campaign, visible_campaigns
from ratings.services.queue import RATING

ACTION_PERMISSIONS = {
    "next": {"POST": "ratings.rate_rationales"},
    "ahead": {"POST": "ratings.rate_rationales"},
    "release": {"POST": "ratings.rate_rationales"},
    "ratings": {"GET": "ratings.view_rating", "POST": "ratings.rate_rationales"},
    "history": {"GET": "ratings.view_rating"},
    "rubric": {"GET": "ratings.view_ratingcampaign", "PUT": "ratings.change_ratingcampaign"},
    "items": {"GET": "ratings.view_ratingcampaign"},
    "statistics": {"GET": "ratings.view_ratingcampaign"},
}


RATING_FILTER_PARAMETERS = filter_parameters(RatingFilter)


def served(campaign, item, rater, rescore: bool) -> dict:
    """What a rater learns of an item served to them (loaded by the queue with its epoch and recording): only
    what `blind_item` takes, so nothing of the item's origin can reach the page."""
    # a first-pass item comes from the rater's unanswered reservation: no rating of theirs yet
    rating = RATING.current(campaign).filter(item=item, rater=rater, rescore=True).first() if rescore else None
    shown = blind_item(item.pk, item.recording_id, item.epoch.index, item.epoch.onset_s, item.recording.epoch_count,
                       item.stage, item.rule_ids, item.rationale, OwnRatingSerializer(rating).data if rating else None,
                       item.evidence if campaign.show_evidence else None)
    return {**shown, "rubric_version": campaign.rubric.version}  # sent back with the rating (409 once edited)


def blind_item(item_id: int, recording_id: int, index: int, onset_s: float, epoch_count: int, stage: str,
               rule_ids: list, rationale: str, own_rating: dict | None, evidence: dict | None) -> dict:
    """The one shape of a served rating item, the same keys and formats whatever its origin: the epoch to show
    (ids and position), the stage, the rule ids in catalog order with the catalog's text, the rationale, and
    where the campaign shows it the evidence check of those rules (else null)."""
    catalog = {r.rule_id: r for r in AasmRule.objects.filter(rule_id__in=rule_ids).order_by("position")}
    ordered = [*catalog, *sorted(set(rule_ids) - set(catalog))]
    return {
        "item": int(item_id), "recording": int(recording_id), "index": int(index), "onset_s": float(onset_s),
        "recording_epoch_count": int(epoch_count), "stage": str(stage),
        "rules": [{"id": r, "title": getattr(catalog.get(r), "title", ""), "text": getattr(catalog.get(r), "text", "")}
                  for r in ordered],
        "rationale": rationale.strip(),
        "rating": own_rating,
        "evidence": None if evidence is None else blind_evidence(evidence, ordered),
    }


def blind_evidence(evidence: dict, ordered_rule_ids: list[str]) -> dict:
    """An item's evidence check in the served rules' order with only the check's own fields (an unchecked item:
    every rule not measurable), so its shape says nothing of who wrote the rationale."""
    by_rule = {r["rule"]: r for r in evidence.get("rules", [])}
    unchecked = {"verdict": NOT_MEASURABLE, "criteria": [], "note": "not checked"}
    rules = [{"rule": r, **{k: by_rule.get(r, unchecked)[k] for k in ("verdict", "criteria", "note")}}
             for r in ordered_rule_ids]
    return {"rules": rules, "summary": summarize(rules)}


class RatingCampaignViewSet(CampaignQueueViewSet):
    action_permissions = ACTION_PERMISSIONS
    work_queue = RATING
    campaign_model, item_model, answer_filterset = RatingCampaign, RatingItem, RatingFilter
    create_serializer, staff_serializer = RatingCampaignCreateSerializer, RatingCampaignSerializer
    edit_serializer, rater_serializer = RatingCampaignEditSerializer, RaterRatingCampaignSerializer
    create_campaign = staticmethod(create_rating_campaign)
    update_campaign = staticmethod(update_rating_campaign)
    visible_campaigns = staticmethod(visible_campaigns)

    def served(self, campaign, item, rescore):
        return served(campaign, item, self.request.user, rescore)

    def _staff_campaign(self) -> RatingCampaign:
        campaign = self.get_object()
        if not sees_everything(self.request.user):
            raise PermissionDenied("item origins and statistics are not shown to raters")
        return campaign

    @extend_schema(methods=["GET"], parameters=[*RATING_FILTER_PARAMETERS, *PAGE_PARAMETERS], responses={200: OBJECT})
    @extend_schema(methods=["POST"], request=RatingInputSerializer, responses={200: OBJECT, 201: OBJECT})
    @action(detail=True, methods=["get", "post"])
    def ratings(self, request, pk=None):
        """GET: the requester's current ratings (curators, researchers: everyone's). POST: save a rating."""
        if request.method == "POST":
            return self._save(request)
        campaign = self.get_object()
        if sees_everything(request.user):
            rows = RATING.current(campaign).select_related("item__model_version", "rater", "rubric")
            return self.page(self.filtered(rows).order_by("item__position", "rater_id", "rescore"), RatingSerializer)
        rows = RATING.own_visible(campaign, request.user).select_related("rubric")
        return self.page(self.filtered(rows).order_by("created_at", "pk"), OwnRatingSerializer)

    def _save(self, request):
        return self.save_answer(request, RatingInputSerializer, lambda rating: OwnRatingSerializer(rating).data)

    @extend_schema(parameters=RATING_FILTER_PARAMETERS, responses={200: OBJECTS})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """The append-only history (?item=): every version, when, and the scores it replaced."""
        campaign = self.get_object()
        rows = Rating.objects.filter(item__campaign=campaign).select_related("replaces", "rubric", "rater")
        everything = sees_everything(request.user)
        if not everything:
            passes = dict(RATING.own_visible(campaign, request.user).values_list("item_id", "rescore"))
            rows = [r for r in self.filtered(rows.filter(rater=request.user, item_id__in=passes.keys()))
                    .order_by("created_at", "revision") if r.rescore == passes[r.item_id]]
        else:
            rows = self.filtered(rows).order_by("item__position", "rater_id", "rescore", "revision")
        out = []
        for rating in rows:
            row = {**OwnRatingSerializer(rating).data,
                   "previous": None if rating.replaces is None else {"scores": rating.replaces.scores,
                                                                     "revision": rating.replaces.revision}}
            if everything:
                row.update(rater=rating.rater_id, rater_username=rating.rater.username, rescore=rating.rescore)
            out.append(row)
        return Response(out)

    # --- curators and researchers --------------------------------------------------------------

    @extend_schema(methods=["GET"], responses={200: OBJECT})
    @extend_schema(methods=["PUT"], request=OpenApiTypes.OBJECT, responses={200: OBJECT})
    @action(detail=True, methods=["get", "put"])
    def rubric(self, request, pk=None):
        """GET: the rubric in force. PUT {dimensions} or Markdown text: a new version, until the first rating."""
        campaign = self.get_object()
        if request.method == "PUT":
            body = request.data.get("dimensions", request.data.get("markdown"))
            try:
                dimensions = rubrics.parse_rubric(body) if isinstance(body, str) else body
                rubric = rubrics.edit_rubric(campaign, dimensions, user=request.user)
            except InputError as exc:
                code = status.HTTP_409_CONFLICT if rubrics.is_frozen(campaign) else status.HTTP_400_BAD_REQUEST
                return Response({"detail": str(exc)}, status=code)
            return Response({"version": rubric.version, "dimensions": rubric.dimensions, "frozen": False})
        rubric = campaign.rubric
        return Response({"version": rubric.version, "dimensions": rubric.dimensions,
                         "frozen": rubrics.is_frozen(campaign)})

    @extend_schema(parameters=PAGE_PARAMETERS, responses={200: OBJECT})
    @action(detail=True, methods=["get"])
    def items(self, request, pk=None):
        """Every item with its origin (model version or expert source) and the reference stage."""
        campaign = self._staff_campaign()
        return self.page(campaign.items.select_related("model_version").order_by("position"), RatingItemSerializer)

    @extend_schema(responses={200: OBJECT})
    @action(detail=True, methods=["get"])
    def statistics(self, request, pk=None):
        """Every figure of the rating dashboard (curators and researchers)."""
        from ratings.services.statistics import campaign_statistics

        campaign = self._staff_campaign()
        return Response(campaign_statistics(campaign))


router = SimpleRouter()
router.register("ratings/campaigns", RatingCampaignViewSet, basename="ratingcampaign")
