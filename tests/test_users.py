"""People who sign in: passwords (argon2), sessions, invitations and password resets, the partner sign-up with
its first user, the admin's users API and the `tracklane users` commands; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from tests import factories
from tests.fakes import FakeClock
from tests.servers import POSTGRES_ENV, POSTGRES_SECRETS_KEY, RunningServer, postgres_database, secrets_env, sqlite_url
from tracklane.bootstrap import Container, build
from tracklane.cli import main
from tracklane.domain.errors import Conflict, InvalidParameter, NotFound
from tracklane.domain.model import LinkKind, PartnerStatus, Role, UserStatus
from tracklane.resources.advertisers import AdvertiserCreate
from tracklane.resources.partners import PartnerCreate
from tracklane.resources.users import PartnerSignUp, UserCreate, UserUpdate
from tracklane.services.ports import Page, UserSession
from tracklane.services.users import SEEN_EVERY, UserService, hash_token
from tracklane.settings import Settings

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
#: Real argon2id with small parameters, so that the many hashes of these tests take milliseconds.
QUICK = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_serial = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def container(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """The services of a process over one migrated database per module, on SQLite and on PostgreSQL (each
    test makes people of its own); the users' service under test is built over its database."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = sqlite_url(tmp_path_factory.mktemp("users"))
        elif not os.environ.get(POSTGRES_ENV):
            pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
        else:
            url = stack.enter_context(postgres_database())
        with pytest.MonkeyPatch.context() as environment:
            for name in [n for n in os.environ if n.startswith("TRACKLANE_")]:
                environment.delenv(name)
            key = None if url.startswith("sqlite") else POSTGRES_SECRETS_KEY
            built = build(Settings(database_url=url, secrets_key=key))  # type: ignore[arg-type]
        stack.callback(built.close)
        yield built


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def users(container: Container, clock: FakeClock) -> UserService:
    return UserService(container.db, clock, lambda: secrets.token_urlsafe(32), timedelta(hours=12), QUICK)


def run(awaitable: Any) -> Any:
    return asyncio.run(_awaited(awaitable))


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def email() -> str:
    return f"person{next(_serial)}@people.example"


def stored_session(container: Container, token: str) -> UserSession | None:
    return container.db.read_now(lambda repo: repo.find_session(hash_token(token)))


def test_a_user_signs_in_has_a_session_and_signs_out(container: Container, users: UserService) -> None:
    address = email()
    user = run(
        users.create(UserCreate(email=f"  {address.upper()} ", name=" Ada ", role=Role.ADMIN, password=PASSWORD))
    )
    assert (user.email, user.name, user.status, user.last_sign_in_at) == (address, "Ada", UserStatus.ACTIVE, None)

    signed_in, token = run(users.sign_in(address.upper() + " ", PASSWORD))
    assert signed_in.user.id == user.id and signed_in.user.last_sign_in_at == NOW
    assert signed_in.expires_at == NOW + timedelta(hours=12)
    stored = stored_session(container, token)
    assert stored is not None and stored.user_id == user.id
    assert container.db.read_now(lambda repo: repo.find_session(token)) is None  # only the hash is stored

    again = run(users.session(token))
    assert again is not None
    assert (again.user.id, again.csrf_token, again.expires_at) == (user.id, signed_in.csrf_token, signed_in.expires_at)
    assert run(users.get(user.id)).last_sign_in_at == NOW

    run(users.sign_out(token))
    assert run(users.session(token)) is None
    assert run(users.session("")) is None
    assert run(users.session("no-such-token")) is None


def test_sign_in_answers_none_alike_for_every_refusal(users: UserService) -> None:
    active, invited, disabled = email(), email(), email()
    run(users.create(UserCreate(email=active, role=Role.ADMIN, password=PASSWORD)))
    run(users.create(UserCreate(email=invited, role=Role.ADMIN)))
    gone = run(users.create(UserCreate(email=disabled, role=Role.ADMIN, password=PASSWORD)))
    run(users.update(gone.id, UserUpdate(status="disabled")))

    assert run(users.sign_in(active, PASSWORD + "!")) is None  # wrong password
    assert run(users.sign_in(email(), PASSWORD)) is None  # unknown e-mail
    assert run(users.sign_in(invited, PASSWORD)) is None  # no password yet
    assert run(users.sign_in(invited, "")) is None
    assert run(users.sign_in(disabled, PASSWORD)) is None  # the right password, but disabled
    assert run(users.sign_in(active, "x" * 5000)) is None
    assert run(users.sign_in(active, PASSWORD)) is not None


