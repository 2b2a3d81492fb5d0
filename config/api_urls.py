from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from datasets import api as datasets_api
from inference import api as inference_api

router = DefaultRouter()
router.register("cohorts", datasets_api.CohortViewSet, basename="cohort")
router.register("recordings", datasets_api.RecordingViewSet, basename="recording")
router.register("epochs", datasets_api.EpochViewSet, basename="epoch")
router.register("imports", datasets_api.ImportJobViewSet, basename="importjob")
router.register("rules", inference_api.AasmRuleViewSet, basename="aasmrule")
router.register("model-versions", inference_api.ModelVersionViewSet, basename="modelversion")
router.register("inference-jobs", inference_api.InferenceJobViewSet, basename="inferencejob")
router.register("predictions", inference_api.PredictionViewSet, basename="prediction")

urlpatterns = [
    path("", include(router.urls)),
    path("evaluation/", inference_api.EvaluationView.as_view(), name="evaluation"),
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
