from __future__ import annotations

from django.core.management.base import BaseCommand

from manifests import crypto
from manifests.models import Registry


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored registry credential with the current key. Rotation: set CREDENTIALS_KEY to a "
        "new key and CREDENTIALS_KEYS to the old one, run this, then drop the old key."
    )

    def handle(self, *args, **options) -> None:
        count = 0
        for registry in Registry.objects.exclude(secret_encrypted=""):
            registry.secret_encrypted = crypto.rotate(registry.secret_encrypted)
            registry.save(update_fields=["secret_encrypted"])
            count += 1
        self.stdout.write(f"re-encrypted the credentials of {count} registr{'y' if count == 1 else 'ies'}")