def test_a_session_expires_and_is_noted_as_seen_at_most_every_five_minutes(
    container: Container, users: UserService, clock: FakeClock
) -> None:
    address = email()
    run(users.create(UserCreate(email=address, role=Role.ADMIN, password=PASSWORD)))
    _, token = run(users.sign_in(address, PASSWORD))

    clock.advance(SEEN_EVERY - timedelta(seconds=1))
    assert run(users.session(token)) is not None
    session = stored_session(container, token)
    assert session is not None and session.last_seen_at == NOW  # a pure read: nothing written

    seen = clock.advance(timedelta(seconds=1))
    assert run(users.session(token)) is not None
    session = stored_session(container, token)
    assert session is not None and session.last_seen_at == seen

    clock.advance(timedelta(hours=12) - SEEN_EVERY)  # the session's lifetime from its sign-in has passed
    assert run(users.session(token)) is None

    _, fresh = run(users.sign_in(address, PASSWORD))  # signing in again clears the expired session away
    assert stored_session(container, token) is None
    assert run(users.session(fresh)) is not None


def test_an_invitation_sets_the_first_password_once(users: UserService, clock: FakeClock) -> None:
    address = email()
    user = run(users.create(UserCreate(email=address, name="Grace", role=Role.ADMIN)))
    assert user.status is UserStatus.INVITED
    first = run(users.one_time_link(user.id, LinkKind.INVITATION))
    token = run(users.one_time_link(user.id, LinkKind.INVITATION))  # a new one voids the older one
    assert run(users.link_user(first)) is None
    assert run(users.link_user(token)).email == address

    with pytest.raises(InvalidParameter) as short:
        run(users.redeem(token, "too short"))
    assert short.value.field == "password"
    with pytest.raises(InvalidParameter) as old:
        run(users.redeem(first, PASSWORD))
    assert old.value.field == "token"

    clock.advance(timedelta(hours=71))  # an invitation is valid 72 hours
    redeemed = run(users.redeem(token, PASSWORD))
    assert redeemed.status is UserStatus.ACTIVE
    assert run(users.sign_in(address, PASSWORD)) is not None
    for used in (token, "unknown"):
        with pytest.raises(InvalidParameter) as refused:
            run(users.redeem(used, PASSWORD))
        assert refused.value.field == "token"
        assert run(users.link_user(used)) is None

    with pytest.raises(Conflict) as active:
        run(users.one_time_link(user.id, LinkKind.INVITATION))  # active users get password resets instead
    assert active.value.field == "status"
    with pytest.raises(NotFound):
        run(users.one_time_link(987654, LinkKind.PASSWORD_RESET))


def test_a_password_reset_voids_older_links_ends_sessions_and_expires(users: UserService, clock: FakeClock) -> None:
    address = email()
    user = run(users.create(UserCreate(email=address, role=Role.ADMIN, password=PASSWORD)))
    _, session = run(users.sign_in(address, PASSWORD))
    older = run(users.one_time_link(user.id, LinkKind.PASSWORD_RESET))
    newer = run(users.one_time_link(user.id, LinkKind.PASSWORD_RESET))

    with pytest.raises(InvalidParameter) as voided:
        run(users.redeem(older, "a new password 1"))
    assert voided.value.field == "token"
    run(users.redeem(newer, "a new password 2"))
    assert run(users.session(session)) is None  # every session of the user ended
    assert run(users.sign_in(address, PASSWORD)) is None
    assert run(users.sign_in(address, "a new password 2")) is not None

    late = run(users.one_time_link(user.id, LinkKind.PASSWORD_RESET))
    clock.advance(timedelta(hours=2))  # a reset link is valid 2 hours
    assert run(users.link_user(late)) is None
    with pytest.raises(InvalidParameter) as expired:
        run(users.redeem(late, "a new password 3"))
    assert expired.value.field == "token"
    assert run(users.sign_in(address, "a new password 2")) is not None


