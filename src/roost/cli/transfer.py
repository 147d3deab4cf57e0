"""`roost export FILE` / `roost import FILE`: a tenant's tables, rows, documents and secret
names as JSON lines, through the API of a running server (so every check of the server applies:
scopes, the key's tenant, row policies, secure tables' audit).

One JSON object a line, told apart by `kind`:

- `header`: `{"format": 1, "tenant", "roost_version", "exported_at"}`, the first line;
- `table`: `{"name", "definition"}`, the answer of `database.describe`;
- `row`: `{"table", "data"}`, after its table's line;
- `collection`: `{"name"}`, then `document`: `{"collection", "id", "data"}`;
- `secret`: `{"name"}`: names only, never values (the import lists them to be set again).

Values are encoded by msgspec (datetimes and dates ISO 8601, decimals as strings, bytes in
base64, UUIDs as strings); the server turns them back by the column's type on import.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgspec
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from roost._version import __version__
from roost.client._sync.client import Client
from roost.errors import AuthorizationError, ValidationError
from roost.wire.database import TableInfo

FORMAT = 1
BATCH = 500
_AUDIT = {"reason": "roost export/import", "actor": "roost-cli"}
_PLATFORM_COLUMNS = ("created_at", "updated_at")

progress_console = Console(stderr=True)


# -- the lines ------------------------------------------------------------------------------


class Header(msgspec.Struct, tag_field="kind", tag="header", forbid_unknown_fields=True):
    format: int
    tenant: str
    roost_version: str
    exported_at: str


class TableLine(msgspec.Struct, tag_field="kind", tag="table", forbid_unknown_fields=True):
    name: str
    definition: dict[str, Any]


class RowLine(msgspec.Struct, tag_field="kind", tag="row", forbid_unknown_fields=True):
    table: str
    data: dict[str, Any]


class CollectionLine(
    msgspec.Struct, tag_field="kind", tag="collection", forbid_unknown_fields=True
):
    name: str


class DocumentLine(msgspec.Struct, tag_field="kind", tag="document", forbid_unknown_fields=True):
    collection: str
    id: str
    data: dict[str, Any]


class SecretLine(msgspec.Struct, tag_field="kind", tag="secret", forbid_unknown_fields=True):
    name: str


Line = Header | TableLine | RowLine | CollectionLine | DocumentLine | SecretLine
_decoder = msgspec.json.Decoder(Line)
_encoder = msgspec.json.Encoder(decimal_format="string")


class Counts(msgspec.Struct):
    tables: int = 0
    rows: int = 0
    collections: int = 0
    documents: int = 0
    secrets: list[str] = msgspec.field(default_factory=list)
    secrets_skipped: bool = False

    def summary(self) -> str:
        return (
            f"{self.tables} table(s), {self.rows} row(s), {self.collections} collection(s), "
            f"{self.documents} document(s), {len(self.secrets)} secret name(s)"
        )


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed} record(s)"),
        TimeElapsedColumn(),
        console=progress_console,
        transient=True,
    )


# -- export ---------------------------------------------------------------------------------


def export_tenant(client: Client, out: IO[bytes]) -> Counts:
    """Write the tenant `client` is for to `out` as JSON lines."""
    who = client.auth.whoami()
    counts = Counts()

    def write(line: Line) -> None:
        out.write(_encoder.encode(line) + b"\n")

    write(
        Header(
            format=FORMAT,
            tenant=who["tenant"],
            roost_version=__version__,
            exported_at=datetime.now(UTC).isoformat(),
        )
    )
    definitions = [client.database.describe(t["name"]) for t in client.database.tables()]
    with _progress() as progress:
        task = progress.add_task("export", total=None)
        for definition in _referenced_first(definitions):
            name = definition["name"]
            write(TableLine(name=name, definition=definition))
            counts.tables += 1
            progress.update(task, description=f"table {name}")
            query = client.database.query(name).sort(_primary_key(definition)).page_size(BATCH)
            if definition.get("secure"):
                query = query.audited(_AUDIT["reason"], _AUDIT["actor"])
            for row in query.iter():
                write(RowLine(table=name, data=row))
                counts.rows += 1
                progress.advance(task)
        for collection in client.database.collections():
            write(CollectionLine(name=collection))
            counts.collections += 1
            progress.update(task, description=f"collection {collection}")
            documents = client.collection(collection).query().page_size(BATCH).sort("id")
            for document in documents.iter():
                data = dict(document)
                write(DocumentLine(collection=collection, id=str(data.pop("id")), data=data))
                counts.documents += 1
                progress.advance(task)
        try:
            for secret in client.secrets.iter():
                write(SecretLine(name=secret["key"]))
                counts.secrets.append(secret["key"])
        except AuthorizationError:
            counts.secrets_skipped = True
            progress_console.print(
                "secret names left out: the key has no secrets:read", highlight=False
            )
    return counts


def _primary_key(definition: dict[str, Any]) -> str:
    return str(next(c["name"] for c in definition["columns"] if c["primary_key"]))


def _referenced_first(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tables ordered so a table comes after those its columns reference (a cycle, or a
    reference to itself, keeps the rest in name order)."""
    by_name = {d["name"]: d for d in definitions}
    ordered: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(name: str, path: frozenset[str]) -> None:
        if name in seen or name in path or name not in by_name:
            return
        for column in by_name[name]["columns"]:
            if column.get("references"):
                visit(column["references"]["table"], path | {name})
        seen.add(name)
        ordered.append(by_name[name])

    for name in sorted(by_name):
        visit(name, frozenset())
    return ordered


