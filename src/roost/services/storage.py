"""Storage: buckets and the files in them, per tenant.

File metadata lives in the SQL backend (`roost_buckets`, `roost_objects`), file bytes in the
blob store under `<tenant>/<bucket id>/<object id>`. Uploading over an existing name writes
the new bytes under a new id and then swaps the row, so readers see the old file or the new
one, never a mix; bytes nobody points to any more are deleted after the swap.

The file door (`server/files.py`) only speaks HTTP: who may read a file (a caller's tenant, a
signed link, a public bucket), whether its tenant exists and where its bytes are is decided
here, by `store_file` and the three `open_*download` calls, which answer with Structs.
A signed link names a bucket by its id, so a bucket (or tenant) deleted and made again under
the same name is a different bucket to the links made before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

import msgspec
from sqlalchemy import ColumnElement, Connection, bindparam, func, literal, select
from sqlalchemy.exc import IntegrityError

from roost.backends.blob import BlobStore
from roost.backends.sql.tables import buckets, objects, utcnow
from roost.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from roost.policy.sql import SqlColumn
from roost.services import guards
from roost.services.context import Context, Platform
from roost.services.database.filters import compare
from roost.services.policystore import policy_guard
from roost.services.registry import operation
from roost.services.security import new_id
from roost.services.tenants import ensure_exists
from roost.services.triggers import events as trigger_events
from roost.wire.common import Done, Empty
from roost.wire.storage import (
    Bucket,
    BucketRef,
    CopyObjectRequest,
    CreateBucketRequest,
    DeleteBucketRequest,
    DeleteObjectsRequest,
    FileIdRef,
    ListObjectsRequest,
    ObjectRef,
    SignedUrl,
    SignedUrlRequest,
    StoredObject,
    UpdateBucketRequest,
    UpdateObjectRequest,
)

MAX_METADATA_BYTES = 8192


def check_object_name(name: str, field: str = "name") -> str:
    """A file name: 1-1024 bytes of UTF-8, no `..` segment, no leading `/`, no control
    characters or backslashes."""
    encoded = name.encode("utf-8", "surrogatepass")
    problem = None
    if not 1 <= len(encoded) <= 1024:
        problem = "must be 1 to 1024 bytes"
    elif name.startswith("/"):
        problem = "may not start with /"
    elif ".." in name.split("/"):
        problem = "may not have a .. segment"
    elif any(unicodedata.category(c) in ("Cc", "Cs") for c in name) or "\\" in name:
        problem = "may not hold control characters or backslashes"
    if problem:
        raise ValidationError(f"file name {name[:60]!r} {problem}", details={"field": field})
    return name


def blob_key(tenant: str, bucket_id: str, object_id: str) -> str:
    return f"{tenant}/{bucket_id}/{object_id}"


# -- buckets -------------------------------------------------------------------------------


@operation("storage.create_bucket", scope="storage:admin")
async def create_bucket(ctx: Context, params: CreateBucketRequest) -> Bucket:
    """Create a bucket (private unless `visibility="public"`), optionally limiting file size
    and mime types."""
    try:
        async with ctx.platform.db.write(ctx.tenant) as conn:
            await conn.execute(
                buckets.insert().values(
                    id=new_id(),
                    name=params.name,
                    description=params.description,
                    visibility=params.visibility,
                    max_file_size=params.max_file_size,
                    allowed_mime_types=params.allowed_mime_types,
                )
            )
    except IntegrityError:
        raise ConflictError(f"bucket {params.name!r} exists", details={"field": "name"}) from None
    return _bucket(await _find_bucket(ctx.platform, ctx.tenant, params.name))


@operation("storage.list_buckets", scope="storage:read", read_only=True)
async def list_buckets(ctx: Context, params: Empty) -> list[Bucket]:
    """Every bucket of the tenant."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(select(buckets).order_by(buckets.c.name))).mappings().all()
    return [_bucket(row) for row in rows]