def test_disabling_a_user_ends_its_sessions_and_links(users: UserService) -> None:
    address = email()
    user = run(users.create(UserCreate(email=address, role=Role.ADMIN, password=PASSWORD)))
    _, one = run(users.sign_in(address, PASSWORD))
    _, two = run(users.sign_in(address, PASSWORD))
    reset = run(users.one_time_link(user.id, LinkKind.PASSWORD_RESET))

    assert run(users.update(user.id, UserUpdate(status="disabled"))).status is UserStatus.DISABLED
    assert run(users.session(one)) is None and run(users.session(two)) is None
    assert run(users.link_user(reset)) is None
    with pytest.raises(Conflict):
        run(users.one_time_link(user.id, LinkKind.PASSWORD_RESET))

    assert run(users.update(user.id, UserUpdate(status="active"))).status is UserStatus.ACTIVE
    assert run(users.session(one)) is None  # ended for good
    assert run(users.sign_in(address, PASSWORD)) is not None

    invited = run(users.create(UserCreate(email=email(), role=Role.ADMIN)))
    run(users.update(invited.id, UserUpdate(status="disabled")))
    assert run(users.update(invited.id, UserUpdate(status="active"))).status is UserStatus.INVITED  # no password yet


def test_users_belong_to_an_existing_owner_and_have_their_own_email(container: Container, users: UserService) -> None:
    advertiser = run(container.catalog.create_advertiser(AdvertiserCreate(name="Acme")))
    partner = run(container.catalog.create_partner(PartnerCreate(name="Deals", email=email()), PartnerStatus.ACTIVE))
    address = email()
    seller = run(users.create(UserCreate(email=address, role=Role.ADVERTISER, advertiser_id=advertiser.id)))
    assert (seller.advertiser_id, seller.partner_id) == (advertiser.id, None)
    second = run(users.create(UserCreate(email=email(), role=Role.ADVERTISER, advertiser_id=advertiser.id)))
    assert second.advertiser_id == advertiser.id  # several people per advertiser
    assert run(users.create(UserCreate(email=email(), role=Role.PARTNER, partner_id=partner.id))).partner_id

    for fields, field in (
        ({"role": Role.PARTNER}, "partner_id"),
        ({"role": Role.ADMIN, "partner_id": partner.id}, "partner_id"),
        ({"role": Role.ADVERTISER, "advertiser_id": advertiser.id, "partner_id": partner.id}, "partner_id"),
        ({"role": Role.ADMIN, "password": "short"}, "password"),
    ):
        with pytest.raises(InvalidParameter) as wrong:
            UserCreate(email=email(), **fields)
        assert wrong.value.field == field
    with pytest.raises(InvalidParameter) as missing:
        run(users.create(UserCreate(email=email(), role=Role.ADVERTISER, advertiser_id=987654)))
    assert missing.value.field == "advertiser_id"
    with pytest.raises(Conflict) as taken:
        run(users.create(UserCreate(email=address.upper(), role=Role.ADMIN)))
    assert taken.value.field == "email"
    with pytest.raises(Conflict) as taken_by_change:
        run(users.update(second.id, UserUpdate(email=address)))
    assert taken_by_change.value.field == "email"
    renamed = run(users.update(second.id, UserUpdate(name="Bob", email="BOB@people.example")))
    assert (renamed.name, renamed.email) == ("Bob", "bob@people.example")
    assert run(users.by_email(" Bob@People.example")).id == second.id
    owned = run(users.list(Page(limit=10, filters={"advertiser_id": advertiser.id})))
    assert [u.id for u in owned] == [second.id, seller.id]


def test_a_weaker_hash_is_replaced_at_sign_in(container: Container, users: UserService, clock: FakeClock) -> None:
    address = email()
    user = run(users.create(UserCreate(email=address, role=Role.ADMIN, password=PASSWORD)))
    weak = container.db.read_now(lambda repo: repo.get_password_hash(user.id))
    default = UserService(container.db, clock, lambda: secrets.token_urlsafe(32))
    assert weak is not None and PasswordHasher().check_needs_rehash(weak)
    assert run(default.sign_in(address, PASSWORD)) is not None
    strong = container.db.read_now(lambda repo: repo.get_password_hash(user.id))
    assert strong != weak and strong is not None and not PasswordHasher().check_needs_rehash(strong)
    assert run(default.sign_in(address, PASSWORD)) is not None


