"""REST API of expert stage scoring, under /api/scoring/ (session or token auth; the core access policy).

Raters reach only the campaigns they are raters of, see only their own labels and assignments, never
other raters' labels (unless the campaign shows them), never reference stages (unless it shows them),
and never whether an item is served again for re-scoring.
"""
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from annotation.filters import CampaignFilter, LabelFilter
from annotation.models import CampaignItem, Label, ScoringCampaign
from annotation.serializers import (AdjudicationInputSerializer, AdjudicationSerializer, CampaignCreateSerializer,
                                    CampaignEditSerializer, CampaignSerializer, LabelInputSerializer, LabelSerializer, OwnLabelSerializer,
                                    RaterCampaignSerializer)
from annotation.services import consensus, queue, review
from annotation.services.campaigns import create_campaign, update_campaign, visible_campaigns
from annotation.services.dashboard import campaign_statistics
from core.access import policy_for
from core.api import CampaignQueueViewSet, sees_everything
from core.schema import OBJECT, OBJECTS, PAGE_PARAMETERS, filter_parameters
from datasets.exceptions import InputError
from inference.models import ModelVersion, Prediction

# Per action and method: the permission the requester needs (None: checked in the view).
ACTION_PERMISSIONS = {
    "next": {"POST": "annotation.score_epochs"},
    "ahead": {"POST": "annotation.score_epochs"},
    "statistics": {"GET": "annotation.view_scoringcampaign"},
    "release": {"POST": "annotation.score_epochs"},
    "labels": {"GET": "annotation.view_label", "POST": "annotation.score_epochs"},
    "history": {"GET": "annotation.view_label"},
    "hypnogram": {"GET": "annotation.view_label"},
    "adjudication": {"GET": None, "POST": None},
}


def _model_outputs(epoch_id: int, policy) -> list[dict]:
    """The parsed predictions of an epoch, models named as the policy allows (pseudonyms in a fixed order)."""
    position = {pk: i for i, pk in enumerate(ModelVersion.objects.order_by("pk").values_list("pk", flat=True))}
    predictions = (Prediction.objects.filter(epoch_id=epoch_id, status__in=(Prediction.OK, Prediction.REPAIRED))
                   .select_related("model_version").order_by("model_version_id"))
    return [{"model": policy.model_label(p.model_version, position[p.model_version_id]), "stage": p.stage,
             "rule_ids": p.rule_ids, "rationale": p.rationale} for p in predictions]


