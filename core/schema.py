"""The API's OpenAPI schema class, and parameters shared by the work-queue APIs (drf-spectacular documents
list-view filters only)."""
from drf_spectacular import openapi
from drf_spectacular.plumbing import build_array_type, build_basic_type, force_instance
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

# Response bodies that actions build by hand (not a serializer): a JSON object, a JSON array of objects.
OBJECT = build_basic_type(OpenApiTypes.OBJECT)
OBJECTS = build_array_type(OBJECT)


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, with the fields a serializer blinds (core.serializers.BlindedFieldsMixin) optional:
    the roles that may not see them get the object without them."""

    def _map_basic_serializer(self, serializer, direction):
        result = super()._map_basic_serializer(serializer, direction)
        blinded = {name for names in getattr(force_instance(serializer), "blinded_fields", {}).values() for name in names}
        if blinded and "required" in result:
            result["required"] = [name for name in result["required"] if name not in blinded]
            if not result["required"]:
                del result["required"]
        return result


def filter_parameters(filterset_class) -> list[OpenApiParameter]:
    """The query parameters of a FilterSet that an action applies by hand; every one here is an integer id."""
    return [OpenApiParameter(name, int, description=f.extra.get("help_text", ""))
            for name, f in filterset_class.base_filters.items()]


PAGE_PARAMETERS = [OpenApiParameter("limit", int, description="number of results to return per page"),
                   OpenApiParameter("offset", int, description="the initial index from which to return the results")]
AHEAD_COUNT = OpenApiParameter("count", int, description="further items to reserve besides the next (default 3, at most 5)")
