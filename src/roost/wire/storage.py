"""Types of the storage operations (buckets and the files in them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

BucketName = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
        description="3-63 lower-case letters, digits and hyphens",
    ),
]
ObjectName = Annotated[str, Meta(min_length=1, max_length=1024)]  # checked further by the service
Visibility = Literal["private", "public"]
MimeType = Annotated[str, Meta(pattern=r"^[\w.+-]+/[\w.+*-]+$", max_length=255)]


class CreateBucketRequest(Struct, forbid_unknown_fields=True):
    name: BucketName
    description: Annotated[str, Meta(max_length=1000)] = ""
    visibility: Visibility = "private"
    max_file_size: Annotated[int, Meta(ge=1)] | None = None
    allowed_mime_types: Annotated[list[MimeType], Meta(max_length=100)] = []


class UpdateBucketRequest(Struct, forbid_unknown_fields=True):
    name: BucketName
    description: Annotated[str, Meta(max_length=1000)] | None = None
    visibility: Visibility | None = None
    max_file_size: Annotated[int, Meta(ge=1)] | None = None
    allowed_mime_types: Annotated[list[MimeType], Meta(max_length=100)] | None = None


class BucketRef(Struct, forbid_unknown_fields=True):
    name: BucketName


class DeleteBucketRequest(Struct, forbid_unknown_fields=True):
    name: BucketName
    force: bool = False


class Bucket(Struct):
    name: str
    description: str
    visibility: str
    max_file_size: int | None
    allowed_mime_types: list[str]
    created_at: datetime


class StoredObject(Struct):
    id: str
    bucket: str
    name: str
    size: int
    content_type: str
    sha256: str
    etag: str
    metadata: dict[str, Any]
    visibility: str
    created_at: datetime
    updated_at: datetime


class ListObjectsRequest(Struct, forbid_unknown_fields=True):
    """`filters` are `[field, op, value]` on name, mimetype, size, created_at or metadata.<key>."""

    bucket: BucketName
    prefix: Annotated[str, Meta(max_length=1024)] = ""
    filters: Annotated[list[tuple[str, str, Any]], Meta(max_length=20)] = []
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    offset: Annotated[int, Meta(ge=0)] = 0


class ObjectRef(Struct, forbid_unknown_fields=True):
    bucket: BucketName
    name: ObjectName


class FileIdRef(Struct, forbid_unknown_fields=True):
    id: Annotated[str, Meta(min_length=1, max_length=64)]


class UpdateObjectRequest(Struct, forbid_unknown_fields=True):
    bucket: BucketName
    name: ObjectName
    new_name: ObjectName | None = None
    visibility: Visibility | None = None
    metadata: dict[str, Any] | None = None


class DeleteObjectsRequest(Struct, forbid_unknown_fields=True):
    bucket: BucketName
    names: Annotated[list[ObjectName], Meta(min_length=1, max_length=1000)]


class CopyObjectRequest(Struct, forbid_unknown_fields=True):
    bucket: BucketName
    name: ObjectName
    destination_bucket: BucketName
    destination_name: ObjectName | None = None


class SignedUrlRequest(Struct, forbid_unknown_fields=True):
    bucket: BucketName
    name: ObjectName
    expires_in: Annotated[int, Meta(ge=1, le=7 * 86400)] = 3600


class SignedUrl(Struct):
    signed_url: str
    path: str
    expires_at: datetime
