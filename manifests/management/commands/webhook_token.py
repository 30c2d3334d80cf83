"""Make a new webhook token for a registry (the old one stops working).

The token goes alone to standard output, to be put in Distribution's
`notifications` configuration; only its hash is stored.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from manifests.models import Registry


class Command(BaseCommand):
    help = "Print a new webhook token for registry NAME (shown once); the previous one stops working."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")

    def handle(self, *args, name: str, **options) -> None:
        registry = Registry.objects.filter(name=name).first()
        if registry is None:
            raise CommandError(f"no registry named {name!r}")
        self.stdout.write(registry.webhook_token_rotate())
        self.stderr.write(f"new webhook token for {name}: send it as `Authorization: Bearer <token>` to "
                          f"/hooks/registry/{name}; it is not stored and is shown only once")