class CampaignViewSet(CampaignQueueViewSet):
    filterset_class = CampaignFilter
    action_permissions = ACTION_PERMISSIONS
    work_queue = queue.SCORING
    campaign_model, item_model, answer_filterset = ScoringCampaign, CampaignItem, LabelFilter
    create_serializer, edit_serializer = CampaignCreateSerializer, CampaignEditSerializer
    staff_serializer, rater_serializer = CampaignSerializer, RaterCampaignSerializer
    create_campaign, update_campaign = staticmethod(create_campaign), staticmethod(update_campaign)
    visible_campaigns = staticmethod(visible_campaigns)

    @extend_schema(responses={200: OBJECT})
    @action(detail=True, methods=["get"])
    def statistics(self, request, pk=None):
        """Every figure of the campaign dashboard (roles that see reference data)."""
        campaign = self.get_object()
        if not sees_everything(request.user):
            raise PermissionDenied("campaign statistics compare raters with the reference: not for raters")
        return Response(campaign_statistics(campaign))

    def served(self, campaign, item, rescore) -> dict:
        """What a rater learns of an item served to them (never whether it is a re-score); the queue serves
        it with its epoch and recording."""
        user = self.request.user
        if rescore:
            label = queue.current_labels(campaign).filter(item=item, rater=user, rescore=True).first()
            expires_at = timezone.now() + timezone.timedelta(seconds=campaign.reservation_timeout_s)
        else:
            label = None  # served from an unlabelled reservation: the rater has not labelled it yet
            expires_at = item.hold.expires_at  # the queue serves a first-pass item with its reservation
        body = {
            "item": item.pk, "recording": item.recording_id, "epoch": item.epoch_id, "index": item.epoch.index,
            "onset_s": item.epoch.onset_s, "recording_epoch_count": item.recording.epoch_count,
            "expires_at": expires_at, "label": OwnLabelSerializer(label).data if label else None,
        }
        if campaign.show_reference:
            body["reference_stage"] = item.epoch.stage
        if campaign.show_other_labels:
            others = queue.current_labels(campaign, rescore=False).filter(item=item).exclude(rater=user)
            body["other_labels"] = sorted(others.values_list("stage", flat=True))
        if campaign.show_model_outputs:
            body["model_outputs"] = _model_outputs(item.epoch_id, policy_for(user))
        if campaign.review_model_id is not None:
            found = review.proposal(campaign, item.epoch_id)
            body["proposal"] = {"stage": found.stage, "rule_ids": found.rule_ids} if found else None
        return body

    @extend_schema(methods=["GET"], parameters=[*filter_parameters(LabelFilter), *PAGE_PARAMETERS],
                   responses={200: OBJECT})
    @extend_schema(methods=["POST"], request=LabelInputSerializer, responses={200: OBJECT, 201: OBJECT})
    @action(detail=True, methods=["get", "post"])
    def labels(self, request, pk=None):
        """GET: the requester's current labels (curators, researchers: everyone's). POST: save a label."""
        if request.method == "POST":
            return self._save_label(request)
        campaign = self.get_object()
        if sees_everything(request.user):
            rows = queue.current_labels(campaign).select_related("item").order_by("item__position", "rater_id", "rescore")
            return self.page(self.filtered(rows), LabelSerializer)
        return self.page(self.filtered(queue.own_visible_labels(campaign, self.request.user)).order_by("item__position"),
                          OwnLabelSerializer)

    def _save_label(self, request):
        return self.save_answer(request, LabelInputSerializer, lambda label: {
            "id": label.pk, "item": label.item_id, "stage": label.stage, "uncertain": label.uncertain,
            "revision": label.revision, "created_at": label.created_at})

    @extend_schema(parameters=filter_parameters(LabelFilter), responses={200: OBJECTS})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """The append-only history (?item=): every version, who saved it, when, and the value it replaced."""
        campaign = self.get_object()
        rows = Label.objects.filter(item__campaign=campaign).select_related("replaces", "rater")
        everything = sees_everything(request.user)
        if not everything:
            visible = queue.own_visible_labels(campaign, self.request.user).values_list("item_id", "rescore")
            passes = {item: rescore for item, rescore in visible}
            rows = [r for r in self.filtered(rows.filter(rater=request.user, item_id__in=passes.keys()))
                    .order_by("item__position", "revision") if r.rescore == passes[r.item_id]]
        else:
            rows = self.filtered(rows).order_by("item__position", "rater_id", "rescore", "revision")
        out = []
        for label in rows:
            previous = label.replaces
            row = {"id": label.pk, "item": label.item_id, "rater": label.rater_id, "rater_username": label.rater.username,
                   "stage": label.stage, "uncertain": label.uncertain, "rule_ids": label.rule_ids,
                   "rationale": label.rationale, "revision": label.revision, "created_at": label.created_at,
                   "previous": None if previous is None else {"stage": previous.stage, "uncertain": previous.uncertain,
                                                              "revision": previous.revision}}
            if everything:
                row["rescore"] = label.rescore
            out.append(row)
        return Response(out)

    @extend_schema(parameters=[OpenApiParameter("recording", int, required=True, description="recording id")],
                   responses={200: OBJECTS})
    @action(detail=True, methods=["get"])
    def hypnogram(self, request, pk=None):
        """The requester's own labels of one recording (?recording=), for the scoring page's mini hypnogram and
        to show a labelled epoch's answer (stage, rules, rationale) when the rater goes back to it."""
        campaign = self.get_object()
        recording = request.query_params.get("recording")
        if recording is None or not str(recording).isdigit():
            raise ValidationError({"recording": "give ?recording=ID (an integer)"})
        labels = queue.own_visible_labels(campaign, self.request.user).filter(item__recording_id=int(recording))
        rows = labels.order_by("item__epoch__index").values("item_id", "item__epoch__index", "stage", "uncertain",
                                                            "rule_ids", "rationale", "revision")
        return Response([{"item": row.pop("item_id"), "index": row.pop("item__epoch__index"), **row} for row in rows])

    @extend_schema(methods=["GET"], responses={200: OBJECTS})
    @extend_schema(methods=["POST"], request=AdjudicationInputSerializer, responses={200: OBJECT, 201: OBJECT})
    @action(detail=True, methods=["get", "post"])
    def adjudication(self, request, pk=None):
        """GET: tied and low-agreement items with their labels. POST {item, stage, reason}: resolve one."""
        campaign = self.get_object()
        designated = campaign.adjudicators.filter(pk=request.user.pk).exists()
        if request.method == "GET":
            if not (designated or (sees_everything(request.user) and request.user.has_perm("annotation.view_adjudication"))):
                raise PermissionDenied("only curators, researchers and the campaign's adjudicators see adjudication")
            items = {i.pk: i for i in CampaignItem.objects.filter(campaign=campaign).select_related("epoch")}
            return Response([
                {"item": s.item_id, "recording": items[s.item_id].recording_id, "epoch": s.epoch_id,
                 "index": items[s.item_id].epoch.index,
                 "labels": [{"rater": rater, "stage": stage} for rater, stage in sorted(s.labels.items())],
                 "majority": s.majority, "level": s.level, "tie": s.tie}
                for s in consensus.for_adjudication(campaign)
            ])
        if not consensus.can_adjudicate(request.user, campaign):
            raise PermissionDenied("only curators and the campaign's adjudicators may adjudicate")
        data = AdjudicationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = self.item(campaign, data.validated_data["item"])
        try:
            adjudication = consensus.adjudicate(item, data.validated_data["stage"], data.validated_data["reason"],
                                                request.user)
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(AdjudicationSerializer(adjudication).data, status=status.HTTP_201_CREATED)


router = SimpleRouter()
router.register("scoring/campaigns", CampaignViewSet, basename="scoringcampaign")
