"""Issue an API key for a user, or revoke one.

The key goes alone to standard output, so a script can capture it
(`KEY=$(python manage.py apitoken ci)`); only its hash is stored.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from manifests.models import ApiToken


class Command(BaseCommand):
    help = "Print a new API key for USERNAME (shown once), or revoke that user's key with --revoke PREFIX."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--revoke", metavar="PREFIX", default="",
                            help="revoke the user's token whose key starts with PREFIX (the first 12 characters)")

    def handle(self, *args, username: str, revoke: str, **options) -> None:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        if revoke:
            revoked = ApiToken.objects.filter(user=user, prefix=revoke, revoked_at__isnull=True).update(
                revoked_at=timezone.now())
            if not revoked:
                raise CommandError(f"{username!r} has no active token with prefix {revoke!r}")
            self.stdout.write(f"revoked token {revoke} of {username}")
            return
        token, key = ApiToken.issue(user)
        self.stdout.write(key)
        self.stderr.write(f"token {token.prefix} issued for {username}; the key is not stored and is shown only once")
