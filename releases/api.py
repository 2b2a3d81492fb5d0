"""REST API of releases, under /api/releases/: create (queues the build), follow (the detail holds the
provenance), cancel, list files.
Curators create and cancel; curators and researchers read and download; raters see nothing."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from core.exceptions import InputError
from releases.models import Release
from releases.serializers import ReleaseCreateSerializer, ReleaseDetailSerializer, ReleaseSerializer
from releases.services.build import cancel_release, create_release
from releases.services.downloads import file_response


class ReleaseViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Release.objects.prefetch_related("cohorts", "scoring_campaigns", "rating_campaigns", "model_versions",
                                                "files").select_related("previous")

    def get_serializer_class(self):
        by_action = {"create": ReleaseCreateSerializer, "retrieve": ReleaseDetailSerializer}
        return by_action.get(self.action, ReleaseSerializer)

    def create(self, request, *args, **kwargs):
        data = ReleaseCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        try:
            release = create_release(fields.pop("name"), fields.pop("version"), user=request.user, **fields)
        except InputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(ReleaseSerializer(release).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path=r"files/(?P<path>.+)")
    def file(self, request, pk=None, path=None):
        """Download one file of a built release, or an archive (`<name>-<version>.tar.gz` / `.zip`)."""
        if not request.user.has_perm("releases.download_release"):
            raise PermissionDenied("you may not download release files")
        return file_response(self.get_object(), path)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a pending or running build (a built release stays as it is: 409)."""
        release = self.get_object()
        if not cancel_release(release, user=request.user):
            return Response({"detail": f"release {release} is {release.state}: nothing to cancel"},
                            status=status.HTTP_409_CONFLICT)
        return Response(ReleaseSerializer(release).data)


router = SimpleRouter()
router.register("releases", ReleaseViewSet, basename="release")
