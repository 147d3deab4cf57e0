"""The `database.*` operations: one module per part of working with a tenant's tables.

- `tables`: `database.tables` and `database.describe` (changing tables is `schema.*`, in
  `services/schema.py`, which also loads the definitions everything here reads);
- `records`: get, create, update and delete rows;
- `query`: `database.query` (tables and document collections) and `database.export`;
- `changes`: `database.subscribe`, the live feed of a table's changes, and the write path
  that feeds it;
- `filters` and `sqlerrors`: the filter language as SQL conditions, and the database's
  refusals as clear 4xx errors.
"""
