"""Sign-in with the team's identity provider (OpenID Connect, through mozilla-django-oidc).

Off unless OIDC_RP_CLIENT_ID is set; local accounts keep working beside it.
At every sign-in the provider's claims decide the user's role (viewer, pusher,
admin: OIDC_ROLE_MAP maps claim values to roles, the highest wins) and which
push groups the user belongs to (claim values naming a registry's push group).
A user none of whose claim values maps to a role is refused, unless
OIDC_DEFAULT_ROLE names one.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from .models import OidcIdentity

logger = logging.getLogger(__name__)

ROLES = ("viewer", "pusher", "admin")  # lowest first


def oidc_enabled() -> bool:
    return bool(settings.OIDC_RP_CLIENT_ID)


def role_map_parse(*, text: str) -> dict[str, str]:
    """'dash-admins=admin,dash-pushers=pusher' → {claim value: role}."""
    mapping = {}
    for item in text.split(","):
        if not item.strip():
            continue
        value, _, role = item.rpartition("=")
        if not value.strip() or role.strip() not in ROLES:
            raise ValueError(f"OIDC_ROLE_MAP: {item.strip()!r} is not VALUE=viewer|pusher|admin")
        mapping[value.strip()] = role.strip()
    return mapping


def _claim_values(claims: dict, name: str) -> set[str]:
    value = claims.get(name)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {str(item) for item in value}
    return set()


def role_from_claims(*, claims: dict) -> str:
    """The highest role a claim value maps to, else OIDC_DEFAULT_ROLE ('' refuses)."""
    mapping = role_map_parse(text=settings.OIDC_ROLE_MAP)
    granted = {mapping[v] for v in _claim_values(claims, settings.OIDC_ROLES_CLAIM) if v in mapping}
    for role in reversed(ROLES):
        if role in granted:
            return role
    return settings.OIDC_DEFAULT_ROLE


def _issuer() -> str:
    parts = urlsplit(settings.OIDC_OP_TOKEN_ENDPOINT)
    return f"{parts.scheme}://{parts.netloc}"


class RoleMappingBackend(OIDCAuthenticationBackend):
    """Users by the provider's `sub`; role and push groups from the claims at each sign-in."""

    def verify_claims(self, claims: dict) -> bool:
        if not claims.get("sub"):
            return False
        if not role_from_claims(claims=claims):
            logger.info("OIDC sign-in refused: no claim value maps to a role")
            if getattr(self, "request", None) is not None:
                messages.error(self.request, "Your account at the identity provider has no role here. "
                                             "Ask an administrator for access.")
            return False
        return True

    def filter_users_by_claims(self, claims: dict):
        return self.UserModel.objects.filter(oidc_identity__issuer=_issuer(), oidc_identity__subject=claims["sub"])

    def create_user(self, claims: dict):
        base = (claims.get(settings.OIDC_USERNAME_CLAIM) or claims.get("email", "").split("@")[0]
                or claims["sub"])[:140]
        username, n = base, 1
        while self.UserModel.objects.filter(username=username).exists():
            n += 1
            username = f"{base}-{n}"  # a local account of that name stays that person's
        with transaction.atomic():
            user = self.UserModel.objects.create_user(username, email=claims.get("email", ""))
            user.set_unusable_password()
            user.save(update_fields=["password"])
            OidcIdentity.objects.create(user=user, issuer=_issuer(), subject=claims["sub"])
        return self.update_user(user, claims)

    def update_user(self, user, claims: dict):
        role = role_from_claims(claims=claims)
        push_groups = Group.objects.filter(push_registries__isnull=False).distinct()
        wanted = _claim_values(claims, settings.OIDC_GROUPS_CLAIM)
        with transaction.atomic():
            user.groups.remove(*Group.objects.filter(name__in=ROLES))
            user.groups.add(Group.objects.get(name=role))
            user.groups.remove(*[g for g in push_groups if g.name not in wanted])
            user.groups.add(*[g for g in push_groups if g.name in wanted])
            user.is_staff = role == "admin"
            if claims.get("email"):
                user.email = claims["email"]
            user.save(update_fields=["is_staff", "email"])
        return user

    def get_or_create_user(self, access_token, id_token, payload):
        try:
            return super().get_or_create_user(access_token, id_token, payload)
        except Group.DoesNotExist:
            raise SuspiciousOperation("the role groups are missing: run the migrations") from None


def _only_when_enabled(view):
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("OpenID Connect sign-in is not configured")
        return view(request, *args, **kwargs)

    return wrapper


authenticate = _only_when_enabled(OIDCAuthenticationRequestView.as_view())
callback = _only_when_enabled(OIDCAuthenticationCallbackView.as_view())


def oidc_context(request: HttpRequest) -> dict:
    """For the login page: whether to offer "Sign in with <provider>"."""
    return {"oidc_provider_name": settings.OIDC_PROVIDER_NAME if oidc_enabled() else ""}
