"""The API: each app's router under /api/, the token endpoint, the schema and its docs."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation.api import router as annotation_router
from config.auth import ThrottledObtainAuthToken
from core.api import router as core_router
from datasets.api import router as datasets_router
from inference.api import EvaluationView
from inference.api import router as inference_router
from ratings.api import router as ratings_router
from releases.api import router as releases_router

urlpatterns = [
    path("", include(datasets_router.urls)),
    path("", include(inference_router.urls)),
    path("", include(annotation_router.urls)),
    path("", include(ratings_router.urls)),
    path("", include(releases_router.urls)),
    path("", include(core_router.urls)),
    path("evaluation/", EvaluationView.as_view(), name="evaluation"),
    path("auth/token/", ThrottledObtainAuthToken.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
