"""Sign-in with OpenID Connect, through the browser, against a real provider (django-oidc-provider).

The provider runs in its own process (tests/harness/oidc.py) with its own
users and a `groups` claim; the dashboard maps that claim to a role and to
push groups at each sign-in, and keeps its local accounts.
"""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth.models import Group, Permission, User
from playwright.sync_api import Page, expect

from manifests.models import OidcIdentity, Registry
from tests.harness.oidc import OidcProvider, OidcUser

ALICE = OidcUser("alice", "alice-at-the-provider", "alice@example.com", ["dash-pushers", "team-a"])
VERA = OidcUser("vera", "vera-at-the-provider", "vera@example.com", ["dash-viewers"])
MALLORY = OidcUser("mallory", "mallory-at-the-provider", "mallory@example.com", ["somewhere-else"])


@pytest.fixture(scope="module")
def provider(live_server, tmp_path_factory):
    running = OidcProvider(tmp_path_factory.mktemp("oidc-provider"), f"{live_server.url}/oidc/callback/",
                           [ALICE, VERA, MALLORY]).start()
    yield running
    running.stop()


@pytest.fixture
def oidc_settings(provider, settings, transactional_db):
    # The role groups of migration 0003: a transactional test before this one flushed them.
    for name, perms in importlib.import_module("manifests.migrations.0003_roles").ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set([Permission.objects.get(content_type__app_label=app, codename=codename)
                               for app, codename in perms])
    for name, value in provider.settings().items():
        setattr(settings, name, value)
    settings.OIDC_PROVIDER_NAME = "Test IdP"
    settings.OIDC_ROLE_MAP = "dash-admins=admin,dash-pushers=pusher,dash-viewers=viewer"
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "manifests.oidc.RoleMappingBackend"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings


def _sign_in_at_provider(page: Page, live_server, user: OidcUser) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in at the provider").click()


@pytest.mark.django_db(transaction=True)
def test_oidc_sign_in_maps_the_groups_claim_to_a_role_and_push_groups(page: Page, live_server, oidc_settings):
    # A local account with the provider user's name stays that person's.
    local = User.objects.create_user("alice", password="local-alice-password")
    team_a = Group.objects.create(name="team-a")
    guarded = Registry.objects.create(name="guarded", url="http://127.0.0.1:9", insecure=True)
    guarded.push_groups.add(team_a)

    _sign_in_at_provider(page, live_server, ALICE)
    page.wait_for_url(f"{live_server.url}/")
    expect(page.get_by_role("button", name="Log out").or_(page.get_by_role("link", name="Log out"))).to_be_visible()

    identity = OidcIdentity.objects.select_related("user").get()
    user = identity.user
    assert user.pk != local.pk and user.username == "alice-2"
    assert not user.has_usable_password()
    assert set(user.groups.values_list("name", flat=True)) == {"pusher", "team-a"}
    assert guarded.can_push(User.objects.get(pk=user.pk))
    local.refresh_from_db()
    assert local.check_password("local-alice-password") and not local.groups.exists()


@pytest.mark.django_db(transaction=True)
def test_oidc_sign_in_again_follows_the_claim_and_a_user_without_a_role_is_refused(browser, page: Page,
                                                                                   live_server, oidc_settings):
    _sign_in_at_provider(page, live_server, VERA)
    page.wait_for_url(f"{live_server.url}/")
    vera = User.objects.get(oidc_identity__subject__isnull=False, email=VERA.email)
    assert list(vera.groups.values_list("name", flat=True)) == ["viewer"] and not vera.is_staff

    context = browser.new_context()
    other = context.new_page()
    try:
        _sign_in_at_provider(other, live_server, MALLORY)
        other.wait_for_url(f"{live_server.url}/login/**")
        expect(other.get_by_text("has no role here")).to_be_visible()
    finally:
        context.close()
    assert not User.objects.filter(email=MALLORY.email).exists()


@pytest.mark.django_db(transaction=True)
def test_local_accounts_still_log_in_beside_oidc(page: Page, live_server, oidc_settings):
    User.objects.create_superuser("local-admin", "local@example.com", "local-admin-password")
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("local-admin")
    page.get_by_label("Password").fill("local-admin-password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
