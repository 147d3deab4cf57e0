"""The files of deploy/ parse and say what docs/deploy.md says they do. With a docker that has
the compose plugin, `docker compose config` checks the compose file itself; without one, its
YAML is read and its keys checked here."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ROOT = DEPLOY.parent


def _example_env() -> dict[str, str]:
    names = re.findall(r"^([A-Z_]+)=", (DEPLOY / "roost.env.example").read_text(), re.M)
    return {name: "x" * 32 for name in names}


def _compose_plugin() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    found = subprocess.run(  # noqa: S603
        [docker, "compose", "version"], capture_output=True, check=False, timeout=30
    )
    return found.returncode == 0


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


@pytest.mark.skipif(not _compose_plugin(), reason="no docker compose here")
def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    assert docker is not None
    checked = subprocess.run(  # noqa: S603
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", **_example_env()},
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr


def test_dockerfile_copies_what_exists_and_serves() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0].startswith("FROM ")
    for line in lines:
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert "EXPOSE 8787" in lines
    assert any(line.startswith("USER ") and line.split()[1] != "root" for line in lines)
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8787"]' in lines


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
