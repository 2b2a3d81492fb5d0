"""One REST viewset for every campaign on the core work queue (scoring, rating).

It lists, shows and creates campaigns, and serves the rater's queue: next, ahead, release, and the save
of an answer with its outcomes (412 on a stale revision, 409 when what the item was served under changed,
e.g. its rubric, 403 without a reservation, 400 on bad input).
"""
from django.db.models import Exists, OuterRef
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from core.access import ActionPermission, PolicyPermission, as_user, policy_for, role_key
from core.exceptions import InputError
from core.filters import ChangeRecordFilter
from core.models import ChangeRecord
from core.serializers import ChangeRecordSerializer
from core.services import audit, prepared
from core.schema import AHEAD_COUNT, OBJECT, OBJECTS
from core.services.work_queue import AnswerConflict, NotReserved, StaleAnswer


def sees_everything(user) -> bool:
    """Curators, researchers and admins (they see reference stages) see every campaign, item and answer."""
    return policy_for(user).can_see_reference


class CampaignQueueViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Subclasses name their work queue, models, serializers, FilterSet of answers, the services that create
    a campaign and list those a user reaches, and what a rater learns of a served item (`served`)."""

    work_queue = None  # a core.services.work_queue.WorkQueue
    campaign_model = item_model = None
    answer_filterset = None
    create_serializer = edit_serializer = staff_serializer = rater_serializer = None
    create_campaign = update_campaign = visible_campaigns = None  # staticmethod(service)
    action_permissions: dict = {}

    def served(self, campaign, item, rescore: bool) -> dict:
        raise NotImplementedError

    def get_permissions(self):
        return [ActionPermission() if self.action in self.action_permissions else PolicyPermission()]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return self.campaign_model.objects.all()
        return self.visible_campaigns(self.request.user)

    def get_serializer_class(self):
        if self.action == "create":
            return self.create_serializer
        if self.action == "partial_update":
            return self.edit_serializer
        return self.staff_serializer if sees_everything(self.request.user) else self.rater_serializer

    def get_serializer(self, *args, **kwargs):
        """The schema documents a campaign as either role's view of it (the generator has no user)."""
        if getattr(self, "swagger_fake_view", False) and self.action in ("list", "retrieve"):
            return PolymorphicProxySerializer(
                component_name=f"{self.campaign_model.__name__}ForRole", resource_type_field_name=None,
                serializers=[self.staff_serializer, self.rater_serializer])
        return super().get_serializer(*args, **kwargs)

    def create(self, request, *args, **kwargs):
        data = self.create_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        try:
            campaign = self.create_campaign(fields.pop("name"), user=request.user, **fields)
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(self.staff_serializer(campaign, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: None})
    def partial_update(self, request, *args, **kwargs):
        """Change a campaign's settings (overlap, raters, visibility, ...): its items and sample stay."""
        campaign = self.get_object()
        data = self.edit_serializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            campaign = self.update_campaign(campaign, user=request.user, **data.validated_data)
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(self.staff_serializer(campaign, context={"request": request}).data)

    # --- helpers ---------------------------------------------------------------------------

    def rater_campaign(self):
        """The URL's campaign, among those the user reaches (404 otherwise), with the user among its raters (403
        otherwise): one prepared statement (core.services.prepared) per role, without the list's filters."""
        user, pk = self.request.user, self.kwargs["pk"]
        if not (pk.isdigit() and len(pk) <= 18):
            raise Http404
        raters = self.campaign_model.raters

        def reached(user_id, pk):
            is_rater = Exists(raters.through.objects.filter(**{raters.field.m2m_field_name(): OuterRef("pk"),
                                                               raters.field.m2m_reverse_field_name(): user_id}))
            return self.visible_campaigns(as_user(user, user_id)).annotate(is_rater=is_rater).filter(pk=pk)
        campaign = prepared.first((self.campaign_model._meta.label, "rater campaign", *role_key(user)), reached,
                                  user_id=user.pk, pk=int(pk))
        if campaign is None:
            raise Http404
        self.check_object_permissions(self.request, campaign)
        if not campaign.is_rater:
            raise PermissionDenied("you are not a rater of this campaign")
        return campaign

    def item(self, campaign, value):
        """The campaign's item `value`, its row alone (saves, releases and adjudications use its ids), or 400."""
        try:
            item = prepared.first((self.item_model._meta.label, "campaign item"), lambda campaign_id, pk: (
                self.item_model.objects.filter(campaign=campaign_id, pk=pk)),
                campaign_id=campaign.pk, pk=int(value))
        except (TypeError, ValueError):
            item = None
        if item is None:
            raise ValidationError({"item": f"no item {value!r} in this campaign"})
        return item

    def filtered(self, queryset):
        filterset = self.answer_filterset(self.request.query_params, queryset=queryset, request=self.request)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        return filterset.qs

    def page(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        rows = serializer_class(page if page is not None else queryset, many=True).data
        return self.get_paginated_response(rows) if page is not None else Response(rows)

    def save_answer(self, request, input_serializer, respond):
        """Validate and submit one answer of the rater; `respond(answer)` is the body sent back."""
        campaign = self.rater_campaign()
        data = input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        item = self.item(campaign, fields.pop("item"))
        try:
            answer, created = self.work_queue.submit(campaign, request.user, item, **fields)
        except StaleAnswer as exc:
            return Response({"detail": str(exc), "current_revision": exc.current_revision},
                            status=status.HTTP_412_PRECONDITION_FAILED)
        except AnswerConflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except NotReserved as exc:
            raise PermissionDenied(str(exc)) from None
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(respond(answer), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    # --- the rater's queue -------------------------------------------------------------------

    @extend_schema(request=None, responses={200: OBJECT, 204: None})
    @action(detail=True, methods=["post"])
    def next(self, request, pk=None):
        """Reserve and return the rater's next item, in the campaign's order for them (204 when none is left)."""
        campaign = self.rater_campaign()
        served = self.work_queue.next_item(campaign, request.user)
        if served is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(self.served(campaign, *served))

    @extend_schema(request=None, parameters=[AHEAD_COUNT], responses={200: OBJECTS})
    @action(detail=True, methods=["post"])
    def ahead(self, request, pk=None):
        """The next item and up to ?count= (at most 5) further reserved ones, so the page can go on offline."""
        campaign = self.rater_campaign()
        count = request.query_params.get("count", "3")
        if not count.isdigit():
            raise ValidationError({"count": "give ?count=N, a whole number"})
        return Response([self.served(campaign, item, rescore)
                         for item, rescore in self.work_queue.reserve_ahead(campaign, request.user, int(count))])

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OBJECT})
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        """Give back an item the rater abandons."""
        campaign = self.rater_campaign()
        item = self.item(campaign, request.data.get("item"))
        return Response({"item": item.pk, "released": self.work_queue.release(campaign, request.user, item)})


class ChangeRecordViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail, newest first: every record for curators and admins, a rater's own answers for raters."""

    serializer_class = ChangeRecordSerializer
    filterset_class = ChangeRecordFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ChangeRecord.objects.none()
        return audit.visible_records(self.request.user).order_by("-pk")


router = SimpleRouter()
router.register("audit", ChangeRecordViewSet, basename="audit")
