"""Types of the database, schema, documents, audit and analytics operations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from roost.wire.common import TenantName

Name = Annotated[str, Meta(min_length=1, max_length=63)]  # checked further by the services
Reason = Annotated[str, Meta(min_length=1, max_length=1000)]
Actor = Annotated[str, Meta(min_length=1, max_length=200)]
FILTER_OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "icontains",
    "startswith",
    "endswith",
    "is_null",
    "between",
)
Filter = tuple[str, str, Any]
"""`[field, operator, value]`: eq ne gt gte lt lte in not_in contains icontains startswith
endswith is_null between."""
Sort = tuple[str, Literal["asc", "desc"]]
Row = dict[str, Any]
DefaultValue = str | int | float | bool | None


class ColumnSpec(Struct, forbid_unknown_fields=True):
    name: str
    type: str
    constraints: Annotated[list[str], Meta(max_length=10)] = []
    default: DefaultValue = None


class TableSpec(Struct, forbid_unknown_fields=True):
    name: Name
    columns: Annotated[list[ColumnSpec], Meta(min_length=1, max_length=500)]
    timestamps: bool = True
    secure: bool = False


class TableRef(Struct, forbid_unknown_fields=True):
    table: Name


class AddColumnRequest(Struct, forbid_unknown_fields=True):
    table: Name
    column: ColumnSpec


class DropColumnRequest(Struct, forbid_unknown_fields=True):
    table: Name
    column: Name


class RenameColumnRequest(Struct, forbid_unknown_fields=True):
    table: Name
    column: Name
    new_name: Name


class AddIndexRequest(Struct, forbid_unknown_fields=True):
    table: Name
    columns: Annotated[list[Name], Meta(min_length=1, max_length=16)]
    unique: bool = False
    name: Name | None = None


class SetSecureRequest(Struct, forbid_unknown_fields=True):
    table: Name
    secure: bool = True


class MigrationsRequest(Struct, forbid_unknown_fields=True):
    table: Name | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class Migration(Struct):
    id: int
    operation: str
    table: str
    change: dict[str, Any]
    applied_at: datetime
    applied_by: str


class ReferenceInfo(Struct):
    table: str
    column: str
    on_delete: str


class ColumnInfo(Struct):
    name: str
    type: str
    nullable: bool
    primary_key: bool
    unique: bool
    default: str | None
    references: ReferenceInfo | None
    check: str | None


class IndexInfo(Struct):
    name: str
    columns: list[str]
    unique: bool


class TableInfo(Struct):
    name: str
    columns: list[ColumnInfo]
    indexes: list[IndexInfo]
    secure: bool
    timestamps: bool


class TableSummary(Struct):
    name: str
    secure: bool
    columns: list[str]


class Audited(Struct, forbid_unknown_fields=True):
    """`reason` and `actor` are required for secure tables and written to the audit log."""

    reason: Reason | None = None
    actor: Actor | None = None


class QueryRequest(Struct, forbid_unknown_fields=True):
    table: Name | None = None
    collection: Name | None = None
    filters: Annotated[list[Filter], Meta(max_length=100)] = []
    sort: Annotated[list[Sort], Meta(max_length=10)] = []
    select: Annotated[list[Name], Meta(min_length=1, max_length=500)] | None = None
    populate: Annotated[list[Name], Meta(max_length=20)] = []
    page_size: Annotated[int, Meta(ge=1)] | None = None
    page: Annotated[int, Meta(ge=1)] = 1
    limit: Annotated[int, Meta(ge=1)] | None = None
    offset: Annotated[int, Meta(ge=0)] | None = None
    count: Literal["none", "with", "only"] = "none"
    reason: Reason | None = None
    actor: Actor | None = None


class ExportRequest(Struct, forbid_unknown_fields=True):
    """`database.export`: every row of a table matching the filters, in primary-key order."""

    table: Name
    filters: Annotated[list[Filter], Meta(max_length=99)] = []
    select: Annotated[list[Name], Meta(min_length=1, max_length=500)] | None = None
    page_size: Annotated[int, Meta(ge=1, le=1000)] = 200
    reason: Reason | None = None
    actor: Actor | None = None


class QueryResult(Struct, omit_defaults=True):
    rows: list[Row]
    total: int | None = None
    page: int | None = None
    page_size: int | None = None


class GetRecordRequest(Struct, forbid_unknown_fields=True):
    table: Name
    id: Any
    select: Annotated[list[Name], Meta(min_length=1, max_length=500)] | None = None
    populate: list[Name] = []
    reason: Reason | None = None
    actor: Actor | None = None


class CreateRecordsRequest(Struct, forbid_unknown_fields=True):
    table: Name
    rows: Annotated[list[Row], Meta(min_length=1, max_length=10000)]
    reason: Reason | None = None
    actor: Actor | None = None


class UpdateRecordsRequest(Struct, forbid_unknown_fields=True):
    """By `id` with `data`, by `rows` that carry their ids, or by `filters` with `data`."""

    table: Name
    id: Any = None
    data: Row | None = None
    rows: Annotated[list[Row], Meta(max_length=10000)] | None = None
    filters: Annotated[list[Filter], Meta(max_length=100)] | None = None
    reason: Reason | None = None
    actor: Actor | None = None


class DeleteRecordsRequest(Struct, forbid_unknown_fields=True):
    """By `id`, by `ids`, or by `filters`; deleting every row needs `all=True`."""

    table: Name
    id: Any = None
    ids: Annotated[list[Any], Meta(max_length=10000)] | None = None
    filters: Annotated[list[Filter], Meta(max_length=100)] | None = None
    all: bool = False
    reason: Reason | None = None
    actor: Actor | None = None


class RecordsResult(Struct):
    rows: list[Row]
    count: int


class CountResult(Struct):
    count: int


DocumentId = Annotated[str, Meta(min_length=1, max_length=200)]


class DocumentRef(Struct, forbid_unknown_fields=True):
    collection: Name
    id: DocumentId


class DocumentWrite(Struct, forbid_unknown_fields=True):
    collection: Name
    id: DocumentId
    data: dict[str, Any]


class AuditQuery(Struct, forbid_unknown_fields=True):
    table: Name | None = None
    actor: Actor | None = None
    operation: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class AuditEntry(Struct):
    id: int
    at: datetime
    username: str
    principal: str
    actor: str
    reason: str
    operation: str
    table: str
    record_ids: list[Any]


ParamType = Literal["str", "int", "float", "bool", "date", "datetime"]


class DefineAnalyticsRequest(Struct, forbid_unknown_fields=True):
    name: Name
    sql: Annotated[str, Meta(min_length=1, max_length=20000)]
    params: dict[str, ParamType] = {}
    description: Annotated[str, Meta(max_length=1000)] = ""


class AnalyticsQuery(Struct):
    name: str
    sql: str
    params: dict[str, str]
    description: str
    updated_at: datetime


class AnalyticsRef(Struct, forbid_unknown_fields=True):
    name: Name


class ExecuteAnalyticsRequest(Struct, forbid_unknown_fields=True):
    """`reason` is required when the query reads a secure table; it goes to the audit log with
    the caller as the actor."""

    name: Name
    params: dict[str, Any] = {}
    limit: Annotated[int, Meta(ge=1, le=100000)] = 10000
    reason: Reason | None = None


class AnalyticsResult(Struct):
    data: list[Row]


class CategorySpec(Struct, forbid_unknown_fields=True):
    name: Name
    tables: Annotated[list[TableSpec], Meta(max_length=200)]
    description: Annotated[str, Meta(max_length=1000)] = ""


class Category(Struct):
    name: str
    description: str
    tables: list[str]


class ProvisionRequest(Struct, forbid_unknown_fields=True):
    tenant: TenantName
    category: Name
    display_name: str = ""


class TableSubscribeRequest(Struct, forbid_unknown_fields=True):
    table: Name
    events: Annotated[
        list[Literal["insert", "update", "delete"]], Meta(min_length=1, max_length=3)
    ] = msgspec.field(default_factory=lambda: ["insert", "update", "delete"])
    from_offset: Annotated[int, Meta(ge=-1_000_000)] | None = None