def test_a_partner_signs_up_with_its_first_user(container: Container, users: UserService) -> None:
    address = email()
    partner, user = run(users.sign_up_partner(PartnerSignUp(name=" Coupon Club ", email=address, password=PASSWORD)))
    assert (partner.name, partner.email, partner.status) == ("Coupon Club", address, PartnerStatus.PENDING)
    assert (user.role, user.partner_id, user.status, user.email) == (
        Role.PARTNER,
        partner.id,
        UserStatus.ACTIVE,
        address,
    )
    signed_in, _ = run(users.sign_in(address, PASSWORD))  # a pending partner's person signs in (to see its state)
    assert signed_in.user.partner_id == partner.id

    other = run(container.catalog.create_partner(PartnerCreate(name="Other", email=email()), PartnerStatus.ACTIVE))
    person = run(users.create(UserCreate(email=email(), role=Role.PARTNER, partner_id=other.id)))
    for taken in (address, other.email, person.email):
        with pytest.raises(Conflict) as refused:
            run(users.sign_up_partner(PartnerSignUp(name="Again", email=taken, password=PASSWORD)))
        assert refused.value.field == "email"
    with pytest.raises(InvalidParameter) as short:
        PartnerSignUp(name="Short", email=email(), password="123")
    assert short.value.field == "password"


# --- the API --------------------------------------------------------------------------------------------------


def _no_password_anywhere(value: Any) -> None:
    text = str(value)
    assert "password" not in text and PASSWORD not in text and "argon2" not in text, text


def test_the_admin_manages_users_and_issues_links(api: httpx.Client, server: RunningServer) -> None:
    partner = factories.partner(api)
    created = api.post("/api/v1/users", json={"email": "Ada@People.example", "name": "Ada", "role": "partner",
                                              "partner_id": partner["id"], "password": PASSWORD})  # fmt: skip
    assert created.status_code == 201, created.text
    ada = created.json()
    assert ada["email"] == "ada@people.example" and ada["status"] == "active" and ada["partner_id"] == partner["id"]
    invited = api.post("/api/v1/users", json={"email": "grace@people.example", "role": "admin"}).json()
    assert invited["status"] == "invited" and invited["name"] == ""

    listed = api.get("/api/v1/users")
    assert [u["id"] for u in listed.json()["data"]] == [invited["id"], ada["id"]]
    assert [u["id"] for u in api.get("/api/v1/users", params={"role": "partner"}).json()["data"]] == [ada["id"]]
    assert api.get("/api/v1/users", params={"status": "invited"}).json()["data"] == [invited]
    assert api.get(f"/api/v1/users/{ada['id']}").json() == ada
    changed = api.patch(f"/api/v1/users/{ada['id']}", json={"name": "Ada L."})
    assert changed.json()["name"] == "Ada L."

    link = api.post(f"/api/v1/users/{invited['id']}/invitation")
    assert link.status_code == 201, link.text
    body = link.json()
    url = urlsplit(body["url"])
    assert f"{url.scheme}://{url.netloc}" == server.base_url and url.path == "/ui/accept"
    assert parse_qs(url.query) == {"token": [body["token"]]}
    holder = asyncio.run(_awaited(server.container.users.link_user(body["token"])))
    assert holder is not None and holder.id == invited["id"]
    reset = api.post(f"/api/v1/users/{ada['id']}/password-reset")
    assert reset.status_code == 201 and reset.json()["token"] != body["token"]

    again = api.post(f"/api/v1/users/{ada['id']}/invitation")
    assert (again.status_code, again.json()["field"]) == (409, "status")
    duplicate = api.post("/api/v1/users", json={"email": "ADA@people.example", "role": "admin"})
    assert (duplicate.status_code, duplicate.json()["field"]) == (409, "email")
    for bad, field in (
        ({"email": "x@people.example", "role": "partner"}, "partner_id"),
        ({"email": "x@people.example", "role": "admin", "password": "short"}, "password"),
        ({"email": "not an address", "role": "admin"}, "email"),
        ({"email": "x@people.example", "role": "root"}, "role"),
        ({"email": "x@people.example", "role": "advertiser", "advertiser_id": 987654}, "advertiser_id"),
    ):
        refused = api.post("/api/v1/users", json=bad)
        assert (refused.status_code, refused.json()["field"]) == (400, field), refused.text
    invalid = api.patch(f"/api/v1/users/{ada['id']}", json={"status": "invited"})
    assert (invalid.status_code, invalid.json()["field"]) == (400, "status")
    assert api.get("/api/v1/users/987654").status_code == 404
    assert api.post("/api/v1/users/987654/password-reset").status_code == 404

    disabled = api.patch(f"/api/v1/users/{ada['id']}", json={"status": "disabled"})
    assert disabled.json()["status"] == "disabled"
    for answer in (created, listed, changed, disabled, api.get(f"/api/v1/users/{ada['id']}")):
        _no_password_anywhere(answer.json())


