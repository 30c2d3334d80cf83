from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from manifests.models import Registry
from manifests.services.registries import registry_realm_forget


class Command(BaseCommand):
    help = ("Forget the token realm recorded for a registry, so that its next check records the realm it names "
            "then. Only for a registry that really moved its token service: until then, jobs refuse a new realm.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")

    def handle(self, *args, **options) -> None:
        registry = Registry.objects.filter(name=options["name"]).first()
        if registry is None:
            raise CommandError(f"no registry named {options['name']!r}")
        old = registry.token_realm_origin
        registry_realm_forget(registry=registry)
        self.stdout.write(f"forgot the token realm {old or '(none recorded)'} of {registry.name}; "
                          "the next check records the one it names")