@operation("storage.get_bucket", scope="storage:read", read_only=True)
async def get_bucket(ctx: Context, params: BucketRef) -> Bucket:
    """One bucket."""
    return _bucket(await _find_bucket(ctx.platform, ctx.tenant, params.name))


@operation("storage.update_bucket", scope="storage:admin")
async def update_bucket(ctx: Context, params: UpdateBucketRequest) -> Bucket:
    """Change a bucket's description, visibility or limits (fields left out stay)."""
    changes = {
        k: getattr(params, k)
        for k in ("description", "visibility", "max_file_size", "allowed_mime_types")
        if getattr(params, k) is not None
    }
    await _find_bucket(ctx.platform, ctx.tenant, params.name)
    if changes:
        async with ctx.platform.db.write(ctx.tenant) as conn:
            await conn.execute(
                buckets.update().where(buckets.c.name == params.name).values(**changes)
            )
    return _bucket(await _find_bucket(ctx.platform, ctx.tenant, params.name))


@operation("storage.delete_bucket", scope="storage:admin")
async def delete_bucket(ctx: Context, params: DeleteBucketRequest) -> Done:
    """Delete a bucket; one that still holds files only with `force=True` (files go too)."""
    bucket = await _find_bucket(ctx.platform, ctx.tenant, params.name)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        ids = list(
            (
                await conn.execute(select(objects.c.id).where(objects.c.bucket_id == bucket["id"]))
            ).scalars()
        )
        if ids and not params.force:
            raise ConflictError(
                f"bucket {params.name!r} holds {len(ids)} files; delete them or pass force=True",
                details={"field": "name"},
            )
        await conn.execute(buckets.delete().where(buckets.c.id == bucket["id"]))
    for object_id in ids:
        await ctx.platform.blobs.delete(blob_key(ctx.tenant, bucket["id"], object_id))
    return Done(count=len(ids))


# Lookups by key, each built once: `Database.first_record` reads them in one step (on SQLite
# right on the event loop), where an async connection hopped to its thread for each step of a
# lookup (~1 ms of CPU each), and a download made two lookups.
_BUCKET_BY_NAME = select(buckets).where(buckets.c.name == bindparam("key"))
_BUCKET_BY_ID = select(buckets).where(buckets.c.id == bindparam("key"))
_FILE_IN_BUCKET = select(objects).where(
    objects.c.bucket_id == bindparam("bucket_id"), objects.c.name == bindparam("name")
)
_FILE_BY_ID = (
    select(objects.c.name, buckets.c.name.label("bucket_name"))
    .join(buckets, buckets.c.id == objects.c.bucket_id)
    .where(objects.c.id == bindparam("id"))
)


async def _find_bucket(
    platform: Platform, tenant: str, name: str, *, by_id: bool = False
) -> Mapping[str, Any]:
    """The bucket named `name` (with `by_id`, the bucket whose id is `name`)."""
    statement = _BUCKET_BY_ID if by_id else _BUCKET_BY_NAME
    row = await platform.db.first_record(tenant, statement, {"key": name})
    if row is None:
        raise NotFoundError(f"no bucket named {name!r}", details={"field": "bucket"})
    return row


def _bucket(row: Mapping[Any, Any]) -> Bucket:
    return Bucket(
        name=row["name"],
        description=row["description"],
        visibility=row["visibility"],
        max_file_size=row["max_file_size"],
        allowed_mime_types=row["allowed_mime_types"],
        created_at=row["created_at"],
    )


# -- files ----------------------------------------------------------------------------------


