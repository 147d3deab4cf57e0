"""One person across tenants through the SDK, on SQLite and PostgreSQL: a tenant's admin
invites one of its accounts, the person accepts it signed in at home, and switches there
without signing in again; and every refusal that keeps a tenant's admins (or anyone else) out
of another tenant."""

from __future__ import annotations

import httpx
import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    SecondFactorRequired,
    ValidationError,
)
from tests.conftest import RunningServer, unique

PASSWORD = "a-long-password"


@pytest.fixture(scope="module")
def tenants(server: RunningServer, admin_token: str) -> tuple[str, str, str]:
    """Three tenants with a superuser `root` each, made once per module: making a tenant
    (its migrations) is most of what these tests would cost."""
    names = (unique("home"), unique("there"), unique("third"))
    for name, display in zip(names, ["Home", "There Inc", "Third"], strict=True):
        response = httpx.post(
            f"{server.url}/api/v1/tenants/create",
            json={
                "name": name,
                "display_name": display,
                "admin_username": "root",
                "admin_password": PASSWORD,
            },
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=60,
        )
        response.raise_for_status()
    return names


class People:
    """Two tenants, `home` and `there`, each with its superuser; `alice` signed in at home,
    and her account `alice_there` (with a role of its own, `viewer`) in the other tenant,
    not linked yet. Names are new for each test; the tenants are the module's."""

    def __init__(self, client: AsyncClient, tenants: tuple[str, str, str]) -> None:
        self.client = client
        self.home, self.there, self.third = tenants
        self.alice_name, self.alice_there = unique("alice"), unique("alice-there")
        self.viewer = unique("viewer")

    async def start(self) -> People:
        self.home_admin = await self.in_tenant(self.home).auth.sign_in_with_password(
            "root", PASSWORD
        )
        self.admin = await self.in_tenant(self.there).auth.sign_in_with_password("root", PASSWORD)
        await self.home_admin.users.create_user(self.alice_name, PASSWORD)
        await self.admin.roles.create(self.viewer, ["kv:read"])
        await self.admin.users.create_user(self.alice_there, PASSWORD, roles=[self.viewer])
        self.alice = await self.in_tenant(self.home).auth.sign_in_with_password(
            self.alice_name, PASSWORD
        )
        return self

    def in_tenant(self, tenant: str) -> AsyncClient:
        """An anonymous client of `tenant` sharing the test's connection pool (closed with
        it), as the compatibility entry points make theirs."""
        return self.client._in_tenant(tenant)

    async def link(self) -> dict[str, object]:
        invitation = await self.admin.users.invite_member(self.alice_there)
        return await self.alice.auth.accept_invitation(invitation["code"])


async def _people(client: AsyncClient, tenants: tuple[str, str, str]) -> People:
    return await People(client, tenants).start()