def test_only_admin_keys_reach_users(api: httpx.Client, web: httpx.Client) -> None:
    advertiser, _offer, partner = factories.program(api)
    user = api.post("/api/v1/users", json={"email": "someone@people.example", "role": "admin"}).json()
    keys = [
        api.post("/api/v1/api-keys", json={"role": "advertiser", "advertiser_id": advertiser["id"]}).json()["key"],
        api.post("/api/v1/api-keys", json={"role": "partner", "partner_id": partner["id"]}).json()["key"],
    ]
    calls = [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/users", {"email": "new@people.example", "role": "admin"}),
        ("GET", f"/api/v1/users/{user['id']}", None),
        ("PATCH", f"/api/v1/users/{user['id']}", {"status": "disabled"}),
        ("POST", f"/api/v1/users/{user['id']}/invitation", None),
        ("POST", f"/api/v1/users/{user['id']}/password-reset", None),
    ]
    for key in keys:
        for method, path, body in calls:
            denied = web.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
            assert (denied.status_code, denied.json()["error"]) == (403, "forbidden"), (method, path)
        assert web.get("/api/v1/users").status_code == 401
    assert api.get(f"/api/v1/users/{user['id']}").json() == user  # nothing changed
    assert [u["email"] for u in api.get("/api/v1/users").json()["data"]] == ["someone@people.example"]


# --- the command line -----------------------------------------------------------------------------------------


def test_the_users_commands(database_url: str) -> None:
    env = {"TRACKLANE_DATABASE_URL": database_url, "TRACKLANE_PUBLIC_URL": "https://track.example",
           **secrets_env(database_url)}  # fmt: skip
    runner = CliRunner()

    invited = runner.invoke(main, ["users", "create", "--email", "Lin@People.example", "--role", "admin"], env=env)
    assert invited.exit_code == 0, invited.output
    invitation = invited.stdout.strip()
    assert re.fullmatch(r"https://track\.example/ui/accept\?token=[\w-]+", invitation), invited.stdout
    assert "is invited" in invited.stderr

    with_password = runner.invoke(
        main, ["users", "create", "--email", "max@people.example", "--role", "admin", "--name", "Max",
               "--password-stdin"], input=PASSWORD + "\n", env=env,
    )  # fmt: skip
    assert with_password.exit_code == 0, with_password.output
    assert with_password.stdout == "" and "is active" in with_password.stderr

    listed = runner.invoke(main, ["users", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[1], r[2], r[4], r[6]) for r in rows] == [
        ("max@people.example", "admin", "active", "Max"),
        ("lin@people.example", "admin", "invited", ""),
    ]

    reset = runner.invoke(main, ["users", "reset-password", "--email", "MAX@people.example"], env=env)
    assert reset.exit_code == 0, reset.output
    token = parse_qs(urlsplit(reset.stdout.strip()).query)["token"][0]

    unknown = runner.invoke(main, ["users", "reset-password", "--email", "nobody@people.example"], env=env)
    assert unknown.exit_code == 1 and "no user has" in unknown.stderr
    no_owner = runner.invoke(main, ["users", "create", "--email", "p@people.example", "--role", "partner"], env=env)
    assert no_owner.exit_code == 2 and "partner_id" in no_owner.stderr
    short = runner.invoke(main, ["users", "create", "--email", "s@people.example", "--role", "admin",
                                 "--password-stdin"], input="short\n", env=env)  # fmt: skip
    assert short.exit_code == 2 and "password" in short.stderr

    secrets_key = env.get("TRACKLANE_SECRETS_KEY")
    container = build(Settings(database_url=database_url, secrets_key=secrets_key))  # type: ignore[arg-type]
    try:
        assert run(container.users.sign_in("max@people.example", PASSWORD)) is not None
        holder = run(container.users.link_user(token))
        assert holder is not None and holder.email == "max@people.example"
        invited_token = parse_qs(urlsplit(invitation).query)["token"][0]
        assert run(container.users.redeem(invited_token, PASSWORD)).status is UserStatus.ACTIVE
    finally:
        container.close()