async def store_file(
    ctx: Context,
    bucket_name: str,
    name: str,
    content_type: str,
    metadata: dict[str, Any],
    chunks: AsyncIterable[bytes],
    sha256: str | None = None,
) -> StoredObject:
    """Stream a file into a bucket, checking its name, type, size and (if given) sha256."""
    check_object_name(name)
    bucket = await _find_bucket(ctx.platform, ctx.tenant, bucket_name)
    content_type = content_type.split(";", 1)[0].strip().lower() or "application/octet-stream"
    allowed = bucket["allowed_mime_types"]
    if allowed and not any(_mime_matches(content_type, pattern) for pattern in allowed):
        raise ValidationError(
            f"bucket {bucket_name!r} does not take {content_type} files "
            f"(it takes {', '.join(allowed)})",
            details={"field": "content_type"},
        )
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise ValidationError(
            f"metadata is at most {MAX_METADATA_BYTES} bytes of JSON", details={"field": "metadata"}
        )
    guarded = await policy_guard(ctx, "bucket", bucket["name"]) is not None
    object_id = new_id()
    key = blob_key(ctx.tenant, bucket["id"], object_id)
    stored = await ctx.platform.blobs.put(key, chunks, max_bytes=bucket["max_file_size"])
    try:
        if sha256 is not None and sha256.lower() != stored.sha256:
            raise ValidationError(
                "the file's sha256 is not the one sent; nothing was stored",
                details={"field": "sha256", "received": stored.sha256},
            )
        row = {
            "id": object_id,
            "bucket_id": bucket["id"],
            "name": name,
            "size": stored.size,
            "content_type": content_type,
            "sha256": stored.sha256,
            "etag": stored.etag,
            "metadata": metadata,
            "visibility": None,
            "created_at": utcnow(),
            "updated_at": utcnow(),
        }
        if guarded:  # checked with the size stored; refused: the bytes go again
            await _require_stored(ctx, bucket, row)
        replaced = await ctx.platform.db.run(ctx.tenant, lambda conn: _swap(conn, row), write=True)
    except BaseException:
        await ctx.platform.blobs.delete(key)
        raise
    if replaced is not None:
        await ctx.platform.blobs.delete(blob_key(ctx.tenant, bucket["id"], replaced))
    await _created(ctx, bucket, row)
    return _object(bucket, row)  # the row as written: no need to read it back


async def _created(ctx: Context, bucket: Mapping[Any, Any], row: Mapping[str, Any]) -> None:
    """Tell the triggers that follow the bucket (once the object is stored)."""
    data = {"size": row["size"], "content_type": row["content_type"], "sha256": row["sha256"]}
    await trigger_events.storage_changed(
        ctx.platform, ctx.tenant, bucket["name"], row["name"], "created", data
    )


async def _require_stored(ctx: Context, bucket: Mapping[Any, Any], row: Mapping[Any, Any]) -> None:
    """Refuse a file about to be written as `row` unless the caller may `create` it, and
    `update` the file of that name it replaces (if any)."""
    await _require_file(ctx, bucket, {**dict(row), "id": row.get("id", "")}, "create")
    try:
        _, existing = await _find_file(ctx.platform, ctx.tenant, bucket["name"], row["name"])
    except NotFoundError:
        return
    await _require_file(ctx, bucket, existing, "update")


def _swap(conn: Connection, row: dict[str, Any]) -> str | None:
    where = (objects.c.bucket_id == row["bucket_id"]) & (objects.c.name == row["name"])
    old = conn.execute(select(objects.c.id).where(where)).scalar_one_or_none()
    if old is not None:
        conn.execute(objects.delete().where(objects.c.id == old))
    conn.execute(objects.insert().values(**row))
    return old


def _mime_matches(content_type: str, pattern: str) -> bool:
    if pattern.endswith("/*"):
        return content_type.startswith(pattern[:-1])
    return content_type == pattern


