"""`roost policies`: push and ls against a real server; test runs Cerbos test suites in
process, and agrees with `cerbos compile` (the real binary) on which suites pass."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roost import Client
from roost.cli.main import app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, start_server
from tests.policy.cerbos import find_binary

runner = CliRunner(env={"COLUMNS": "250"})  # rich wraps long lines otherwise

DERIVED = """
apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: album_roles
  definitions:
    - name: owner
      parentRoles: [user]
      condition:
        match:
          expr: request.resource.attr.owner == request.principal.id
"""

ALBUM = """
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: "album:object"
  version: default
  importDerivedRoles: [album_roles]
  rules:
    - actions: ["*"]
      effect: EFFECT_ALLOW
      derivedRoles: [owner]
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
      name: public-view
      condition:
        match:
          expr: request.resource.attr.public == true
      output:
        when:
          ruleActivated: '"public " + R.id'
    - actions: [delete]
      effect: EFFECT_ALLOW
      roles: [moderator]
      condition:
        match:
          all:
            of:
              - expr: R.attr.flagged == true
              - expr: now() < timestamp("2030-01-01T00:00:00Z")
              - expr: G.moderation == "on"
"""

PRINCIPALS = """
principals:
  maria:
    id: mariaID
    roles: [moderator, user]
"""

SUITE = """
name: AlbumObjectTestSuite
options:
  now: "2022-08-02T15:00:00Z"
  globals:
    moderation: "on"
principals:
  alicia: {id: aliciaID, roles: [user]}
  bradley: {id: bradleyID, roles: [user]}
principalGroups:
  users: {principals: [alicia, bradley]}
resources:
  alicia_private:
    id: XX125
    kind: "album:object"
    attr: {owner: aliciaID, public: false, flagged: false}
  alicia_public:
    id: XX525
    kind: "album:object"
    attr: {owner: aliciaID, public: true, flagged: false}
  flagged:
    id: XX999
    kind: "album:object"
    attr: {owner: bradleyID, public: false, flagged: true}
resourceGroups:
  alicias: {resources: [alicia_private, alicia_public]}
tests:
  - name: View albums
    input:
      principalGroups: [users]
      resourceGroups: [alicias]
      actions: [view, delete]
    expected:
      - principal: alicia
        resourceGroups: [alicias]
        actions: {view: EFFECT_ALLOW, delete: EFFECT_ALLOW}
      - principal: bradley
        resource: alicia_public
        actions: {view: EFFECT_ALLOW}
        outputs:
          - action: view
            expected:
              - src: "resource.album_object.vdefault#public-view"
                val: "public XX525"
  - name: Moderators delete flagged albums while moderation is on
    input:
      principals: [maria]
      resources: [flagged, alicia_private]
      actions: [delete]
    expected:
      - principal: maria
        resource: flagged
        actions: {delete: EFFECT_ALLOW}
  - name: Not while it is off
    options:
      now: "2022-08-02T15:00:00Z"
      globals: {moderation: "off"}
    input:
      principals: [maria]
      resources: [flagged]
      actions: [delete]
    expected:
      - principal: maria
        resource: flagged
        actions: {delete: EFFECT_DENY}
