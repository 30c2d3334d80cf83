from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from manifests.roles import ROLES, roles_ensure


class Command(BaseCommand):
    help = ("Give a user one role: viewer (read), pusher (assemble, push, start scans and checks), "
            "admin (also registries and users).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=list(ROLES))
        parser.add_argument("--create", action="store_true", help="create the user (no password: set one with "
                                                                   "changepassword, or use API tokens)")

    def handle(self, *args, username: str, role: str, create: bool, **options) -> None:
        model = get_user_model()
        user = model.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"no user {username!r} (use --create)")
            user = model.objects.create_user(username)
        # The groups carry exactly the permissions of manifests.roles, even in a
        # database whose groups were changed by hand or made by an older release.
        roles_ensure()
        user.groups.remove(*Group.objects.filter(name__in=ROLES))
        user.groups.add(Group.objects.get(name=role))
        user.is_staff = role == "admin"
        user.save(update_fields=["is_staff"])
        self.stdout.write(f"{username} is now {role}")