async def _find_file(
    platform: Platform, tenant: str, bucket_name: str, name: str, *, by_id: bool = False
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The bucket (by name, or by id with `by_id`) and the file row; NotFoundError for
    either."""
    bucket = await _find_bucket(platform, tenant, bucket_name, by_id=by_id)
    row = await platform.db.first_record(
        tenant, _FILE_IN_BUCKET, {"bucket_id": bucket["id"], "name": name}
    )
    if row is None:
        raise NotFoundError(
            f"no file {name!r} in bucket {bucket_name!r}", details={"field": "name"}
        )
    return bucket, row


async def _describe_file(ctx: Context, bucket_name: str, name: str) -> StoredObject:
    bucket, row = await _find_allowed(ctx, bucket_name, name, "read")
    return _object(bucket, row)


# -- policies on a bound bucket (policies.bind("bucket", ...)) ------------------------------


def file_attr(bucket: Mapping[Any, Any], row: Mapping[Any, Any]) -> dict[str, Any]:
    """A file as a bound bucket's policies see it (`R.attr`; `R.id` is the file's id)."""
    info = _object(bucket, row)
    return {
        "bucket": info.bucket,
        "name": info.name,
        "size": info.size,
        "content_type": info.content_type,
        "metadata": info.metadata,
        "visibility": info.visibility,
    }


async def _require_file(
    ctx: Context, bucket: Mapping[Any, Any], row: Mapping[Any, Any], action: str
) -> None:
    """Refuse unless the caller may `action` the file. A stored file the caller may not even
    read is not found, as if it did not exist."""
    attr, name = file_attr(bucket, row), bucket["name"]
    if await guards.may(ctx, "bucket", name, action, row["id"], attr):
        return
    if action == "read" or (
        action != "create" and not await guards.may(ctx, "bucket", name, "read", row["id"], attr)
    ):
        raise NotFoundError(
            f"no file {row['name']!r} in bucket {name!r}", details={"field": "name"}
        )
    raise AuthorizationError(
        f"the policies do not allow you to {action} {row['name']!r} of bucket {name!r}",
        code="policy_denied",
        details={"field": "name", "action": action},
    )


async def _find_allowed(
    ctx: Context, bucket_name: str, name: str, action: str
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """`_find_file` for the caller, who must be allowed to `action` the file."""
    bucket, row = await _find_file(ctx.platform, ctx.tenant, bucket_name, name)
    await _require_file(ctx, bucket, row, action)
    return bucket, row


async def _listable(ctx: Context, bucket: Mapping[Any, Any]) -> list[ColumnElement[bool]]:
    """The SQL condition of the files of a bound bucket the caller may `read`."""
    guard = await policy_guard(ctx, "bucket", bucket["name"])
    if guard is None:
        return []
    attrs = {
        "bucket": SqlColumn(literal(bucket["name"]), "string"),
        "name": SqlColumn(objects.c.name, "string"),
        "size": SqlColumn(objects.c.size, "number"),
        "content_type": SqlColumn(objects.c.content_type, "string"),
        "visibility": SqlColumn(
            func.coalesce(objects.c.visibility, literal(bucket["visibility"])), "string"
        ),
    }
    where = f"bucket {bucket['name']!r} (conditions on a file's metadata cannot list files)"
    found = guards.plan_condition(
        ctx, guard, "read", attrs, SqlColumn(objects.c.id, "string"), where
    )
    return [] if found is None else [found]


def _object(bucket: Mapping[Any, Any], row: Mapping[Any, Any]) -> StoredObject:
    return StoredObject(
        id=row["id"],
        bucket=bucket["name"],
        name=row["name"],
        size=row["size"],
        content_type=row["content_type"],
        sha256=row["sha256"],
        etag=row["etag"],
        metadata=row["metadata"],
        visibility=row["visibility"] or bucket["visibility"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _by_id(ctx: Context, file_id: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    found = await ctx.platform.db.first_record(ctx.tenant, _FILE_BY_ID, {"id": file_id})
    if found is None:
        raise NotFoundError(f"no file with id {file_id!r}", details={"field": "id"})
    return await _find_allowed(ctx, found["bucket_name"], found["name"], "read")


@operation("storage.stat_by_id", scope="storage:read", read_only=True)
async def stat_by_id(ctx: Context, params: FileIdRef) -> StoredObject:
    """A file by its id (the Dominus files form names files by id)."""
    bucket, row = await _by_id(ctx, params.id)
    return _object(bucket, row)


@operation("storage.delete_by_id", scope="storage:write")
async def delete_by_id(ctx: Context, params: FileIdRef) -> Done:
    """Delete a file by its id."""
    bucket, row = await _by_id(ctx, params.id)
    return await delete_files(ctx, DeleteObjectsRequest(bucket=bucket["name"], names=[row["name"]]))


@operation("storage.stat", scope="storage:read", read_only=True)
async def stat(ctx: Context, params: ObjectRef) -> StoredObject:
    """A file's size, type, hashes and metadata."""
    return await _describe_file(ctx, params.bucket, params.name)


