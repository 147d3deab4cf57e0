"""User table definitions: parsing column specs, building SQLAlchemy tables, coercing values.

A column spec is what users send (Dominus form): `{"name", "type", "constraints", "default"}`
with types like `varchar(50)` or `DECIMAL(10,2)` and constraints like `"NOT NULL"`,
`"REFERENCES customers(id) ON DELETE CASCADE"` or `"CHECK (price >= 0)"`. It is parsed into a
`ColumnDef`; nothing a user sends reaches SQL as text except through sqlglot, which re-renders
a CHECK expression made only of columns, literals and a few operators.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property, lru_cache
from typing import Annotated, Any

import msgspec
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    func,
    text,
)
from sqlalchemy.types import TypeEngine

from roost.backends.sql.jsontype import json_type
from roost.errors import ValidationError
from roost.wire.database import TableSpec
from roost.wire.limits import datetime_refusal

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RESERVED_PREFIX = "roost_"
AUTO_COLUMNS = ("id", "created_at", "updated_at")

_TYPE = re.compile(
    r"^(text|varchar\(\s*(\d+)\s*\)|integer|int|bigint|(?:decimal|numeric)\(\s*(\d+)\s*,\s*(\d+)\s*\)"
    r"|boolean|bool|timestamp|timestamptz|date|uuid|json|jsonb|bytes|bytea)$"
)
_ALIASES = {"int": "integer", "bool": "boolean", "jsonb": "json", "bytea": "bytes"}
_REFERENCES = re.compile(
    r"^references\s+([a-z_][a-z0-9_]*)\s*\(\s*([a-z_][a-z0-9_]*)\s*\)"
    r"(?:\s+on\s+delete\s+(cascade|set null|restrict|no action))?$"
)
_CHECK = re.compile(r"^check\s*\((.*)\)$", re.DOTALL | re.IGNORECASE)


@lru_cache(maxsize=1)
def _check_nodes() -> tuple[type[Any], ...]:
    # sqlglot is imported on first use, not at import: a server whose tables have no CHECK
    # never pays its import (a tenth of a second) at start-up
    from sqlglot import exp

    return (
        exp.Column,
        exp.Identifier,
        exp.Literal,
        exp.Boolean,
        exp.Null,
        exp.Paren,
        exp.Tuple,
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.And,
        exp.Or,
        exp.Not,
        exp.In,
        exp.Between,
        exp.Is,
        exp.Length,
        exp.Neg,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
    )


def check_identifier(name: str, field_name: str) -> str:
    """`name` if it is a valid user identifier, else a ValidationError naming the field."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ValidationError(
            f"{field_name} {str(name)[:80]!r} is not a valid name: use lower-case letters, digits "
            "and _, starting with a letter or _, at most 63 characters",
            details={"field": field_name},
        )
    if name.startswith(RESERVED_PREFIX):
        raise ValidationError(
            f"{field_name} may not start with {RESERVED_PREFIX!r} (reserved)",
            details={"field": field_name},
        )
    return name


class Reference(msgspec.Struct, frozen=True):
    table: str
    column: str
    on_delete: str = "no action"


class ColumnDef(msgspec.Struct, frozen=True):
    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    unique: bool = False
    default: str | None = None  # "now()", "uuid()", or a SQL literal we rendered ourselves
    references: Reference | None = None
    check: str | None = None  # generic SQL from sqlglot, identifiers quoted
    autoincrement: bool = False


class IndexDef(msgspec.Struct, frozen=True):
    name: str
    columns: tuple[str, ...]
    unique: bool = False


