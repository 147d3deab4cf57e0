"""The platform's tables as the migration steps created them, frozen.

The migrations build their DDL from these definitions, never from the live ones in `tables.py`
(which services use, and which grow as the platform does): a step must create today what it
created when it was released, so that a namespace made today and one upgraded step by step
from the first end up with the same schema. A table here is never edited; a later change to
it is a new step (`AddColumn` and the like) that alters it, and `tables.py` then declares
the result. tests/backends/test_migrations.py checks both: that the steps' SQL is unchanged
and that the schema they build is the one `tables.py` declares.

The definitions carry DDL only: types as the database sees them (a UTC time is a naive
`DateTime`, as `tables.UTCDateTime` stores it) and no Python-side defaults.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from roost.backends.sql.jsontype import json_type

_time = DateTime()
_big_id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only
_json = json_type()

control = MetaData()

# -- control steps 1 to 7 ----------------------------------------------------------------------

tenants = Table(
    "roost_tenants",
    control,
    Column("name", String(40), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("created_at", _time, nullable=False),
)

tenant_categories = Table(
    "roost_tenant_categories",
    control,
    Column("name", String(63), primary_key=True),
    Column("description", String(1000), nullable=False),
    Column("tables", JSON, nullable=False),
)

kv_entries = Table(
    "roost_kv",
    control,
    Column("space", String(8), primary_key=True),
    Column("key", String(700), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("value", Text, nullable=False),
    Column("expires_at", Float, nullable=True, index=True),
)

queues = Table(
    "roost_queues",
    control,
    Column("name", String(300), primary_key=True),
    Column("max_deliveries", Integer, nullable=False),
)

queue_messages = Table(
    "roost_queue_messages",
    control,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("queue", String(300), nullable=False),
    Column("state", String(8), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("due_at", Float, nullable=False),
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
    control,
    Column("room", String(300), primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("max_events", Integer, nullable=True),
    Column("max_age", Integer, nullable=True),
)

stream_events = Table(
    "roost_stream_events",
    control,
    Column("room", String(300), primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("id", String(40), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("data", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("roost_stream_age", "room", "timestamp"),
)

tenant_kv_bounds = Table(
    "roost_tenant_kv_bounds",
    control,
    Column("tenant", String(40), primary_key=True),
    Column("min_ttl", Integer, nullable=True),
    Column("max_ttl", Integer, nullable=True),
)

tenant_purges = Table(
    "roost_tenant_purges",
    control,
    Column("name", String(40), primary_key=True),
    Column("started_at", _time, nullable=False),
)

# -- control step 8 ---------------------------------------------------------------------------

memberships = Table(
    "roost_memberships",
    control,
    Column("tenant", String(40), primary_key=True),
    Column("user_id", String(32), primary_key=True),
    Column("home_tenant", String(40), nullable=False),
    Column("home_user_id", String(32), nullable=False),
    Column("created_at", _time, nullable=False),
    UniqueConstraint("home_tenant", "home_user_id", "tenant", name="uq_roost_memberships_home"),
)

membership_invites = Table(
    "roost_membership_invites",
    control,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("tenant", String(40), nullable=False, index=True),
    Column("user_id", String(32), nullable=False),
    Column("created_by", String(150), nullable=False),
    Column("expires_at", _time, nullable=False),
)

tenant = MetaData()

# -- tenant step 1 -----------------------------------------------------------------------------

users = Table(
    "roost_users",
    tenant,
    Column("id", String(32), primary_key=True),
    Column("username", String(150), nullable=False, unique=True),
    Column("email", String(254), nullable=False, index=True),
    Column("password_hash", Text, nullable=False),
    Column("first_name", String(150), nullable=False),
    Column("last_name", String(150), nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("is_staff", Boolean, nullable=False),
    Column("is_superuser", Boolean, nullable=False),
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
    Column("last_login", _time, nullable=True),
)

roles = Table(
    "roost_roles",
    tenant,
    Column("name", String(64), primary_key=True),
    Column("scopes", JSON, nullable=False),
    Column("description", String(500), nullable=False),
    Column("builtin", Boolean, nullable=False),
    Column("created_at", _time, nullable=False),
)

user_roles = Table(
    "roost_user_roles",
    tenant,
    Column(
        "user_id", String(32), ForeignKey("roost_users.id", ondelete="CASCADE"), primary_key=True
    ),
    Column(
        "role", String(64), ForeignKey("roost_roles.name", ondelete="CASCADE"), primary_key=True
    ),
    Column("expires_at", _time, nullable=True),
)

sessions = Table(
    "roost_sessions",
    tenant,
    Column("id", String(32), primary_key=True),
    Column(
        "user_id",
        String(32),
        ForeignKey("roost_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("session_token_hash", String(64), nullable=True, unique=True),
    Column("created_at", _time, nullable=False),
    Column("expires_at", _time, nullable=False),
    Column("revoked_at", _time, nullable=True),
    Column("user_agent", String(400), nullable=False),
    Column("address", String(64), nullable=False),
)

refresh_tokens = Table(
    "roost_refresh_tokens",
    tenant,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "session_id",
        String(32),
        ForeignKey("roost_sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", _time, nullable=False),
    Column("used_at", _time, nullable=True),
)

api_keys = Table(
    "roost_api_keys",
    tenant,
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
    Column("created_at", _time, nullable=False),
    Column("expires_at", _time, nullable=True),
    Column("last_used_at", _time, nullable=True),
    Column("revoked_at", _time, nullable=True),
)

# -- tenant steps 3 to 13 ----------------------------------------------------------------------

idempotency_keys = Table(  # dropped by step 10
    "roost_idempotency_keys",
    tenant,
    Column("key_hash", String(64), primary_key=True),
    Column("operation", String(80), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("created_at", _time, nullable=False),
    Column("expires_at", _time, nullable=False, index=True),
)

user_tables = Table(
    "roost_tables",
    tenant,
    Column("name", String(63), primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
)

schema_migrations = Table(
    "roost_schema_migrations",
    tenant,
    Column("id", _big_id, primary_key=True, autoincrement=True),
    Column("operation", String(40), nullable=False),
    Column("table_name", String(63), nullable=False, index=True),
    Column("change", JSON, nullable=False),
    Column("applied_at", _time, nullable=False),
    Column("applied_by", String(150), nullable=False),
)

documents = Table(
    "roost_documents",
    tenant,
    Column("collection", String(63), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("data", _json, nullable=False),
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
)

audit_log = Table(
    "roost_audit",
    tenant,
    Column("id", _big_id, primary_key=True, autoincrement=True),
    Column("at", _time, nullable=False, index=True),
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
    tenant,
    Column("name", String(63), primary_key=True),
    Column("sql", Text, nullable=False),
    Column("params", JSON, nullable=False),
    Column("description", String(1000), nullable=False),
    Column("updated_at", _time, nullable=False),
)

buckets = Table(
    "roost_buckets",
    tenant,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("description", String(1000), nullable=False),
    Column("visibility", String(10), nullable=False),
    Column("max_file_size", BigInteger, nullable=True),
    Column("allowed_mime_types", JSON, nullable=False),
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
)

objects = Table(
    "roost_objects",
    tenant,
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
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
    UniqueConstraint("bucket_id", "name", name="uq_roost_objects_bucket_name"),
)

secret_keys = Table(
    "roost_secret_keys",
    tenant,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", _time, nullable=False),
)

secrets = Table(
    "roost_secrets",
    tenant,
    Column("id", String(32), primary_key=True),
    Column("app", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("secret_type", String(64), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("comment", String(1000), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
    UniqueConstraint("app", "key", name="uq_roost_secrets_app_key"),
)

secret_versions = Table(
    "roost_secret_versions",
    tenant,
    Column(
        "secret_id",
        String(32),
        ForeignKey("roost_secrets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("comment", String(1000), nullable=False),
    Column("created_at", _time, nullable=False),
    Column("created_by", String(150), nullable=False),
)

logs = Table(
    "roost_logs",
    tenant,
    Column("id", _big_id, primary_key=True, autoincrement=True),
    Column("at", _time, nullable=False, index=True),
    Column("level_no", Integer, nullable=False),
    Column("category", String(100), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", _json, nullable=True),
    Column("exception", Text, nullable=True),
    Column("source", JSON, nullable=True),
    Column("username", String(150), nullable=False),
    Index("ix_roost_logs_category_id", "category", "id"),
)

mail_templates = Table(
    "roost_mail_templates",
    tenant,
    Column("alias", String(100), primary_key=True),
    Column("subject", String(500), nullable=False),
    Column("text", Text, nullable=False),
    Column("html", Text, nullable=True),
    Column("updated_at", _time, nullable=False),
)

mail_messages = Table(
    "roost_mail",
    tenant,
    Column("id", String(32), primary_key=True),
    Column("at", _time, nullable=False, index=True),
    Column("template", String(100), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("recipients", JSON, nullable=False),
    Column("recipient_list", Text, nullable=False),
    Column("subject", String(500), nullable=False),
    Column("text", Text, nullable=False),
    Column("html", Text, nullable=True),
    Column("status", String(10), nullable=False),
    Column("error", Text, nullable=True),
)

# -- tenant steps 14 to 20 (14 and 16 add columns to roost_users) ------------------------------

user_tokens = Table(
    "roost_user_tokens",
    tenant,
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
    Column("created_at", _time, nullable=False),
    Column("expires_at", _time, nullable=False),
    Column("used_at", _time, nullable=True),
)

usage = Table(
    "roost_usage",
    tenant,
    Column("hour", _time, primary_key=True),
    Column("api_key_id", String(32), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("bytes_in", BigInteger, nullable=False),
    Column("bytes_out", BigInteger, nullable=False),
)

site_settings = Table(
    "roost_site_settings",
    tenant,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("data", JSON, nullable=False),
    Column("updated_at", _time, nullable=False),
)

pages = Table(
    "roost_pages",
    tenant,
    Column("path", String(255), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("parent", String(255), nullable=True),
    Column("scopes", JSON, nullable=False),
    Column("position", Integer, nullable=False),
    Column("created_at", _time, nullable=False),
)

custom_scopes = Table(
    "roost_scopes",
    tenant,
    Column("name", String(64), primary_key=True),
    Column("description", String(500), nullable=False),
    Column("created_at", _time, nullable=False),
)

# -- tenant step 21 (it also adds function_invocations and function_ms to roost_usage) ------

functions = Table(
    "roost_functions",
    tenant,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("app", String(64), nullable=False),
    Column("description", String(1000), nullable=False),
    Column("active_version", Integer, nullable=False),
    Column("latest_version", Integer, nullable=False),
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
    Column("created_by", String(150), nullable=False),
)

function_versions = Table(
    "roost_function_versions",
    tenant,
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
    Column("created_at", _time, nullable=False),
    Column("created_by", String(150), nullable=False),
)

function_invocations = Table(
    "roost_function_invocations",
    tenant,
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
    Column("created_at", _time, nullable=False),
    Column("started_at", _time, nullable=True),
    Column("finished_at", _time, nullable=True),
    Index("ix_roost_function_invocations_function", "function_id", "created_at"),
    Index("ix_roost_function_invocations_status", "status", "created_at"),
)

# -- tenant step 22 ----------------------------------------------------------------------------

policy_state = Table(
    "roost_policy_state",
    tenant,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", Integer, nullable=False),
    Column("globals", JSON, nullable=False),
    Column("updated_at", _time, nullable=False),
    Column("updated_by", String(150), nullable=False),
)

policies = Table(
    "roost_policies",
    tenant,
    Column("key", String(512), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("name", String(512), nullable=False),
    Column("version", String(512), nullable=False),
    Column("scope", String(512), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("document", JSON, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", _time, nullable=False),
    Column("updated_by", String(150), nullable=False),
)

policy_changes = Table(
    "roost_policy_changes",
    tenant,
    Column("id", _big_id, primary_key=True, autoincrement=True),
    Column("revision", Integer, nullable=False),
    Column("key", String(512), nullable=False),
    Column("change", String(10), nullable=False),
    Column("document", JSON, nullable=True),
    Column("at", _time, nullable=False),
    Column("by", String(150), nullable=False),
    Index("ix_roost_policy_changes_key_id", "key", "id"),
)

# -- tenant step 23 ----------------------------------------------------------------------------

policy_bindings = Table(
    "roost_policy_bindings",
    tenant,
    Column("target", String(20), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("resource_kind", String(512), nullable=False),
    Column("policy_version", String(512), nullable=False),
    Column("scope", String(512), nullable=False),
    Column("updated_at", _time, nullable=False),
    Column("updated_by", String(150), nullable=False),
)

# -- tenant step 24 ----------------------------------------------------------------------------

totp_factors = Table(
    "roost_totp_factors",
    tenant,
    Column(
        "user_id", String(32), ForeignKey("roost_users.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("secret", LargeBinary, nullable=False),
    Column("created_at", _time, nullable=False),
    Column("confirmed_at", _time, nullable=True),
    Column("last_counter", BigInteger, nullable=True),
)

recovery_codes = Table(
    "roost_recovery_codes",
    tenant,
    Column("id", String(32), primary_key=True),
    Column(
        "user_id",
        String(32),
        ForeignKey("roost_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("code_hash", String(64), nullable=False),
    Column("used_at", _time, nullable=True),
)

# -- tenant step 25 ----------------------------------------------------------------------------

auth_providers = Table(
    "roost_auth_providers",
    tenant,
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
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
)

user_identities = Table(
    "roost_user_identities",
    tenant,
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
    Column("created_at", _time, nullable=False),
)

auth_handoffs = Table(
    "roost_auth_handoffs",
    tenant,
    Column("id_hash", String(64), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("data", JSON, nullable=False),
    Column("expires_at", _time, nullable=False, index=True),
)

# -- tenant step 26 ----------------------------------------------------------------------------

passkeys = Table(
    "roost_passkeys",
    tenant,
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
    Column("created_at", _time, nullable=False),
    Column("last_used_at", _time, nullable=True),
)

# -- tenant step 27 ----------------------------------------------------------------------------

triggers = Table(
    "roost_triggers",
    tenant,
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
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
)

trigger_deliveries = Table(
    "roost_trigger_deliveries",
    tenant,
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
    Column("created_at", _time, nullable=False),
    Column("updated_at", _time, nullable=False),
    Index("ix_roost_trigger_deliveries_trigger", "trigger_id", "created_at"),
)

# -- tenant step 28 ----------------------------------------------------------------------------

trigger_outbox = Table(
    "roost_trigger_outbox",
    tenant,
    Column("id", String(80), primary_key=True),
    Column(
        "trigger_id",
        String(32),
        ForeignKey("roost_triggers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("body", Text, nullable=False),
    Column("created_at", _time, nullable=False),
)

idempotency_answers = Table(
    "roost_idempotency_answers",
    tenant,
    Column("slot", String(64), primary_key=True),
    Column("request", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)
