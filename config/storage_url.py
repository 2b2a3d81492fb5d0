"""STORAGE_URL (s3://bucket/prefix?endpoint=URL&region=NAME) as the STORAGES["default"] entry.

Credentials come from the standard AWS_* environment variables (boto3's own lookup); objects are
private (no ACL) and read through the storage API or presigned URLs only.
"""
from urllib.parse import parse_qs, urlsplit

S3_BACKEND = "core.storage.S3Storage"


def storage_from_url(url: str) -> dict:
    """The storage entry for an s3:// URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"STORAGE_URL must read s3://bucket[/prefix][?endpoint=URL&region=NAME], not {url!r}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"endpoint", "region"}
    if unknown:
        raise ValueError(f"STORAGE_URL: unknown parameters {sorted(unknown)} (endpoint, region)")
    options = {"bucket_name": parts.netloc, "location": parts.path.strip("/"), "default_acl": None,
               "querystring_auth": True, "file_overwrite": True}
    if "endpoint" in query:  # an S3-compatible server (MinIO, moto, Ceph): path-style addressing
        options.update(endpoint_url=query["endpoint"], addressing_style="path")
    if "region" in query:
        options["region_name"] = query["region"]
    return {"BACKEND": S3_BACKEND, "OPTIONS": options}