"""


def policy_folder(root: Path, suite: str = SUITE) -> Path:
    """The album policies and their suite, laid out as a Cerbos repository."""
    folder = root / "policies"
    (folder / "tests" / "testdata").mkdir(parents=True)
    (folder / "derived_roles.yaml").write_text(DERIVED)
    (folder / "album.yaml").write_text(ALBUM)
    (folder / "tests" / "testdata" / "principals.yaml").write_text(PRINCIPALS)
    (folder / "tests" / "album_test.yaml").write_text(suite)
    return folder


def test_a_passing_suite_prints_a_table_and_exits_0(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policies", "test", str(policy_folder(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "11 passed, 0 failed, 0 skipped, 0 could not run" in result.output
    assert "AlbumObjectTestSuite" in result.output


def test_failures_are_listed_with_why_and_exit_1(tmp_path: Path) -> None:
    wrong = SUITE.replace('val: "public XX525"', 'val: "public XX1"').replace(
        "actions: {delete: EFFECT_DENY}", "actions: {delete: EFFECT_ALLOW}"
    )
    result = runner.invoke(
        app,
        ["policies", "test", str(policy_folder(tmp_path, wrong)), "--failures-only"],
    )
    assert result.exit_code == 1, result.output
    assert "9 passed, 2 failed" in result.output
    assert 'is "public XX525", expected "public XX1"' in result.output
    assert "Not while it is off" in result.output


def test_a_suite_that_names_what_it_does_not_define_cannot_run(tmp_path: Path) -> None:
    broken = SUITE.replace(
        "principals: [maria]\n      resources: [flagged]",
        "principals: [zed]\n      resources: [flagged]",
    )
    result = runner.invoke(app, ["policies", "test", str(policy_folder(tmp_path, broken))])
    assert result.exit_code == 1
    assert "no principal 'zed'" in result.output


def test_invalid_policies_are_listed_and_exit_1(tmp_path: Path) -> None:
    folder = policy_folder(tmp_path)
    (folder / "album.yaml").write_text(
        ALBUM.replace("importDerivedRoles: [album_roles]", "importDerivedRoles: [nope]")
    )
    result = runner.invoke(app, ["policies", "test", str(folder)])
    assert result.exit_code == 1
    assert "no derivedRoles named 'nope'" in result.output


@pytest.mark.parametrize("breaks", [False, True])
def test_cerbos_compile_agrees_on_whether_the_suite_passes(tmp_path: Path, breaks: bool) -> None:
    binary = find_binary()
    if binary is None or not binary.exists():
        if os.environ.get("ROOST_REQUIRE_SERVICES"):
            pytest.fail("the Cerbos binary is required: run scripts/ensure-cerbos")
        pytest.skip("no Cerbos binary (run scripts/ensure-cerbos)")
    suite = SUITE.replace('val: "public XX525"', 'val: "public XX1"') if breaks else SUITE
    folder = policy_folder(tmp_path, suite)
    theirs = subprocess.run(  # noqa: S603 (our own binary and arguments)
        [str(binary), "compile", str(folder)], capture_output=True, timeout=60, check=False
    )
    ours = runner.invoke(app, ["policies", "test", str(folder)])
    assert (theirs.returncode == 0, ours.exit_code == 0) == (not breaks, not breaks), (
        theirs.stdout.decode() + ours.output
    )


def test_push_sends_a_folder_ls_lists_it_and_bind_guards_a_stream(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        with Client(api_url=server.url) as client:
            admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
            key = admin.api_keys.create("ci", ["policies:admin", "policies:read"])["key"]
        folder = policy_folder(tmp_path)
        common = ["--api-url", server.url, "--api-key", key]
        pushed = runner.invoke(app, ["policies", "push", str(folder), *common])
        assert pushed.exit_code == 0, pushed.output
        assert "2 created, 0 updated, 0 unchanged" in pushed.output
        again = runner.invoke(app, ["policies", "push", str(folder), *common])
        assert "0 created, 0 updated, 2 unchanged" in again.output
        listed = runner.invoke(app, ["policies", "ls", *common])
        assert listed.exit_code == 0, listed.output
        assert "resource.album_object.vdefault" in listed.output
        assert "derived_roles.album_roles" in listed.output
        (folder / "album.yaml").write_text(ALBUM.replace("R.attr.flagged", "R.attr.flagged ="))
        refused = runner.invoke(app, ["policies", "push", str(folder), *common])
        assert refused.exit_code == 2
        assert "refused (nothing changed): 1 problems" in refused.output
        assert "rules[2].condition.match.all.of[0].expr" in refused.output
        _bind_unbind_and_list(common)
    finally:
        server.stop()


def _bind_unbind_and_list(common: list[str]) -> None:
    """`roost policies bind/unbind/bindings` against the server `common` names."""
    bound = runner.invoke(
        app, ["policies", "bind", "album_object", "--stream", "photos", "--scope", "acme", *common]
    )
    assert bound.exit_code == 0, bound.output
    assert "stream photos bound to album_object (scope acme)" in bound.output
    listed = runner.invoke(app, ["policies", "bindings", *common])
    assert listed.exit_code == 0, listed.output
    assert "photos" in listed.output
    assert "album_object (scope acme)" in listed.output
    both = runner.invoke(app, ["policies", "bind", "k", "--stream", "a", "--queue", "b", *common])
    assert both.exit_code == 2
    assert "exactly one of" in both.output
    missing_table = runner.invoke(app, ["policies", "bind", "k", "--table", "nope", *common])
    assert missing_table.exit_code != 0
    assert "nope" in missing_table.output
    unbound = runner.invoke(app, ["policies", "unbind", "--stream", "photos", *common])
    assert unbound.exit_code == 0, unbound.output
    again = runner.invoke(app, ["policies", "unbind", "--stream", "photos", *common])
    assert again.exit_code != 0
    assert "not bound" in again.output
    empty = runner.invoke(app, ["policies", "bindings", *common])
    assert "nothing is bound" in empty.output
