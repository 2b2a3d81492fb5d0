"""REST API of the inference app: rules, model versions, jobs (start, progress, cancel), predictions, evaluation."""
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from core.access import PolicyPermission, reachable_queryset
from datasets.models import Cohort
from inference.filters import InferenceJobFilter, PredictionFilter
from inference.models import AasmRule, InferenceJob, ModelVersion, Prediction
from inference.serializers import (
    AasmRuleSerializer,
    InferenceJobSerializer,
    ModelVersionSerializer,
    NewVersionSerializer,
    PredictionSerializer,
)
from inference.services import jobs, versions
from inference.services.evaluation import REFERENCES, EvaluationError, compare, to_csv


class AasmRuleViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = AasmRuleSerializer
    lookup_value_regex = r"[^/]+"  # rule ids contain dots (N2.1)
    queryset = AasmRule.objects.all()


class ModelVersionViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Model versions; one with predictions is frozen (backend and settings), new-version copies it with changes."""

    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.annotate(prediction_count=Count("predictions"))

    @extend_schema(request=NewVersionSerializer, responses={201: ModelVersionSerializer})
    @action(detail=True, methods=["post"], url_path="new-version")
    def new_version(self, request, pk=None):
        """A new version copied from this one: `name` (required, new), optional `settings` and `description`."""
        source = self.get_object()
        changes = NewVersionSerializer(data=request.data)
        changes.is_valid(raise_exception=True)
        data = {"backend": source.backend, "settings": source.settings, "description": source.description,
                **changes.validated_data}
        serializer = self.get_serializer(data=data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        return Response(serializer.data, status=status.HTTP_201_CREATED)

    def perform_create(self, serializer):
        serializer.instance = versions.save_version(ModelVersion(), user=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = versions.save_version(serializer.instance, user=self.request.user,
                                                    **serializer.validated_data)


class InferenceJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Start a run (model version + cohort or recording), follow it, cancel or resume it."""

    serializer_class = InferenceJobSerializer
    filterset_class = InferenceJobFilter
    queryset = InferenceJob.objects.select_related("model_version", "cohort")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = jobs.start_job(data["model_version"], cohort=data.get("cohort"),
                                             recording=data.get("recording"), user=self.request.user)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(self.get_serializer(jobs.cancel_job(self.get_object())).data)

    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Queue again the epochs of the target still lacking a prediction (after a lost worker)."""
        job = self.get_object()
        jobs.enqueue_missing(job)
        return Response(self.get_serializer(job).data)


class PredictionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = PredictionSerializer
    filterset_class = PredictionFilter
    capability = "can_see_model_outputs"
    recording_path = "epoch__recording"

    def get_queryset(self):
        queryset = Prediction.objects.select_related("model_version").order_by("epoch_id", "model_version__name")
        return reachable_queryset(self, queryset)


class EvaluationView(APIView):
    """The evaluation table of one or more model versions on a cohort, as JSON or CSV.

    It shows reference-derived confusion matrices beside model outputs: the policy's can_evaluate.
    """

    permission_classes = [PolicyPermission]
    capability = "can_evaluate"
    queryset = Prediction.objects.none()  # permission check: inference.view_prediction

    @extend_schema(parameters=[
        OpenApiParameter("cohort", str, required=True), OpenApiParameter("model", str, many=True, required=True),
        OpenApiParameter("reference", str, enum=list(REFERENCES)), OpenApiParameter("output", str, enum=["json", "csv"]),
    ], responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        cohort = get_object_or_404(Cohort, name=request.query_params.get("cohort", ""))
        names = request.query_params.getlist("model")
        versions = [get_object_or_404(ModelVersion, name=name) for name in names]
        try:
            result = compare(versions, cohort, reference=request.query_params.get("reference", "hypnogram"))
        except EvaluationError as exc:
            raise ValidationError(str(exc)) from None
        if request.query_params.get("output") == "csv":
            response = HttpResponse(to_csv(result["models"]), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="evaluation-{cohort.name}.csv"'
            return response
        return Response(result)


router = SimpleRouter()
router.register("rules", AasmRuleViewSet, basename="aasmrule")
router.register("model-versions", ModelVersionViewSet, basename="modelversion")
router.register("inference-jobs", InferenceJobViewSet, basename="inferencejob")
router.register("predictions", PredictionViewSet, basename="prediction")