_LIST_FIELDS = {
    "name": objects.c.name,
    "mimetype": objects.c.content_type,
    "content_type": objects.c.content_type,
    "size": objects.c.size,
    "created_at": objects.c.created_at,
}


@operation("storage.list", scope="storage:read", read_only=True)
async def list_files(ctx: Context, params: ListObjectsRequest) -> list[StoredObject]:
    """Files of a bucket by name, under a prefix, matching filters on name, mimetype, size,
    created_at or `metadata.<key>`."""
    bucket = await _find_bucket(ctx.platform, ctx.tenant, params.bucket)
    conditions = [objects.c.bucket_id == bucket["id"], *await _listable(ctx, bucket)]
    if params.prefix:
        conditions.append(objects.c.name.startswith(params.prefix, autoescape=True))
    dialect = ctx.platform.db.dialect
    for index, (field, op, value) in enumerate(params.filters):
        where = f"filters[{index}]"
        if field.startswith("metadata."):
            key = field.removeprefix("metadata.")
            expr: Any = (
                objects.c.metadata.op("->>")(key)
                if dialect == "postgresql"
                else func.json_extract(objects.c.metadata, f'$."{key}"')
            )
        elif field in _LIST_FIELDS:
            expr = _LIST_FIELDS[field]
        else:
            raise ValidationError(
                f"files are filtered on name, mimetype, size, created_at or "
                f"metadata.<key>, not {field!r}",
                details={"field": where},
            )
        convert = (lambda v: datetime.fromisoformat(v)) if field == "created_at" else (lambda v: v)
        conditions.append(compare(expr, op, value, convert, where, dialect))
    statement = (
        select(objects)
        .where(*conditions)
        .order_by(objects.c.name)
        .limit(params.limit)
        .offset(params.offset)
    )
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(statement)).mappings().all()
    return [_object(bucket, row) for row in rows]


@operation("storage.update", scope="storage:write")
async def update_file(ctx: Context, params: UpdateObjectRequest) -> StoredObject:
    """Rename a file, or change its visibility or metadata."""
    bucket, row = await _find_allowed(ctx, params.bucket, params.name, "update")
    changes: dict[str, Any] = {}
    if params.new_name is not None:
        changes["name"] = check_object_name(params.new_name, "new_name")
    if params.visibility is not None:
        changes["visibility"] = params.visibility
    if params.metadata is not None:
        if len(json.dumps(params.metadata)) > MAX_METADATA_BYTES:
            raise ValidationError("metadata is too large", details={"field": "metadata"})
        changes["metadata"] = params.metadata
    if changes:
        # as it would be: a file is not handed to what the caller may not update
        changed = {**dict(row), **changes}
        attr = file_attr(bucket, changed)
        await guards.require(ctx, "bucket", bucket["name"], "update", row["id"], attr)
        try:
            async with ctx.platform.db.write(ctx.tenant) as conn:
                await conn.execute(
                    objects.update()
                    .where(objects.c.id == row["id"])
                    .values(**changes, updated_at=utcnow())
                )
        except IntegrityError:
            raise ConflictError(
                f"a file named {params.new_name!r} exists", details={"field": "new_name"}
            ) from None
    return await _describe_file(ctx, params.bucket, changes.get("name", params.name))


