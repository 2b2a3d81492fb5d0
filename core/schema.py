"""OpenAPI parameters shared by the work-queue APIs (drf-spectacular documents list-view filters only)."""
from drf_spectacular.utils import OpenApiParameter


def filter_parameters(filterset_class) -> list[OpenApiParameter]:
    """The query parameters of a FilterSet that an action applies by hand; every one here is an integer id."""
    return [OpenApiParameter(name, int, description=f.extra.get("help_text", ""))
            for name, f in filterset_class.base_filters.items()]


PAGE_PARAMETERS = [OpenApiParameter("limit", int, description="number of results to return per page"),
                   OpenApiParameter("offset", int, description="the initial index from which to return the results")]
AHEAD_COUNT = OpenApiParameter("count", int, description="further items to reserve besides the next (default 3, at most 5)")