@pytest.mark.anyio
async def test_a_person_switches_to_a_tenant_that_invited_them_without_signing_in(
    server: RunningServer, tenants: tuple[str, str, str]
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        people = await _people(client, tenants)
        invitation = await people.admin.users.invite_member(people.alice_there, expires_in=600)
        assert (invitation["tenant"], invitation["username"]) == (people.there, people.alice_there)
        membership = await people.alice.auth.accept_invitation(invitation["code"])
        assert membership == {
            "tenant": people.there,
            "display_name": "There Inc",
            "home": False,
            "username": people.alice_there,
            "roles": [people.viewer],
        }

        there = await people.alice.auth.switch_tenant(people.there)
        who = await there.auth.whoami()
        assert (who["tenant"], who["username"], who["scopes"]) == (
            people.there,
            people.alice_there,
            ["kv:read"],
        )
        assert there.config.tenant == people.there
        assert (await people.alice.auth.whoami())["tenant"] == people.home  # left as it was
        sessions = await there.auth.list_sessions()
        assert f"switched from tenant {people.home}" in sessions[0]["user_agent"]

        mine = await people.alice.users.memberships(people.alice_name)
        assert [(m["tenant"], m["home"], m["username"], m["roles"]) for m in mine] == [
            (people.home, True, people.alice_name, ["member"]),
            (people.there, False, people.alice_there, [people.viewer]),
        ]
        # there, the account sees its own entry only; the home's names stay at home
        seen_there = await there.users.memberships(people.alice_there)
        assert seen_there == [
            {"tenant": people.home, "display_name": "Home", "home": True},
            {
                "tenant": people.there,
                "display_name": "There Inc",
                "home": False,
                "username": people.alice_there,
                "roles": [people.viewer],
            },
        ]
        # an admin of the home tenant sees where alice works, not who she is there
        by_admin = await people.home_admin.users.memberships(people.alice_name)
        assert [m.get("username") for m in by_admin] == [people.alice_name, None]


@pytest.mark.anyio
async def test_switching_is_refused_without_a_membership_and_from_anything_but_home(
    server: RunningServer, tenants: tuple[str, str, str]
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        people = await _people(client, tenants)
        with pytest.raises(AuthorizationError) as refused:
            await people.alice.auth.switch_tenant(people.there)
        assert (refused.value.code, refused.value.details["field"]) == ("not_a_member", "tenant")
        with pytest.raises(ValidationError):
            await people.alice.auth.switch_tenant(people.home)
        with pytest.raises(ValidationError):
            await people.alice.auth.switch_tenant("Not_A_Tenant")
        await people.link()

        # the member account cannot switch back, nor can its tenant's admin, who could
        # sign in as it: a tenant's admins never reach the person's home
        there = await people.alice.auth.switch_tenant(people.there)
        with pytest.raises(AuthorizationError) as refused:
            await there.auth.switch_tenant(people.home)
        assert refused.value.code == "not_a_member"
        as_account = await people.in_tenant(people.there).auth.sign_in_with_password(
            people.alice_there, PASSWORD
        )
        with pytest.raises(AuthorizationError):
            await as_account.auth.switch_tenant(people.home)
        # an API key of the home account does not switch
        key = (await people.alice.api_keys.create("ci"))["key"]
        with_key = await people.in_tenant(people.home).auth.sign_in_with_token(key, "api_key")
        with pytest.raises(AuthorizationError):
            await with_key.auth.switch_tenant(people.there)
        # a disabled account there is no way in
        await people.admin.users.update_user(people.alice_there, is_active=False)
        with pytest.raises(AuthorizationError) as refused:
            await people.alice.auth.switch_tenant(people.there)
        assert refused.value.code == "not_a_member"


@pytest.mark.anyio
async def test_only_the_tenant_itself_offers_its_accounts_and_a_code_works_once(
    server: RunningServer, tenants: tuple[str, str, str]
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        people = await _people(client, tenants)
        # the home tenant's admin cannot invite into the other tenant: their credential is
        # refused there before anything is read
        tokens = await people.in_tenant(people.home).auth.login("root", PASSWORD)
        home_root_there = await people.in_tenant(people.there).auth.sign_in_with_token(
            tokens["access"]
        )
        with pytest.raises(AuthenticationError) as wrong_tenant:
            await home_root_there.users.invite_member(people.alice_there)
        assert wrong_tenant.value.code == "wrong_tenant"
        # nor may a lesser admin there offer an account that holds more than they do
        helper_name = unique("helper")
        await people.admin.roles.create(helper_name, ["users:write", "users:read"])
        await people.admin.users.create_user(helper_name, PASSWORD, roles=[helper_name])
        helper = await people.in_tenant(people.there).auth.sign_in_with_password(
            helper_name, PASSWORD
        )
        with pytest.raises(AuthorizationError) as refused:
            await helper.users.invite_member("root")
        assert refused.value.code == "missing_scope"
        with pytest.raises(AuthorizationError):  # a plain account cannot invite at all
            await people.alice.users.invite_member(people.alice_name)

        invitation = await people.admin.users.invite_member(people.alice_there)
        bob = await people.home_admin.users.create_user(unique("bob"), PASSWORD)
        bob_client = await people.in_tenant(people.home).auth.sign_in_with_password(
            bob["username"], PASSWORD
        )
        await people.alice.auth.accept_invitation(invitation["code"])
        with pytest.raises(ValidationError) as spent:
            await bob_client.auth.accept_invitation(invitation["code"])
        assert (spent.value.code, spent.value.details["field"]) == (
            "invalid_invitation",
            "code",
        )
        with pytest.raises(ConflictError):  # linked already: no second offer
            await people.admin.users.invite_member(people.alice_there)
        for bad in ["", "rmi_x", invitation["code"] + "x", "rak_" + "a" * 40, "\x00" * 10]:
            with pytest.raises(ValidationError):
                await bob_client.auth.accept_invitation(bad)
        own = await people.home_admin.users.invite_member(bob["username"])
        with pytest.raises(ValidationError):  # an account of one's own tenant
            await people.alice.auth.accept_invitation(own["code"])
        # a member account cannot collect memberships of its own
        there = await people.alice.auth.switch_tenant(people.there)
        third = people.third
        third_admin = await people.in_tenant(third).auth.sign_in_with_password("root", PASSWORD)
        alice_third = unique("alice-third")
        await third_admin.users.create_user(alice_third, PASSWORD)
        offer = await third_admin.users.invite_member(alice_third)
        with pytest.raises(ConflictError):
            await there.auth.accept_invitation(offer["code"])
        # ... while the home account can hold several
        await people.alice.auth.accept_invitation(offer["code"])
        assert [m["tenant"] for m in await people.alice.users.memberships(people.alice_name)] == [
            people.home,
            *sorted([people.there, third]),
        ]
        # and only the person or an admin lists them
        with pytest.raises(AuthorizationError):
            await bob_client.users.memberships(people.alice_name)


@pytest.mark.anyio
async def test_ending_a_membership_signs_the_member_account_out(
    server: RunningServer, tenants: tuple[str, str, str], admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        people = await _people(client, tenants)
        await people.link()
        there = await people.alice.auth.switch_tenant(people.there)
        assert await people.admin.users.remove_membership(people.alice_there) == 1
        with pytest.raises(AuthenticationError):
            await there.auth.whoami()
        with pytest.raises(AuthorizationError):
            await people.alice.auth.switch_tenant(people.there)
        assert await people.admin.users.remove_membership(people.alice_there) == 0

        await people.link()
        there = await people.alice.auth.switch_tenant(people.there)
        await people.alice.auth.leave_tenant(people.there)
        with pytest.raises(AuthenticationError):
            await there.auth.whoami()
        with pytest.raises(NotFoundError):
            await people.alice.auth.leave_tenant(people.there)

        # a new password at home signs out the tenants switched to as well
        await people.link()
        there = await people.alice.auth.switch_tenant(people.there)
        await people.home_admin.users.update_user(people.alice_name, password="a-new-password")
        with pytest.raises(AuthenticationError):
            await there.auth.whoami()
        people.alice = await people.in_tenant(people.home).auth.sign_in_with_password(
            people.alice_name, "a-new-password"
        )
        await people.admin.users.delete_user(people.alice_there)
        assert [m["tenant"] for m in await people.alice.users.memberships(people.alice_name)] == [
            people.home
        ]
        # a tenant deleted takes its memberships with it
        platform = await client.auth.sign_in_with_token(admin_token)
        gone = unique("gone")
        await platform.tenants.create(gone, admin_username="root", admin_password=PASSWORD)
        gone_admin = await people.in_tenant(gone).auth.sign_in_with_password("root", PASSWORD)
        await gone_admin.users.create_user("alice", PASSWORD)
        offer = await gone_admin.users.invite_member("alice")
        await people.alice.auth.accept_invitation(offer["code"])
        await platform.tenants.delete(gone)
        assert [m["tenant"] for m in await people.alice.users.memberships(people.alice_name)] == [
            people.home
        ]


@pytest.mark.anyio
async def test_a_second_factor_the_other_tenant_requires_is_asked_on_switching(
    server: RunningServer, tenants: tuple[str, str, str]
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        people = await _people(client, tenants)
        await people.link()
        await people.admin.settings.update({"auth_two_factor_roles": [people.viewer]})
        with pytest.raises(SecondFactorRequired) as needed:
            await people.alice.auth.switch_tenant(people.there)
        assert needed.value.second_factor == "totp_enrolment"