@operation("storage.delete", scope="storage:write")
async def delete_files(ctx: Context, params: DeleteObjectsRequest) -> Done:
    """Delete files by name; names that do not exist are skipped (see `count`)."""
    bucket = await _find_bucket(ctx.platform, ctx.tenant, params.bucket)
    for index, name in enumerate(params.names):
        check_object_name(name, f"names[{index}]")
    if await policy_guard(ctx, "bucket", bucket["name"]) is not None:
        async with ctx.platform.db.read(ctx.tenant) as conn:
            named = (
                await conn.execute(
                    select(objects).where(
                        objects.c.bucket_id == bucket["id"], objects.c.name.in_(params.names)
                    )
                )
            ).mappings()
            found = list(named)
        for row in found:  # every one allowed, or none deleted
            await _require_file(ctx, bucket, row, "delete")
    async with ctx.platform.db.write(ctx.tenant) as conn:
        ids = list(
            (
                await conn.execute(
                    objects.delete()
                    .where(objects.c.bucket_id == bucket["id"], objects.c.name.in_(params.names))
                    .returning(objects.c.id, objects.c.name)
                )
            ).all()
        )
    for object_id, _ in ids:
        await ctx.platform.blobs.delete(blob_key(ctx.tenant, bucket["id"], object_id))
    for _, name in ids:
        await trigger_events.storage_changed(
            ctx.platform, ctx.tenant, bucket["name"], name, "deleted", {}
        )
    return Done(count=len(ids))


@operation("storage.copy_object", scope="storage:write")
async def copy_object(ctx: Context, params: CopyObjectRequest) -> StoredObject:
    """Copy a file to another bucket or name (a file there is replaced)."""
    return await _copy(ctx, params, move=False)


@operation("storage.move_object", scope="storage:write")
async def move_object(ctx: Context, params: CopyObjectRequest) -> StoredObject:
    """Move a file to another bucket or name."""
    return await _copy(ctx, params, move=True)


