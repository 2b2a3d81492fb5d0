"""The API's pagination: DRF's limit/offset, with a largest page (a huge ?limit= overflowed the database's LIMIT)."""
from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    max_limit = 1000  # a larger ?limit= gives this many