# -- import ---------------------------------------------------------------------------------


def read_lines(path: Path) -> Iterator[tuple[int, Line]]:
    """Every line of an export, checked; ValidationError naming the first bad line."""
    header_seen = False
    tables: set[str] = set()
    collections: set[str] = set()
    with path.open("rb") as source:
        for number, raw in enumerate(source, start=1):
            if not raw.strip():
                continue
            try:
                line = _decoder.decode(raw)
            except msgspec.DecodeError as exc:
                raise ValidationError(
                    f"{path.name} line {number}: {exc}", details={"line": number}
                ) from None
            problem = None
            if not header_seen and not isinstance(line, Header):
                problem = "the first line must be the header"
            elif isinstance(line, Header):
                if header_seen:
                    problem = "a second header"
                elif line.format != FORMAT:
                    problem = f"format {line.format}; this roost reads format {FORMAT}"
                header_seen = True
            elif isinstance(line, TableLine):
                problem = _definition_problem(line)
                tables.add(line.name)
            elif isinstance(line, RowLine) and line.table not in tables:
                problem = f"a row of {line.table!r} before its table's line"
            elif isinstance(line, CollectionLine):
                collections.add(line.name)
            elif isinstance(line, DocumentLine) and line.collection not in collections:
                problem = f"a document of {line.collection!r} before its collection's line"
            if problem is not None:
                raise ValidationError(
                    f"{path.name} line {number}: {problem}", details={"line": number}
                )
            yield number, line
    if not header_seen:
        raise ValidationError(f"{path.name} is empty: no header line", details={"line": 1})


def _definition_problem(line: TableLine) -> str | None:
    """What is wrong with a table line's definition (the shape `database.describe` answers),
    if anything; the server checks the names and types themselves when it creates the table."""
    try:
        definition = msgspec.convert(line.definition, TableInfo)
    except msgspec.ValidationError as exc:
        return f"the definition of {line.name!r}: {exc}"
    if definition.name != line.name:
        return f"the definition of {line.name!r} names {definition.name!r}"
    if sum(column.primary_key for column in definition.columns) != 1:
        return f"the definition of {line.name!r} needs one primary key column"
    return None


def import_tenant(client: Client, path: Path, *, merge: bool) -> Counts:
    """Recreate an export's tables, rows and documents in the tenant `client` is for. The
    whole file is checked first, so a bad line changes nothing; a table that exists is
    refused unless `merge` (then rows are upserted by primary key, documents by id)."""
    tables = [line for _, line in read_lines(path) if isinstance(line, TableLine)]
    existing = {t["name"] for t in client.database.tables()}
    clashing = sorted(existing & {t.name for t in tables})
    if clashing and not merge:
        raise ValidationError(
            f"table(s) {', '.join(clashing)} exist already: import with --merge to upsert "
            "into them",
            details={"field": "tables"},
        )
    counts = Counts()
    pending: list[dict[str, Any]] = []
    definition: dict[str, Any] | None = None
    with _progress() as progress:
        task = progress.add_task("import", total=None)

        def flush() -> None:
            if definition is not None and pending:
                _write_rows(client, definition, pending, merge=merge)
                counts.rows += len(pending)
                progress.advance(task, len(pending))
                pending.clear()

        for _, line in read_lines(path):
            if isinstance(line, TableLine):
                flush()
                definition = line.definition
                progress.update(task, description=f"table {line.name}")
                if line.name not in existing:
                    _create_table(client, line.definition)
                counts.tables += 1
            elif isinstance(line, RowLine):
                if definition is None or line.table != definition["name"]:
                    raise ValidationError(
                        f"rows of {line.table!r} must follow its table's line",
                        details={"field": "table"},
                    )
                pending.append(_writable(definition, line.data))
                if len(pending) >= BATCH:
                    flush()
            elif isinstance(line, CollectionLine):
                flush()
                counts.collections += 1
                progress.update(task, description=f"collection {line.name}")
            elif isinstance(line, DocumentLine):
                client.collection(line.collection).set(line.id, line.data)
                counts.documents += 1
                progress.advance(task)
            elif isinstance(line, SecretLine):
                counts.secrets.append(line.name)
        flush()
    return counts