async def _copy(ctx: Context, params: CopyObjectRequest, *, move: bool) -> StoredObject:
    source_bucket, row = await _find_allowed(
        ctx, params.bucket, params.name, "delete" if move else "read"
    )
    target_name = check_object_name(params.destination_name or params.name, "destination_name")
    target = await _find_bucket(ctx.platform, ctx.tenant, params.destination_bucket)
    if (source_bucket["id"], row["name"]) == (target["id"], target_name):
        raise ValidationError(
            "the destination is the file itself", details={"field": "destination_name"}
        )
    if target["max_file_size"] is not None and row["size"] > target["max_file_size"]:
        raise ValidationError(
            f"bucket {target['name']!r} takes files up to {target['max_file_size']} bytes",
            details={"field": "destination_bucket"},
        )
    await _require_stored(ctx, target, {**dict(row), "name": target_name})
    object_id = new_id()
    key = blob_key(ctx.tenant, target["id"], object_id)
    await ctx.platform.blobs.copy(blob_key(ctx.tenant, source_bucket["id"], row["id"]), key)
    copied = {
        **dict(row),
        "id": object_id,
        "bucket_id": target["id"],
        "name": target_name,
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    try:
        replaced = await ctx.platform.db.run(
            ctx.tenant, lambda conn: _swap(conn, copied), write=True
        )
    except BaseException:
        await ctx.platform.blobs.delete(key)
        raise
    if replaced is not None:
        await ctx.platform.blobs.delete(blob_key(ctx.tenant, target["id"], replaced))
    await _created(ctx, target, copied)
    if move:
        await delete_files(ctx, DeleteObjectsRequest(bucket=params.bucket, names=[params.name]))
    return _object(target, copied)


# -- reading files ---------------------------------------------------------------------------


class Download(msgspec.Struct, frozen=True):
    """A file found and allowed to its reader: what it is, and its bytes on demand (an
    answer that sends no body, HEAD or 304, reads none)."""

    tenant: str
    info: StoredObject
    _blobs: BlobStore
    _key: str

    def chunks(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes from `start` to `end` (inclusive, the last byte when None), in chunks."""
        if self.info.size == 0:
            return _nothing()
        return self._blobs.get(self._key, start=start, end=end)

    async def local_file(self) -> BinaryIO | None:
        """The file open for reading, where the blob store keeps it in a local file (for a
        server to hand to the kernel); None elsewhere (S3) and for an empty file."""
        if self.info.size == 0:
            return None
        return await self._blobs.open_local(self._key)


async def open_download(ctx: Context, bucket_name: str, name: str) -> Download:
    """A file of the caller's tenant (the door has checked `storage:read`; a bound bucket's
    policies must allow the caller to `read` it)."""
    bucket, row = await _find_allowed(ctx, bucket_name, name, "read")
    return _download(ctx.platform, ctx.tenant, bucket, row)


async def open_public_download(
    platform: Platform, tenant: str, bucket_name: str, name: str
) -> Download:
    """A public file (its own visibility, else its bucket's), for anyone. A missing tenant,
    bucket or file and a private file answer alike, so nothing is learnt from asking."""
    try:
        await ensure_exists(platform, tenant)
        bucket, row = await _find_file(platform, tenant, bucket_name, name)
    except (NotFoundError, ValidationError):
        raise NotFoundError("no public file here") from None
    if (row["visibility"] or bucket["visibility"]) != "public":
        raise NotFoundError("no public file here")
    return _download(platform, tenant, bucket, row)


async def open_signed_download(platform: Platform, token: str) -> Download:
    """The file a signed link names (AuthenticationError if the link is tampered with or
    expired). A link outlives nothing it names: once its tenant or bucket is deleted it
    answers 404, even after one of the same name is made again."""
    tenant, bucket_id, name = read_link(platform, token)
    try:
        await ensure_exists(platform, tenant)
        bucket, row = await _find_file(platform, tenant, bucket_id, name, by_id=True)
    except NotFoundError:
        raise NotFoundError("the file of this link no longer exists") from None
    return _download(platform, tenant, bucket, row)


def _download(
    platform: Platform, tenant: str, bucket: Mapping[str, Any], row: Mapping[str, Any]
) -> Download:
    key = blob_key(tenant, bucket["id"], row["id"])
    return Download(tenant, _object(bucket, row), platform.blobs, key)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


# -- links without credentials ---------------------------------------------------------------


@operation("storage.create_signed_url", scope="storage:read")
async def create_signed_url(ctx: Context, params: SignedUrlRequest) -> SignedUrl:
    """A link that downloads the file without credentials until it expires (of a bound
    bucket, only a file the caller may `read`: the link carries that right, no more)."""
    bucket, _ = await _find_allowed(ctx, params.bucket, params.name, "read")
    expires = int(ctx.platform.clock.time()) + params.expires_in
    token = sign_link(ctx.platform, ctx.tenant, bucket["id"], params.name, expires)
    path = f"/api/v1/storage/signed/{token}"
    return SignedUrl(signed_url=path, path=path, expires_at=datetime.fromtimestamp(expires, tz=UTC))


def sign_link(platform: Platform, tenant: str, bucket_id: str, name: str, expires: int) -> str:
    """A token for the file `name` of the bucket whose id is `bucket_id`, until `expires`."""
    payload = json.dumps([tenant, bucket_id, name, expires], separators=(",", ":")).encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"{body}.{_mac(platform, body)}"


def read_link(platform: Platform, token: str) -> tuple[str, str, str]:
    """(tenant, bucket id, name) of a signed link; AuthenticationError if tampered or
    expired."""
    body, _, mac = token.partition(".")
    if not mac or not hmac.compare_digest(mac, _mac(platform, body)):
        raise AuthenticationError("this link is not valid", code="invalid_credentials")
    try:
        tenant, bucket, name, expires = json.loads(
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        )
    except (ValueError, TypeError):
        raise AuthenticationError("this link is not valid", code="invalid_credentials") from None
    if expires < platform.clock.time():
        raise AuthenticationError("this link has expired; ask for a new one", code="token_expired")
    return str(tenant), str(bucket), str(name)


def _mac(platform: Platform, body: str) -> str:
    # "v2": links name a bucket by id. Links of before (by name) are refused as not valid,
    # never read as naming a bucket whose id is that name.
    key = platform.access_tokens.derive("signed-links-v2")
    return (
        base64.urlsafe_b64encode(hmac.new(key, body.encode(), hashlib.sha256).digest())
        .rstrip(b"=")
        .decode()
    )
