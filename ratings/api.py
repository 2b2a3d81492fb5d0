"""REST API of rationale rating, under /api/ratings/ (session or token auth; the core access policy).

Raters reach only the campaigns they rate in, see only their own ratings and assignments, and never an
item's origin: not the model name or version, not whether a rationale came from a model or an expert,
not the reference stage.
"""
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from core.access import ActionPermission, PolicyPermission, policy_for
from core.exceptions import InputError
from core.schema import AHEAD_COUNT, PAGE_PARAMETERS, filter_parameters
from inference.models import AasmRule
from ratings.filters import RatingFilter
from ratings.models import Rating, RatingCampaign, RatingItem
from ratings.serializers import (OwnRatingSerializer, RaterRatingCampaignSerializer, RatingCampaignCreateSerializer,
                                 RatingCampaignSerializer, RatingInputSerializer, RatingItemSerializer,
                                 RatingSerializer)
from ratings.services import rubric as rubrics
from ratings.services.campaigns import create_rating_campaign, visible_campaigns
from ratings.services.queue import RATING, NotReserved, StaleAnswer

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


def sees_everything(user) -> bool:
    """Curators, researchers and admins (they see reference stages) see every campaign, item and rating."""
    return policy_for(user).can_see_reference


def served(campaign, item, rater, rescore: bool) -> dict:
    """What a rater learns of an item served to them (loaded by the queue with its epoch and recording):
    the epoch to show and the rationale to rate."""
    rules = {r.rule_id: r for r in AasmRule.objects.filter(rule_id__in=item.rule_ids)}
    # a first-pass item comes from the rater's unanswered reservation: no rating of theirs yet
    rating = RATING.current(campaign).filter(item=item, rater=rater, rescore=True).first() if rescore else None
    return {
        "item": item.pk, "recording": item.recording_id, "index": item.epoch.index, "onset_s": item.epoch.onset_s,
        "recording_epoch_count": item.recording.epoch_count, "stage": item.stage,
        "rules": [{"id": r, "title": rules[r].title if r in rules else "", "text": rules[r].text if r in rules else ""}
                  for r in item.rule_ids],
        "rationale": item.rationale,
        "rating": OwnRatingSerializer(rating).data if rating else None,
    }


class RatingCampaignViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    action_permissions = ACTION_PERMISSIONS

    def get_permissions(self):
        return [ActionPermission() if self.action in ACTION_PERMISSIONS else PolicyPermission()]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return RatingCampaign.objects.all()
        return visible_campaigns(self.request.user)

    def get_serializer_class(self):
        if self.action == "create":
            return RatingCampaignCreateSerializer
        return RatingCampaignSerializer if sees_everything(self.request.user) else RaterRatingCampaignSerializer

    def create(self, request, *args, **kwargs):
        data = RatingCampaignCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        try:
            campaign = create_rating_campaign(fields.pop("name"), user=request.user, **fields)
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(RatingCampaignSerializer(campaign, context={"request": request}).data, status=status.HTTP_201_CREATED)

    # --- helpers ---------------------------------------------------------------------------

    def _rater_campaign(self) -> RatingCampaign:
        campaign = self.get_object()
        if not campaign.raters.filter(pk=self.request.user.pk).exists():
            raise PermissionDenied("you are not a rater of this campaign")
        return campaign

    def _staff_campaign(self) -> RatingCampaign:
        campaign = self.get_object()
        if not sees_everything(self.request.user):
            raise PermissionDenied("item origins and statistics are not shown to raters")
        return campaign

    def _item(self, campaign, value) -> RatingItem:
        try:
            return RatingItem.objects.select_related("epoch", "recording").get(campaign=campaign, pk=int(value))
        except (TypeError, ValueError, RatingItem.DoesNotExist):
            raise ValidationError({"item": f"no item {value!r} in this campaign"}) from None

    def _filtered(self, queryset):
        filterset = RatingFilter(self.request.query_params, queryset=queryset, request=self.request)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        return filterset.qs

    def _page(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        rows = serializer_class(page if page is not None else queryset, many=True).data
        return self.get_paginated_response(rows) if page is not None else Response(rows)

    def _served(self, campaign, item, rescore):
        return served(campaign, item, self.request.user, rescore)

    # --- the rater's queue -------------------------------------------------------------------

    @action(detail=True, methods=["post"])
    def next(self, request, pk=None):
        """Reserve and return the next item for the rater, in their own order (204 when nothing is left)."""
        campaign = self._rater_campaign()
        item = RATING.next_item(campaign, request.user)
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(self._served(campaign, *item))

    @extend_schema(parameters=[AHEAD_COUNT])
    @action(detail=True, methods=["post"])
    def ahead(self, request, pk=None):
        """The next item and up to ?count= (at most 5) further reserved ones."""
        campaign = self._rater_campaign()
        count = request.query_params.get("count", "3")
        if not count.isdigit():
            raise ValidationError({"count": "give ?count=N, a whole number"})
        return Response([self._served(campaign, item, rescore)
                         for item, rescore in RATING.reserve_ahead(campaign, request.user, int(count))])

    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        """Give back an item the rater abandons."""
        campaign = self._rater_campaign()
        item = self._item(campaign, request.data.get("item"))
        return Response({"item": item.pk, "released": RATING.release(campaign, request.user, item)})

    @extend_schema(methods=["GET"], parameters=[*RATING_FILTER_PARAMETERS, *PAGE_PARAMETERS])
    @action(detail=True, methods=["get", "post"])
    def ratings(self, request, pk=None):
        """GET: the requester's current ratings (curators, researchers: everyone's). POST: save a rating."""
        if request.method == "POST":
            return self._save(request)
        campaign = self.get_object()
        if sees_everything(request.user):
            rows = RATING.current(campaign).select_related("item__model_version", "rater", "rubric")
            return self._page(self._filtered(rows).order_by("item__position", "rater_id", "rescore"), RatingSerializer)
        rows = RATING.own_visible(campaign, request.user).select_related("rubric")
        return self._page(self._filtered(rows).order_by("created_at", "pk"), OwnRatingSerializer)

    def _save(self, request):
        campaign = self._rater_campaign()
        data = RatingInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        item = self._item(campaign, fields.pop("item"))
        try:
            rating, created = RATING.submit(campaign, request.user, item, **fields)
        except StaleAnswer as exc:
            return Response({"detail": str(exc), "current_revision": exc.current_revision},
                            status=status.HTTP_412_PRECONDITION_FAILED)
        except NotReserved as exc:
            raise PermissionDenied(str(exc)) from None
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(OwnRatingSerializer(rating).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(parameters=RATING_FILTER_PARAMETERS)
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """The append-only history (?item=): every version, when, and the scores it replaced."""
        campaign = self.get_object()
        rows = Rating.objects.filter(item__campaign=campaign).select_related("replaces", "rubric", "rater")
        everything = sees_everything(request.user)
        if not everything:
            passes = dict(RATING.own_visible(campaign, request.user).values_list("item_id", "rescore"))
            rows = [r for r in self._filtered(rows.filter(rater=request.user, item_id__in=passes.keys()))
                    .order_by("created_at", "revision") if r.rescore == passes[r.item_id]]
        else:
            rows = self._filtered(rows).order_by("item__position", "rater_id", "rescore", "revision")
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

    @action(detail=True, methods=["get", "put"])
    def rubric(self, request, pk=None):
        """GET: the rubric in force. PUT {dimensions} or Markdown text: a new version, until the first rating."""
        campaign = self.get_object()
        if request.method == "PUT":
            body = request.data.get("dimensions", request.data.get("markdown"))
            try:
                dimensions = rubrics.parse_rubric(body) if isinstance(body, str) else body
                rubric = rubrics.edit_rubric(campaign, dimensions)
            except InputError as exc:
                code = status.HTTP_409_CONFLICT if rubrics.is_frozen(campaign) else status.HTTP_400_BAD_REQUEST
                return Response({"detail": str(exc)}, status=code)
            return Response({"version": rubric.version, "dimensions": rubric.dimensions, "frozen": False})
        rubric = campaign.rubric
        return Response({"version": rubric.version, "dimensions": rubric.dimensions,
                         "frozen": rubrics.is_frozen(campaign)})

    @action(detail=True, methods=["get"])
    def items(self, request, pk=None):
        """Every item with its origin (model version or expert source) and the reference stage."""
        campaign = self._staff_campaign()
        return self._page(campaign.items.select_related("model_version").order_by("position"), RatingItemSerializer)

    @action(detail=True, methods=["get"])
    def statistics(self, request, pk=None):
        """Every figure of the rating dashboard (curators and researchers)."""
        from ratings.services.statistics import campaign_statistics

        campaign = self._staff_campaign()
        return Response(campaign_statistics(campaign))


router = SimpleRouter()
router.register("ratings/campaigns", RatingCampaignViewSet, basename="ratingcampaign")
