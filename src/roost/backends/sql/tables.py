"""The platform's own tables: the control plane's, and those every tenant has.

Their names start with `roost_`, a prefix refused for user tables, so that a tenant's own
tables (which share its database) never collide with them.

These are the live definitions services query through. The migrations never create from
them: they run frozen copies (`frozen.py`) and later steps that alter those, so a change here
needs a new step in `migrations.py` that makes it; tests/backends/test_migrations.py checks
that the steps build exactly what is declared here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from roost.backends.sql.jsontype import json_type


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every engine (SQLite keeps no zone of its own)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        result: datetime = value
        return result.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


control_metadata = MetaData()

tenants = Table(
    "roost_tenants",
    control_metadata,
    Column("name", String(40), primary_key=True),
    Column("display_name", String(200), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

tenant_kv_bounds = Table(
    "roost_tenant_kv_bounds",
    control_metadata,
    Column("tenant", String(40), primary_key=True),
    Column("min_ttl", Integer, nullable=True),
    Column("max_ttl", Integer, nullable=True),
)

# A tenant being deleted: written with the removal of its row, removed once everything it
# owned on every backend is gone. Its name cannot be taken again while the row is here, and
# start-up finishes the purges that a stop interrupted.
tenant_purges = Table(
    "roost_tenant_purges",
    control_metadata,
    Column("name", String(40), primary_key=True),
    Column("started_at", UTCDateTime, nullable=False, default=utcnow),
)

# One person across tenants (services/memberships.py): a member account `user_id` of
# `tenant` that the person whose home account is (`home_tenant`, `home_user_id`) may switch
# to. A tenant's account is the member account of one home at most, and a home has at most
# one account per tenant. No foreign keys: the accounts live in the tenants' databases.
memberships = Table(
    "roost_memberships",
    control_metadata,
    Column("tenant", String(40), primary_key=True),
    Column("user_id", String(32), primary_key=True),
    Column("home_tenant", String(40), nullable=False),
    Column("home_user_id", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("home_tenant", "home_user_id", "tenant", name="uq_roost_memberships_home"),
)

# An offer of a tenant's account to whoever redeems the code (kept hashed) while signed in at
# home; spent by deleting the row, so it works once.
membership_invites = Table(
    "roost_membership_invites",
    control_metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("tenant", String(40), nullable=False, index=True),
    Column("user_id", String(32), nullable=False),
    Column("created_by", String(150), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

tenant_metadata = MetaData()

users = Table(
    "roost_users",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(150), nullable=False, unique=True),
    Column("email", String(254), nullable=False, default="", index=True),
    Column("password_hash", Text, nullable=False),
    Column("first_name", String(150), nullable=False, default=""),
    Column("last_name", String(150), nullable=False, default=""),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("is_staff", Boolean, nullable=False, default=False),
    Column("is_superuser", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    Column("last_login", UTCDateTime, nullable=True),
    Column("email_verified_at", UTCDateTime, nullable=True),  # added by tenant migration 14
    Column("preferences", JSON, nullable=True),  # added by tenant migration 16
    Column("is_anonymous", Boolean, nullable=True),  # added by tenant migration 26
)

roles = Table(
    "roost_roles",
    tenant_metadata,
    Column("name", String(64), primary_key=True),
    Column("scopes", JSON, nullable=False),
    Column("description", String(500), nullable=False, default=""),
    Column("builtin", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

user_roles = Table(
    "roost_user_roles",
    tenant_metadata,
    Column(
        "user_id", String(32), ForeignKey("roost_users.id", ondelete="CASCADE"), primary_key=True
    ),
    Column(
        "role", String(64), ForeignKey("roost_roles.name", ondelete="CASCADE"), primary_key=True
    ),
    Column("expires_at", UTCDateTime, nullable=True),
)

sessions = Table(
    "roost_sessions",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "user_id",
        String(32),
        ForeignKey("roost_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("session_token_hash", String(64), nullable=True, unique=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("user_agent", String(400), nullable=False, default=""),
    Column("address", String(64), nullable=False, default=""),
)

# Every refresh token ever issued for a session (its "family"); a used one presented again
# means it was stolen, and the whole session is revoked.
refresh_tokens = Table(
    "roost_refresh_tokens",
    tenant_metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "session_id",
        String(32),
        ForeignKey("roost_sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("used_at", UTCDateTime, nullable=True),
)

api_keys = Table(
    "roost_api_keys",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "user_id",
        String(32),
        ForeignKey("roost_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("prefix", String(64), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

_big_id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only
_json = json_type()

tenant_categories = Table(
    "roost_tenant_categories",
    control_metadata,
    Column("name", String(63), primary_key=True),
    Column("description", String(1000), nullable=False, default=""),
    Column("tables", JSON, nullable=False),
)

# The definitions of a tenant's own tables: the source of truth for describe, queries and DDL.
user_tables = Table(
    "roost_tables",
    tenant_metadata,
    Column("name", String(63), primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)

schema_migrations = Table(
    "roost_schema_migrations",
    tenant_metadata,
    Column("id", _big_id, primary_key=True, autoincrement=True),
    Column("operation", String(40), nullable=False),
    Column("table_name", String(63), nullable=False, index=True),
    Column("change", JSON, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False, default=utcnow),
    Column("applied_by", String(150), nullable=False),
)

documents = Table(
    "roost_documents",
    tenant_metadata,
    Column("collection", String(63), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("data", _json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)

audit_log = Table(
    "roost_audit",
    tenant_metadata,
    Column("id", _big_id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False, default=utcnow, index=True),
    Column("username", String(150), nullable=False),
    Column("principal", String(64), nullable=False),
    Column("actor", String(200), nullable=False, index=True),
    Column("reason", String(1000), nullable=False),
    Column("operation", String(40), nullable=False),
    Column("table_name", String(63), nullable=False, index=True),
    Column("record_ids", JSON, nullable=False),
)

analytics_queries = Table(
    "roost_analytics",
    tenant_metadata,
    Column("name", String(63), primary_key=True),
    Column("sql", Text, nullable=False),
    Column("params", JSON, nullable=False),
    Column("description", String(1000), nullable=False, default=""),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)

buckets = Table(
    "roost_buckets",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("description", String(1000), nullable=False, default=""),
    Column("visibility", String(10), nullable=False, default="private"),
    Column("max_file_size", BigInteger, nullable=True),
    Column("allowed_mime_types", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)

# One row per stored file. The bytes live in the blob store under <tenant>/<bucket id>/<id>;
# replacing a file writes new bytes under a new id, then swaps the row.
objects = Table(
    "roost_objects",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "bucket_id", String(32), ForeignKey("roost_buckets.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(1024), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("etag", String(128), nullable=False),
    Column("metadata", _json, nullable=False),
    Column("visibility", String(10), nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    UniqueConstraint("bucket_id", "name", name="uq_roost_objects_bucket_name"),
)

# Secrets (services/secrets.py): each value is AES-256-GCM ciphertext under the tenant's data
# key, which is itself kept wrapped by the server's master key in roost_secret_keys. `app` is
# "" for a tenant-wide secret; an app's own secret of the same key overrides it.
secret_keys = Table(
    "roost_secret_keys",
    tenant_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

secrets = Table(
    "roost_secrets",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column("app", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("secret_type", String(64), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("comment", String(1000), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("app", "key", name="uq_roost_secrets_app_key"),
)

# Every value a secret has had, the current one included (its row's `version`).
secret_versions = Table(
    "roost_secret_versions",
    tenant_metadata,
    Column(
        "secret_id",
        String(32),
        ForeignKey("roost_secrets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("comment", String(1000), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("created_by", String(150), nullable=False),
)

# Structured logs written by applications (services/logs.py), newest read first; `level_no`
# orders levels so that "warn and above" is one range.
logs = Table(
    "roost_logs",
    tenant_metadata,
    Column("id", _big_id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False, default=utcnow, index=True),
    Column("level_no", Integer, nullable=False),
    Column("category", String(100), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", _json, nullable=True),
    Column("exception", Text, nullable=True),
    Column("source", JSON, nullable=True),
    Column("username", String(150), nullable=False),
    Index("ix_roost_logs_category_id", "category", "id"),
)

# Mail (services/mail.py): the tenant's own templates (they override the built-in ones of the
# same alias), and every message sent, with its status ("sent", "outbox" or "failed").
mail_templates = Table(
    "roost_mail_templates",
    tenant_metadata,
    Column("alias", String(100), primary_key=True),
    Column("subject", String(500), nullable=False),
    Column("text", Text, nullable=False),
    Column("html", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

mail_messages = Table(
    "roost_mail",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column("at", UTCDateTime, nullable=False, default=utcnow, index=True),
    Column("template", String(100), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("recipients", JSON, nullable=False),
    Column("recipient_list", Text, nullable=False),  # "\n" + lower-cased addresses + "\n"
    Column("subject", String(500), nullable=False),
    Column("text", Text, nullable=False),
    Column("html", Text, nullable=True),
    Column("status", String(10), nullable=False),
    Column("error", Text, nullable=True),
)

# One-time tokens sent by mail (services/auth/recovery.py): email verification and password
# reset. Only their hash is kept; a token is spent by its first use.
user_tokens = Table(
    "roost_user_tokens",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "user_id",
        String(32),
        ForeignKey("roost_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("purpose", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("email", String(254), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)

# Two-factor sign-in (services/auth/totp.py): a user's TOTP secret, sealed by the tenant's
# vault key and bound to the user; the last time step a code was accepted at (a code is
# spent within its window); and the hashes of the recovery codes, each usable once.
totp_factors = Table(
    "roost_totp_factors",
    tenant_metadata,
    Column(
        "user_id", String(32), ForeignKey("roost_users.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("secret", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("confirmed_at", UTCDateTime, nullable=True),
    Column("last_counter", BigInteger, nullable=True),
)

recovery_codes = Table(
    "roost_recovery_codes",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "user_id",
        String(32),
        ForeignKey("roost_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("code_hash", String(64), nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)

# Metering (services/usage.py): calls and bytes by hour and API key ("" for a signed-in user),
# added to by every replica every few seconds.
usage = Table(
    "roost_usage",
    tenant_metadata,
    Column("hour", UTCDateTime, primary_key=True),
    Column("api_key_id", String(32), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("bytes_in", BigInteger, nullable=False),
    Column("bytes_out", BigInteger, nullable=False),
    Column("function_invocations", BigInteger, nullable=True),  # NULL: none in that hour
    Column("function_ms", BigInteger, nullable=True),
)

# The tenant's site settings (services/settings.py): one JSON object, in one row.
site_settings = Table(
    "roost_site_settings",
    tenant_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("data", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

# Pages of the tenant's app and the scopes each needs (services/pages.py): the navigation a
# caller sees is the tree of pages whose scopes they hold.
pages = Table(
    "roost_pages",
    tenant_metadata,
    Column("path", String(255), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("parent", String(255), nullable=True),
    Column("scopes", JSON, nullable=False),
    Column("position", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

# Scopes a tenant defines for its own app (services/scopes.py), next to the platform's.
custom_scopes = Table(
    "roost_scopes",
    tenant_metadata,
    Column("name", String(64), primary_key=True),
    Column("description", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

# Functions (services/functions/): a name with numbered versions, one of them active. A
# version holds everything that decides how it runs; its code is a zip in the blob store
# under `bundle_key` (<tenant>/functions/<function id>/<version>-<random>.zip: two deploys
# racing for one version number never write over each other's code).
functions = Table(
    "roost_functions",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("app", String(64), nullable=False),
    Column("description", String(1000), nullable=False),
    Column("active_version", Integer, nullable=False),
    Column("latest_version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    Column("created_by", String(150), nullable=False),
)

function_versions = Table(
    "roost_function_versions",
    tenant_metadata,
    Column(
        "function_id",
        String(32),
        ForeignKey("roost_functions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("entrypoint", String(200), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("execution_mode", String(5), nullable=False),
    Column("timeout", Float, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("secrets", JSON, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("params_schema", JSON, nullable=True),
    Column("bundle_size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("bundle_key", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("created_by", String(150), nullable=False),
)

# Every run of a function, sync runs included. Params, result and logs are JSON text (what a
# function returns or prints may hold NUL, which PostgreSQL's jsonb and text refuse raw).
# The caller's user, session and API key are kept so that a queued run acts as its caller
# does when it starts, not with what the caller held when it was queued; `limits` are the
# declared scopes of the functions whose run queued it (a function calling a function).
function_invocations = Table(
    "roost_function_invocations",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "function_id",
        String(32),
        ForeignKey("roost_functions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("function_name", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(10), nullable=False),
    Column("mode", String(6), nullable=False),
    Column("timeout", Float, nullable=False),
    Column("params", Text, nullable=True),
    Column("result", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("logs", Text, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("user_id", String(32), nullable=False),
    Column("username", String(150), nullable=False),
    Column("session_id", String(32), nullable=True),
    Column("api_key_id", String(32), nullable=True),
    Column("limits", JSON, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_roost_function_invocations_function", "function_id", "created_at"),
    Index("ix_roost_function_invocations_status", "status", "created_at"),
)

# Policies (services/policystore.py): the tenant's current Cerbos policies by key, every change
# to them and to the globals as a numbered revision, and in one row the current revision and
# the tenant's globals (writers move the revision from the one they read, so concurrent puts
# cannot both win).
policy_state = Table(
    "roost_policy_state",
    tenant_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", Integer, nullable=False),
    Column("globals", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(150), nullable=False),
)

policies = Table(
    "roost_policies",
    tenant_metadata,
    Column("key", String(512), primary_key=True),  # resource.leave_request.vdefault/acme
    Column("kind", String(20), nullable=False),  # resource, principal, role, derived_roles, ...
    Column("name", String(512), nullable=False),
    Column("version", String(512), nullable=False),
    Column("scope", String(512), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("document", JSON, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(150), nullable=False),
)

policy_changes = Table(
    "roost_policy_changes",
    tenant_metadata,
    Column("id", _big_id, primary_key=True, autoincrement=True),
    Column("revision", Integer, nullable=False),
    Column("key", String(512), nullable=False),  # "" for a change of the globals
    Column("change", String(10), nullable=False),  # put, delete or globals
    Column("document", JSON, nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Column("by", String(150), nullable=False),
    Index("ix_roost_policy_changes_key_id", "key", "id"),
)

# Which tables, buckets, streams, queues and functions the tenant's policies guard
# (services/policystore.py): each bound one is a resource of `resource_kind` to the policies.
policy_bindings = Table(
    "roost_policy_bindings",
    tenant_metadata,
    Column("target", String(20), primary_key=True),  # table, bucket, stream, queue, function
    Column("name", String(200), primary_key=True),
    Column("resource_kind", String(512), nullable=False),
    Column("policy_version", String(512), nullable=False),  # "" for the default
    Column("scope", String(512), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(150), nullable=False),
)

# The embedded KV cache (ROOST_REDIS_URL replaces it): values are JSON text; a hash keeps a
# JSON object of field -> JSON text. Expired rows are invisible and swept from time to time.
kv_entries = Table(
    "roost_kv",
    control_metadata,
    Column("space", String(8), primary_key=True),  # "kv" or "lock"
    Column("key", String(700), primary_key=True),
    Column("kind", String(8), nullable=False),  # "string", "hash" or "lock"
    Column("value", Text, nullable=False),
    Column("expires_at", Float, nullable=True, index=True),
)

queues = Table(
    "roost_queues",
    control_metadata,
    Column("name", String(300), primary_key=True),  # "<tenant>:<queue>"
    Column("max_deliveries", Integer, nullable=False),
)

queue_messages = Table(
    "roost_queue_messages",
    control_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # publish order
    Column("id", String(40), nullable=False, unique=True),
    Column("queue", String(300), nullable=False),
    Column("state", String(8), nullable=False),  # "ready", "inflight" or "dead"
    Column("priority", Integer, nullable=False),
    Column("due_at", Float, nullable=False),  # ready: deliverable from; inflight: ack deadline
    Column("deliveries", Integer, nullable=False),
    Column("max_deliveries", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("headers", Text, nullable=False),
    Column("published_at", Float, nullable=False),
    Index("roost_queue_next", "queue", "state", "priority", "seq"),
    Index("roost_queue_due", "queue", "state", "due_at"),
)

stream_rooms = Table(
    "roost_stream_rooms",
    control_metadata,
    Column("room", String(300), primary_key=True),  # "<tenant>:<room>"
    Column("next_offset", BigInteger, nullable=False),
    Column("max_events", Integer, nullable=True),
    Column("max_age", Integer, nullable=True),
)

stream_events = Table(
    "roost_stream_events",
    control_metadata,
    Column("room", String(300), primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("id", String(40), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("data", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("roost_stream_age", "room", "timestamp"),
)

# Sign-in with outside providers (services/auth/oidc.py): each provider's settings (its client
# secret sealed by the vault), the outside identities linked to users, and the short-lived
# handoffs of a sign-in (a `state` while the user is at the provider, then the one-time code
# the app exchanges for a session), each stored by the hash of its value.
auth_providers = Table(
    "roost_auth_providers",
    tenant_metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("client_id", String(512), nullable=False),
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("secret_version", Integer, nullable=False),
    Column("issuer", String(2048), nullable=True),
    Column("authorize_url", String(2048), nullable=True),
    Column("token_url", String(2048), nullable=True),
    Column("userinfo_url", String(2048), nullable=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

user_identities = Table(
    "roost_user_identities",
    tenant_metadata,
    Column("provider", String(64), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column(
        "user_id",
        String(32),
        ForeignKey("roost_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("email", String(254), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

passkeys = Table(
    "roost_passkeys",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column("credential_id", String(1400), nullable=False, unique=True),
    Column(
        "user_id",
        String(32),
        ForeignKey("roost_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("name", String(100), nullable=False),
    Column("aaguid", String(36), nullable=False),
    Column("backed_up", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("last_used_at", UTCDateTime, nullable=True),
)

auth_handoffs = Table(
    "roost_auth_handoffs",
    tenant_metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("data", JSON, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# Triggers (services/triggers/): a source of events and a target that receives them, owned by
# the user who made it (a function target runs as them). A URL target's signing secret is
# sealed by the vault. `last_tick` is the last cron tick claimed (epoch seconds): replicas
# claim a tick by moving it forward with a compare-and-set, so each tick fires once.
triggers = Table(
    "roost_triggers",
    tenant_metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("description", String(1000), nullable=False),
    Column("source_kind", String(10), nullable=False),
    Column("source", JSON, nullable=False),
    Column("target_kind", String(10), nullable=False),
    Column("target", JSON, nullable=False),
    Column("secret_sealed", LargeBinary, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("owner_id", String(32), nullable=False),
    Column("owner_name", String(150), nullable=False),
    Column("last_tick", Float, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

# One row per event a trigger took, by the event's id, updated after each attempt.
trigger_deliveries = Table(
    "roost_trigger_deliveries",
    tenant_metadata,
    Column("id", String(80), primary_key=True),
    Column(
        "trigger_id",
        String(32),
        ForeignKey("roost_triggers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("duration_ms", Float, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    Index("ix_roost_trigger_deliveries_trigger", "trigger_id", "created_at"),
)

trigger_outbox = Table(
    "roost_trigger_outbox",
    tenant_metadata,
    Column("id", String(80), primary_key=True),
    Column(
        "trigger_id",
        String(32),
        ForeignKey("roost_triggers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

# The Idempotency-Key records of record writes, written in the write's own transaction
# (server/idempotency.py): the request's MAC and the sealed answer, both keyed by the slot
# the key derives; none keeps a secret at rest.
idempotency_answers = Table(
    "roost_idempotency_answers",
    tenant_metadata,
    Column("slot", String(64), primary_key=True),
    Column("request", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)
