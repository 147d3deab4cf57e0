"""Tenant categories: templates of tables; provisioning a tenant from one creates them all."""

from __future__ import annotations

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from roost.backends.sql import CONTROL
from roost.backends.sql.tables import tenant_categories
from roost.errors import ConflictError, NotFoundError, ValidationError
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.schema import add_table, build_schema, table_from_spec, validate_references
from roost.services.tabledefs import TableDef, check_identifier
from roost.services.tenants import exclusive, forget, provision, require_platform_admin
from roost.services.tenants import get as get_tenant
from roost.wire.auth import Tenant, TenantRef
from roost.wire.common import Empty
from roost.wire.database import Category, CategorySpec, ProvisionRequest, TableSpec


@operation("tenants.create_category", scope="tenants:admin")
async def create_category(ctx: Context, params: CategorySpec) -> Category:
    """Save a template of tables (each like schema.add_table) that new tenants can start with."""
    require_platform_admin(ctx)
    name = check_identifier(params.name, "name")
    _check_tables(params.tables)
    try:
        async with ctx.platform.db.write(CONTROL) as conn:
            await conn.execute(
                tenant_categories.insert().values(
                    name=name,
                    description=params.description,
                    tables=msgspec.to_builtins(params.tables),
                )
            )
    except IntegrityError:
        raise ConflictError(f"category {name!r} exists", details={"field": "name"}) from None
    return Category(
        name=name, description=params.description, tables=[t.name for t in params.tables]
    )


@operation("tenants.categories", scope="tenants:admin", read_only=True)
async def categories(ctx: Context, params: Empty) -> list[Category]:
    """Every category."""
    require_platform_admin(ctx)
    async with ctx.platform.db.read(CONTROL) as conn:
        rows = (
            (await conn.execute(select(tenant_categories).order_by(tenant_categories.c.name)))
            .mappings()
            .all()
        )
    return [
        Category(
            name=r["name"], description=r["description"], tables=[t["name"] for t in r["tables"]]
        )
        for r in rows
    ]


@operation("schema.provision_tenant", scope="tenants:admin")
async def provision_tenant(ctx: Context, params: ProvisionRequest) -> Tenant:
    """Create a tenant with the tables of a category. If a table cannot be created, the tenant
    is removed again: it exists complete or not at all."""
    require_platform_admin(ctx)
    async with ctx.platform.db.read(CONTROL) as conn:
        found = (
            await conn.execute(
                select(tenant_categories.c.tables).where(
                    tenant_categories.c.name == params.category
                )
            )
        ).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no category named {params.category!r}", details={"field": "category"})
    tables = msgspec.convert(found, list[TableSpec])
    async with exclusive(ctx.platform, params.tenant, field="tenant"):
        if not await provision(ctx.platform, params.tenant, params.display_name):
            raise ConflictError(f"tenant {params.tenant!r} exists", details={"field": "tenant"})
        tenant_ctx = Context(platform=ctx.platform, tenant=params.tenant, principal=ctx.principal)
        try:
            for spec in tables:
                await add_table(tenant_ctx, spec)
        except BaseException:
            await forget(ctx.platform, params.tenant)
            raise
        return await get_tenant(ctx, TenantRef(name=params.tenant))


def _check_tables(specs: list[TableSpec]) -> None:
    """Each table parses and references only tables defined before it."""
    definitions: dict[str, TableDef] = {}
    for index, spec in enumerate(specs):
        try:
            definition = table_from_spec(spec)
            validate_references(definition, build_schema(definitions, "sqlite"))
        except ValidationError as exc:
            raise ValidationError(
                f"tables[{index}]: {exc.message}", details={"field": f"tables[{index}]"}
            ) from None
        if definition.name in definitions:
            raise ValidationError(
                f"table {definition.name} twice", details={"field": f"tables[{index}]"}
            )
        definitions[definition.name] = definition