def _create_table(client: Client, definition: dict[str, Any]) -> None:
    """`schema.add_table` from what `database.describe` answered (the platform's own columns,
    `id` and the timestamps, are added back by the server as they were)."""
    timestamps = bool(definition.get("timestamps", True))
    columns = []
    for column in definition["columns"]:
        if _platform_added(column, timestamps):
            continue
        constraints: list[str] = []
        if column["primary_key"]:
            constraints.append("PRIMARY KEY")
        elif not column["nullable"]:
            constraints.append("NOT NULL")
        if column["unique"] and not column["primary_key"]:
            constraints.append("UNIQUE")
        if reference := column.get("references"):
            constraints.append(
                f"REFERENCES {reference['table']}({reference['column']}) "
                f"ON DELETE {reference['on_delete'].upper()}"
            )
        if column.get("check"):
            constraints.append(f"CHECK ({column['check']})")
        columns.append(
            {
                "name": column["name"],
                "type": column["type"],
                "constraints": constraints,
                "default": column.get("default"),
            }
        )
    client.schema.add_table(
        definition["name"],
        columns,
        timestamps=timestamps,
        secure=bool(definition.get("secure")),
    )
    have = {tuple(i["columns"]) for i in client.database.describe(definition["name"])["indexes"]}
    for index in definition.get("indexes") or []:
        if tuple(index["columns"]) not in have:
            client.schema.add_index(
                definition["name"], index["columns"], unique=index["unique"], name=index["name"]
            )


def _platform_added(column: dict[str, Any], timestamps: bool) -> bool:
    if column["name"] == "id" and column["primary_key"] and column["type"] == "bigint":
        return True
    return timestamps and column["name"] in _PLATFORM_COLUMNS and column["type"] == "timestamptz"


def _writable(definition: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A row without what the server keeps itself: created_at and updated_at of a table with
    timestamps are set anew by the importing server (it refuses them from callers)."""
    if not definition.get("timestamps"):
        return row
    return {k: v for k, v in row.items() if k not in _PLATFORM_COLUMNS}


def _write_rows(
    client: Client, definition: dict[str, Any], rows: list[dict[str, Any]], *, merge: bool
) -> None:
    """Insert a batch in one call (all or none); with `merge`, rows whose key exists update
    them instead."""
    table = definition["name"]
    secure = bool(definition.get("secure"))
    reason, actor = (_AUDIT["reason"], _AUDIT["actor"]) if secure else (None, None)
    fresh = rows
    keyed = [r for r in rows if r.get(_primary_key(definition)) is not None]
    if merge and keyed:
        key = _primary_key(definition)
        query = client.database.query(table).filter(key, "in", [r[key] for r in keyed])
        if reason and actor:
            query = query.audited(reason, actor)
        # as the file would hold them (keys compared as text: a uuid comes back a UUID), so
        # an unchanged row is left alone, its updated_at too
        found = {
            str(r[key]): msgspec.json.decode(_encoder.encode(_writable(definition, r)))
            for r in query.page_size(len(keyed)).get()
        }
        stored = [r for r in keyed if str(r[key]) in found]
        changed = [r for r in stored if found[str(r[key])] != r]
        kept = {id(r) for r in stored}
        fresh = [r for r in rows if id(r) not in kept]
        if changed:
            client.database.update(table, changed, reason=reason, actor=actor)
    if fresh:
        client.database.bulk_insert(table, fresh, reason=reason, actor=actor)
