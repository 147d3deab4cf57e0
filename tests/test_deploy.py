"""The files of deploy/ parse and say what docs/deploy.md says they do.

Docker Compose checks the compose file itself (`config`, which needs no engine): docker's
compose plugin where it has one, else a standalone `docker-compose` (Debian's 1.29, which
`scripts/ensure-compose` installs for CI; the file is kept to what it and v2 both accept). The
Dockerfile is read by BuildKit's own parser (the `dockerfile` package), and checked by
`docker build --check` where docker has buildx and an engine.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import dockerfile
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ROOT = DEPLOY.parent


def _example_env() -> dict[str, str]:
    names = re.findall(r"^([A-Z_]+)=", (DEPLOY / "roost.env.example").read_text(), re.M)
    return {name: "x" * 32 for name in names}


def _answers(*command: str) -> bool:
    done = subprocess.run(command, capture_output=True, check=False, timeout=60)  # noqa: S603
    return done.returncode == 0


def _compose_command() -> list[str] | None:
    """`docker compose` where docker has the plugin, else `docker-compose`, else None."""
    docker = shutil.which("docker")
    if docker is not None and _answers(docker, "compose", "version"):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone is not None else None


COMPOSE = _compose_command()
DOCKER_ENV = {
    name: value
    for name, value in os.environ.items()
    if name in ("PATH", "HOME", "DOCKER_CONFIG", "DOCKER_HOST")
}
"""What compose may read of this environment (where its plugin is): not the variables the
compose file names, which come from the example env file alone."""
REQUIRED = bool(os.environ.get("ROOST_REQUIRE_SERVICES"))


def test_compose_runs_two_replicas_on_postgres_redis_and_s3() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    # every variable it needs is in the example env file (no surprise at `up`)
    needed = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert needed <= set(_example_env()), needed - set(_example_env())
    config = yaml.safe_load(text)
    services = config["services"]
    assert {"roost-1", "roost-2", "postgres", "redis", "minio", "proxy"} <= set(services)
    for name in ("roost-1", "roost-2"):
        env = services[name]["environment"]
        assert env["ROOST_DATABASE_URL"].startswith("postgresql://")
        assert env["ROOST_REDIS_URL"].startswith("redis://")
        assert env["ROOST_STORAGE_URL"].startswith("s3://")
        assert {"ROOST_SECRET_KEY", "ROOST_MASTER_KEY"} <= set(env)  # shared by replicas
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve().is_file()
    assert "roost-1:8787" in services["proxy"]["command"]
    assert "roost-2:8787" in services["proxy"]["command"]
    for mount in services["postgres"]["volumes"]:
        source = mount.split(":", 1)[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None, "no Docker Compose: scripts/ensure-compose installs one"
    return subprocess.run(  # noqa: S603
        [*COMPOSE, "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**DOCKER_ENV, **env},
        check=False,
        timeout=60,
    )


@pytest.mark.skipif(COMPOSE is None and not REQUIRED, reason="no docker compose here")
def test_docker_compose_accepts_the_file_and_refuses_it_without_a_secret() -> None:
    checked = _compose_config(_example_env())
    assert checked.returncode == 0, checked.stderr
    env = _example_env()
    del env["ROOST_SECRET_KEY"]
    refused = _compose_config(env)
    assert refused.returncode != 0
    assert "set ROOST_SECRET_KEY" in refused.stderr


BUILDKIT_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def test_dockerfile_copies_what_exists_and_serves() -> None:
    commands = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))
    assert commands[0].cmd == "FROM"
    assert {command.cmd for command in commands} <= BUILDKIT_INSTRUCTIONS
    stages = {c.value[2] for c in commands if c.cmd == "FROM" and len(c.value) == 3}
    sent = _build_context()
    for command in commands:
        if command.cmd != "COPY":
            continue
        copied_from = [flag for flag in command.flags if flag.startswith("--from=")]
        if copied_from:
            assert copied_from[0].removeprefix("--from=") in stages, command.original
            continue
        for source in command.value[:-1]:
            assert (ROOT / source).exists(), source
            assert source in sent, f"{source} is left out of the build context (.dockerignore)"
    by_name = {command.cmd: command for command in commands}  # the last of each
    assert by_name["EXPOSE"].value == ("8787",)
    assert by_name["USER"].value[0] != "root"
    assert by_name["ENTRYPOINT"].json
    assert by_name["ENTRYPOINT"].value == ("roost",)
    assert by_name["CMD"].json
    serve = ("serve", "--host", "0.0.0.0", "--port", "8787")  # noqa: S104 - in its container
    assert by_name["CMD"].value == serve


def _build_context() -> set[str]:
    """What of the repository root `.dockerignore` lets into the build context: it names
    what the image copies (`!name`) and leaves out everything else (`*`), so that a build
    does not send a checkout's .git, .venv or data folders to the engine."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the build context is an allowlist"
    return {line.removeprefix("!") for line in lines if line.startswith("!")}


@pytest.mark.skipif(
    shutil.which("docker") is None
    or not _answers("docker", "buildx", "version")
    or not _answers("docker", "info"),
    reason="docker build --check needs buildx and a Docker engine",
)
def test_docker_build_check_finds_nothing() -> None:
    checked = subprocess.run(  # noqa: S603
        ["docker", "build", "--check", "-f", str(DEPLOY / "Dockerfile"), str(ROOT)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_systemd_unit_parses() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "roost.service")
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    assert " serve " in unit["Service"]["ExecStart"]
    assert unit["Service"]["User"] != "root"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_deploy_docs_cover_each_file() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for name in ("Dockerfile", "compose.yaml", "roost.service", "roost.env.example"):
        assert f"deploy/{name}" in docs
