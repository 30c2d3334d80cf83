from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from manifests.forms.registries import RegistryForm
from manifests.models import Registry


class Command(BaseCommand):
    help = "Create or update a registry. The password or token is read from standard input, never from argv."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("url")
        parser.add_argument("--username", default="")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password or token from standard input")
        parser.add_argument("--token", action="store_true", help="the secret is a bearer token, not a password")
        parser.add_argument("--insecure", action="store_true", help="allow plain http and unverified TLS")
        parser.add_argument("--repositories", default="", help="comma-separated repositories to watch")
        parser.add_argument("--ca-bundle", default="", help="path to a PEM file of certificates to trust")

    def handle(self, *args, **options) -> None:
        secret = sys.stdin.readline().rstrip("\r\n") if options["password_stdin"] else ""
        instance = Registry.objects.filter(name=options["name"]).first()
        if options["token"]:
            auth = Registry.AUTH_TOKEN
        elif options["username"] or secret:
            auth = Registry.AUTH_BASIC
        else:
            auth = Registry.AUTH_ANONYMOUS
        ca_bundle = ""
        if options["ca_bundle"]:
            with open(options["ca_bundle"]) as handle:
                ca_bundle = handle.read()
        form = RegistryForm(
            data={"name": options["name"], "url": options["url"], "auth": auth, "username": options["username"],
                  "secret": secret, "insecure": options["insecure"], "ca_bundle": ca_bundle,
                  "watch": options["repositories"].replace(",", "\n"),
                  "required_platforms": instance.required_platforms if instance else "linux/amd64,linux/arm64",
                  "concurrency": instance.concurrency if instance else 4},
            instance=instance,
        )
        if not form.is_valid():
            problems = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
            raise CommandError(problems)
        registry = form.save()
        verb = "updated" if instance else "created"
        self.stdout.write(f"{verb} registry {registry.name} ({registry.url}, auth {registry.auth})")
