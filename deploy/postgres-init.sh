#!/bin/sh
# Run once by the postgres image on an empty volume: the role and database Roost runs as.
set -eu
psql -v ON_ERROR_STOP=1 -U postgres -v pw="$ROOST_DB_PASSWORD" <<'SQL'
CREATE ROLE roost LOGIN CREATEROLE PASSWORD :'pw';
CREATE DATABASE roost;
GRANT CREATE ON DATABASE roost TO roost;
SQL
