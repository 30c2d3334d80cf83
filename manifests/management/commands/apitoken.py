"""Issue an API key for a user, list a user's keys, or revoke one.

The key goes alone to standard output, so a script can capture it
(`KEY=$(python manage.py apitoken ci --scope push --expires 90d)`); only its
hash is stored.
"""

from __future__ import annotations

import datetime
import re

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from manifests.models import ApiToken

_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def expiry_parse(text: str) -> datetime.timedelta:
    """`90d`, `12h`, `2w`: how long a new key lives."""
    match = re.fullmatch(r"(\d{1,5})([hdw])", text.strip())
    if not match or int(match[1]) == 0:
        raise CommandError(f"--expires takes a duration such as 90d, 12h or 2w, not {text!r}")
    return datetime.timedelta(**{_UNITS[match[2]]: int(match[1])})


def _when(value: datetime.datetime | None, never: str) -> str:
    return value.isoformat(timespec="seconds") if value else never


class Command(BaseCommand):
    help = ("Print a new API key for USERNAME (shown once): --scope read (the default) or push, "
            "--expires 90d; --list shows the user's keys and their last use; --revoke PREFIX revokes one.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--scope", choices=[ApiToken.SCOPE_READ, ApiToken.SCOPE_PUSH], default=ApiToken.SCOPE_READ,
                            help="read: GET endpoints only; push: also POST /api/v1/lists and other writes")
        parser.add_argument("--expires", metavar="DURATION", default="",
                            help="the key stops working after this long: 90d, 12h, 2w (default: never)")
        parser.add_argument("--list", action="store_true", dest="show_list", help="list the user's keys: prefix, scope, state, "
                                                                "created, expires, last used")
        parser.add_argument("--revoke", metavar="PREFIX", default="",
                            help="revoke the user's token whose key starts with PREFIX (the first 12 characters)")

    def handle(self, *args, username: str, scope: str, expires: str, show_list: bool, revoke: str, **options) -> None:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        if show_list:
            for token in ApiToken.objects.filter(user=user).order_by("created_at"):
                self.stdout.write(f"{token.prefix}  {token.scope:<4}  {token.state:<7}  "
                                  f"created {_when(token.created_at, '-')}  "
                                  f"expires {_when(token.expires_at, 'never')}  "
                                  f"last used {_when(token.last_used_at, 'never')}")
            return
        if revoke:
            revoked = ApiToken.objects.filter(user=user, prefix=revoke, revoked_at__isnull=True).update(
                revoked_at=timezone.now())
            if not revoked:
                raise CommandError(f"{username!r} has no active token with prefix {revoke!r}")
            self.stdout.write(f"revoked token {revoke} of {username}")
            return
        expires_at = timezone.now() + expiry_parse(expires) if expires else None
        token, key = ApiToken.issue(user, scope=scope, expires_at=expires_at)
        self.stdout.write(key)
        self.stderr.write(f"token {token.prefix} ({scope}, expires {_when(expires_at, 'never')}) issued for "
                          f"{username}; the key is not stored and is shown only once")