class TableDef(msgspec.Struct, frozen=True, dict=True):
    name: str
    columns: tuple[ColumnDef, ...]
    indexes: tuple[IndexDef, ...] = ()
    secure: bool = False
    timestamps: bool = True

    @cached_property
    def by_name(self) -> dict[str, ColumnDef]:
        return {c.name: c for c in self.columns}

    def column(self, name: str) -> ColumnDef | None:
        return self.by_name.get(name)

    def require_column(self, name: str, field_name: str = "field") -> ColumnDef:
        found = self.column(name) if isinstance(name, str) else None
        if found is None:
            raise ValidationError(
                f"table {self.name!r} has no column {str(name)[:80]!r}; it has "
                f"{', '.join(c.name for c in self.columns)}",
                details={"field": field_name, "column": str(name)[:80]},
            )
        return found

    @property
    def primary_key(self) -> ColumnDef:
        return next(c for c in self.columns if c.primary_key)

    def to_json(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableDef:
        columns = tuple(
            ColumnDef(
                **{**c, "references": Reference(**c["references"]) if c["references"] else None}
            )
            for c in data["columns"]
        )
        indexes = tuple(
            IndexDef(i["name"], tuple(i["columns"]), i["unique"]) for i in data["indexes"]
        )
        return cls(data["name"], columns, indexes, data["secure"], data["timestamps"])


# -- parsing what users send ---------------------------------------------------------------


def parse_column(spec: dict[str, Any], position: str) -> ColumnDef:
    """A ColumnDef from `{"name", "type", "constraints", "default"}`; errors name `position`."""
    name = check_identifier(spec.get("name", ""), f"{position}.name")
    column_type = parse_type(spec.get("type", ""), f"{position}.type")
    column = ColumnDef(name=name, type=column_type)
    for index, constraint in enumerate(spec.get("constraints") or []):
        column = _apply_constraint(column, str(constraint), f"{position}.constraints[{index}]")
    if spec.get("default") is not None:
        column = msgspec.structs.replace(
            column, default=parse_default(spec["default"], column.type, f"{position}.default")
        )
    return column


def parse_type(value: str, field_name: str) -> str:
    normalized = " ".join(str(value).lower().split())
    match = _TYPE.match(normalized)
    if not match:
        raise ValidationError(
            f"unknown column type {str(value)[:40]!r}; use text, varchar(n), integer, bigint, "
            "decimal(p,s), boolean, timestamp, timestamptz, date, uuid, json or bytes",
            details={"field": field_name},
        )
    if match.group(2):
        length = int(match.group(2))
        if not 1 <= length <= 65535:
            raise ValidationError("varchar length must be 1-65535", details={"field": field_name})
        return f"varchar({length})"
    if match.group(3):
        precision, scale = int(match.group(3)), int(match.group(4))
        if not (1 <= precision <= 1000 and 0 <= scale <= precision):
            raise ValidationError(
                "decimal(p,s) needs 1 <= p <= 1000 and 0 <= s <= p", details={"field": field_name}
            )
        return f"decimal({precision},{scale})"
    return _ALIASES.get(normalized, normalized)


def _apply_constraint(column: ColumnDef, constraint: str, field_name: str) -> ColumnDef:
    normalized = " ".join(constraint.strip().split())
    lowered = normalized.lower()
    if lowered == "primary key":
        return msgspec.structs.replace(column, primary_key=True, nullable=False)
    if lowered == "not null":
        return msgspec.structs.replace(column, nullable=False)
    if lowered == "null":
        return column
    if lowered == "unique":
        return msgspec.structs.replace(column, unique=True)
    if match := _REFERENCES.match(lowered):
        table = check_identifier(match.group(1), field_name)
        return msgspec.structs.replace(
            column, references=Reference(table, match.group(2), match.group(3) or "no action")
        )
    if match := _CHECK.match(normalized) if lowered.startswith("check") else None:
        return msgspec.structs.replace(column, check=parse_check(match.group(1), field_name))
    raise ValidationError(
        f"unknown constraint {constraint[:80]!r}; use PRIMARY KEY, NOT NULL, UNIQUE, "
        "REFERENCES table(column) [ON DELETE CASCADE|SET NULL|RESTRICT|NO ACTION] or CHECK (...)",
        details={"field": field_name},
    )


def parse_check(expression: str, field_name: str) -> str:
    """A CHECK expression re-rendered by sqlglot, if it holds only safe parts."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(expression)
    except sqlglot.errors.ParseError:
        raise ValidationError(
            f"cannot parse CHECK ({expression[:80]})", details={"field": field_name}
        ) from None
    for node in tree.walk():
        if not isinstance(node, _check_nodes()):
            raise ValidationError(
                f"CHECK may use columns, literals, comparisons, AND/OR/NOT, IN, BETWEEN, IS, "
                f"LENGTH and arithmetic; not {type(node).__name__}",
                details={"field": field_name},
            )
        if isinstance(node, exp.Column):
            check_identifier(node.name, field_name)
    return tree.sql(identify=True)


def check_columns(expression: str) -> set[str]:
    import sqlglot
    from sqlglot import exp

    return {column.name for column in sqlglot.parse_one(expression).find_all(exp.Column)}


def parse_default(value: Any, column_type: str, field_name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text_value = str(value).strip()
    lowered = text_value.lower()
    if lowered in ("now()", "current_timestamp"):
        if not column_type.startswith(("timestamp", "date")):
            raise ValidationError(
                "NOW() is a default for timestamp and date columns", details={"field": field_name}
            )
        return "now()"
    if lowered in ("gen_random_uuid()", "uuid()", "uuid_generate_v4()"):
        return "uuid()"
    if lowered in ("true", "false", "null"):
        return lowered
    if re.fullmatch(r"-?\d+(\.\d+)?", text_value):
        return text_value
    if len(text_value) >= 2 and text_value[0] == text_value[-1] == "'":
        inner = text_value[1:-1]
        if "'" in inner.replace("''", ""):
            raise ValidationError(
                "a quote inside a default must be doubled ('')", details={"field": field_name}
            )
        return text_value
    raise ValidationError(
        f"default {text_value[:60]!r} is not a literal; use a number, 'quoted text', TRUE, "
        "FALSE, NULL, NOW() or gen_random_uuid()",
        details={"field": field_name},
    )


def with_platform_columns(columns: list[ColumnDef], timestamps: bool) -> tuple[ColumnDef, ...]:
    """Add `id` (when no primary key is given) and `created_at`/`updated_at` (unless told not)."""
    result = list(columns)
    if not any(c.primary_key for c in result):
        if any(c.name == "id" for c in result):
            raise ValidationError(
                "a column named id must be the PRIMARY KEY", details={"field": "columns"}
            )
        result.insert(
            0, ColumnDef("id", "bigint", nullable=False, primary_key=True, autoincrement=True)
        )
    if timestamps:
        for name in ("created_at", "updated_at"):
            if not any(c.name == name for c in result):
                result.append(ColumnDef(name, "timestamptz", nullable=False, default="now()"))
    return tuple(result)


# -- SQLAlchemy tables ----------------------------------------------------------------------


class TimestampTZ(TypeDecorator[datetime]):
    """An aware datetime: timestamptz on PostgreSQL, UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)


