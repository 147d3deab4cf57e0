"""What importing the server loads: start-up time is mostly imports (issue 20)."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(code: str) -> str:
    """What `code`, run in a fresh interpreter, prints (the modules it finds loaded)."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_the_server_imports_neither_sqlglot_nor_the_sdk_nor_redis() -> None:
    # sqlglot (CHECK constraints, analytics), the SDK client and redis load on first use
    code = (
        "import sys, roost.server; "
        "print(sorted(m for m in ('sqlglot', 'roost.client._async.client', 'redis') "
        "if m in sys.modules))"
    )
    assert _loaded_after(code) == "[]"


def test_serve_loads_no_library_that_only_some_requests_use() -> None:
    # what `roost serve` imports and builds before its first answer: passkeys (webauthn),
    # JSON Schema checks (jsonschema), the docs' package (jinja2), SMTP, PostgreSQL's driver,
    # requests out (httpx: webhooks, sign-in providers), the SDK, Prometheus' client, PyJWT
    # (with cryptography's x509) and TOTP load on first use, and so do SQLAlchemy's async
    # engine and the ORM it imports (SQLite's start-up and health run on the sync engines),
    # SQLAlchemy's PostgreSQL dialect, the policy engine (YAML, CEL), and cryptography (the
    # secrets vault and idempotency records); pydantic not at all (settings are Structs)
    code = (
        "import sys, roost.cli.main, roost.server; "
        "from roost.server.app import create_app; create_app(); "
        "print(sorted(m for m in ('webauthn', 'jsonschema', 'referencing', 'jinja2', "
        "'swagger_ui', 'aiosmtplib', 'asyncpg', 'httpx', 'authlib', 'prometheus_client', 'jwt', "
        "'pyotp', 'roost.client._sync.client', 'sqlalchemy.ext.asyncio', 'sqlalchemy.orm', "
        "'sqlalchemy.dialects.postgresql', 'yaml', 'roost.policy.engine', 'cryptography', 'pydantic') "
        "if m in sys.modules))"
    )
    assert _loaded_after(code) == "[]"


def test_serve_imports_no_other_command() -> None:
    # `roost serve` reads a plain command line itself: the other commands' modules (and what
    # only they use: the stored credentials' folder), Typer and rich (its errors
    # import it) are not imported
    code = (
        "import sys, roost.cli.serve; "
        "print(sorted(m for m in ('roost.cli.main', 'roost.cli.accounts', 'roost.cli.storage', "
        "'roost.cli.policies', 'roost.cli.backup', 'platformdirs', 'typer', 'rich') "
        "if m in sys.modules))"
    )
    assert _loaded_after(code) == "[]"