class DecimalType(TypeDecorator[Decimal]):
    """NUMERIC(p,s): exact on PostgreSQL; on SQLite stored as REAL and read back quantized to
    the scale (exact up to 15 significant digits, SQLite's own limit)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=False))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        return float(value) if value is not None and dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(repr(value)).quantize(Decimal(1).scaleb(-self.scale))


def sa_type(column_type: str) -> TypeEngine[Any]:
    if column_type.startswith("varchar("):
        return String(int(column_type[8:-1]))
    if column_type.startswith("decimal("):
        precision, scale = column_type[8:-1].split(",")
        return DecimalType(int(precision), int(scale))
    simple: dict[str, TypeEngine[Any]] = {
        "text": Text(),
        "integer": Integer(),
        "bigint": BigInteger().with_variant(Integer(), "sqlite"),
        "boolean": Boolean(),
        "timestamp": DateTime(),
        "timestamptz": TimestampTZ(),
        "date": Date(),
        "uuid": Uuid(),
        "json": json_type(),
        "bytes": LargeBinary(),
    }
    return simple[column_type]


def build_table(definition: TableDef, metadata: MetaData, dialect: str) -> Table:
    """The SQLAlchemy table of a definition (referenced tables must be in `metadata` too)."""
    columns = [_build_column(c, dialect) for c in definition.columns]
    table = Table(definition.name, metadata, *columns)
    for index in definition.indexes:
        parts: list[Any] = [table.c[name] for name in index.columns]
        if dialect == "postgresql":  # NULL sorts first in queries; the index matches that
            parts = [part.asc().nulls_first() for part in parts]
        Index(index.name, *parts, unique=index.unique)
    return table


def _build_column(column: ColumnDef, dialect: str) -> Column[Any]:
    args: list[Any] = []
    if column.references:
        ref = column.references
        args.append(
            ForeignKey(
                f"{ref.table}.{ref.column}",
                ondelete=None if ref.on_delete == "no action" else ref.on_delete.upper(),
            )
        )
    if column.check:
        import sqlglot

        rendered = sqlglot.transpile(
            column.check, write="postgres" if dialect == "postgresql" else "sqlite", identify=True
        )[0]
        args.append(CheckConstraint(text(rendered), name=f"ck_{column.name}"[:63]))
    return Column(
        column.name,
        sa_type(column.type),
        *args,
        primary_key=column.primary_key,
        nullable=column.nullable,
        unique=column.unique or None,
        autoincrement=column.autoincrement if column.primary_key else "auto",
        server_default=_server_default(column),
        default=_app_default(column),
    )


def _server_default(column: ColumnDef) -> Any:
    if column.default is None or column.default == "uuid()":
        return None
    if column.default == "now()":
        return func.current_timestamp()
    if column.default == "null":
        return None
    return text(column.default)


def _app_default(column: ColumnDef) -> Any:
    if column.default == "uuid()":
        return uuid.uuid4
    if column.default == "now()":
        return lambda: (
            datetime.now(UTC)
            if column.type == "timestamptz"
            else datetime.now(UTC).replace(tzinfo=None)
        )
    return None


# -- values from the wire -------------------------------------------------------------------


class Coercer(msgspec.Struct):
    """Turns JSON/MessagePack values into the Python values a column binds."""

    table: TableDef

    def value(self, column: ColumnDef, value: Any, field_name: str) -> Any:
        if value is None:
            if not column.nullable and not column.autoincrement:
                raise ValidationError(
                    f"{self.table.name}.{column.name} may not be null",
                    details={"field": field_name},
                )
            return None
        try:
            result = msgspec.convert(value, _python_type(column.type))
        except msgspec.ValidationError as exc:
            raise ValidationError(
                f"{self.table.name}.{column.name} ({column.type}): {exc}".replace(" - at `$`", ""),
                details={"field": field_name},
            ) from None
        if column.type.startswith("decimal("):
            _check_decimal(result, column, field_name)
        if isinstance(result, datetime) and result.tzinfo and (why := datetime_refusal(result)):
            raise ValidationError(
                f"{self.table.name}.{column.name} ({column.type}): {why}",
                details={"field": field_name},
            )
        if column.type == "timestamp" and isinstance(result, datetime) and result.tzinfo:
            result = result.astimezone(UTC).replace(tzinfo=None)
        return result


@lru_cache(maxsize=512)
def _python_type(column_type: str) -> Any:
    """The type msgspec converts a value of a column type to (cached: msgspec compiles each
    new type, and an Annotated type built per call would be new every time)."""
    if column_type.startswith("varchar("):
        return Annotated[str, msgspec.Meta(max_length=int(column_type[8:-1]))]
    if column_type.startswith("decimal("):
        return Decimal
    return {
        "text": str,
        "integer": Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)],
        "bigint": Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)],
        "boolean": bool,
        "timestamp": datetime,
        "timestamptz": datetime,
        "date": date,
        "uuid": uuid.UUID,
        "json": Any,
        "bytes": bytes,
    }[column_type]


def _check_decimal(value: Decimal, column: ColumnDef, field_name: str) -> None:
    precision, scale = (int(x) for x in column.type[8:-1].split(","))
    try:
        quantized = value.quantize(Decimal(1).scaleb(-scale))
    except InvalidOperation:
        quantized = None
    if quantized is None or not value.is_finite() or len(quantized.as_tuple().digits) > precision:
        raise ValidationError(f"{value} does not fit {column.type}", details={"field": field_name})
    if quantized != value:
        raise ValidationError(
            f"{value} has more than {scale} decimal places ({column.type}); round it first",
            details={"field": field_name},
        )


def table_from_spec(spec: TableSpec) -> TableDef:
    """The definition of a table spec (schema.add_table), its columns and CHECKs parsed."""
    name = check_identifier(spec.name, "name")
    columns = [
        parse_column(msgspec.to_builtins(c), f"columns[{i}]") for i, c in enumerate(spec.columns)
    ]
    names = [c.name for c in columns]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise ValidationError(
            f"duplicate column {', '.join(duplicates)}", details={"field": "columns"}
        )
    if sum(c.primary_key for c in columns) > 1:
        raise ValidationError("one PRIMARY KEY column at most", details={"field": "columns"})
    definition = TableDef(
        name,
        with_platform_columns(columns, spec.timestamps),
        secure=spec.secure,
        timestamps=spec.timestamps,
    )
    for column in definition.columns:
        check_check(definition, column)
    return definition


def validate_references(definition: TableDef, definitions: dict[str, TableDef]) -> None:
    """Each REFERENCES names an existing table's primary key or unique column of a like type."""
    for column in definition.columns:
        ref = column.references
        if ref is None:
            continue
        target = definition if ref.table == definition.name else definitions.get(ref.table)
        if target is None:
            raise ValidationError(
                f"{column.name} references {ref.table}, which does not exist",
                details={"field": column.name},
            )
        target_column = target.column(ref.column)
        if target_column is None or not (target_column.primary_key or target_column.unique):
            raise ValidationError(
                f"{column.name} must reference a primary key or unique column of {ref.table}",
                details={"field": column.name},
            )
        if _kind(target_column.type) != _kind(column.type):
            raise ValidationError(
                f"{column.name} is {column.type} but {ref.table}.{ref.column} "
                f"is {target_column.type}",
                details={"field": column.name},
            )


def _kind(column_type: str) -> str:
    return "integer" if column_type in ("integer", "bigint") else column_type


def check_check(definition: TableDef, column: ColumnDef) -> None:
    """A column's CHECK names only columns of its table."""
    if column.check:
        for name in check_columns(column.check):
            definition.require_column(name, f"{column.name}.check")


def check_tables(specs: list[TableSpec]) -> None:
    """Each table parses and references only tables defined before it."""
    definitions: dict[str, TableDef] = {}
    for index, spec in enumerate(specs):
        try:
            definition = table_from_spec(spec)
            validate_references(definition, definitions)
        except ValidationError as exc:
            raise ValidationError(
                f"tables[{index}]: {exc.message}", details={"field": f"tables[{index}]"}
            ) from None
        if definition.name in definitions:
            raise ValidationError(
                f"table {definition.name} twice", details={"field": f"tables[{index}]"}
            )
        definitions[definition.name] = definition
