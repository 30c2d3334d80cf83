"""The three roles as groups, in one place: the migrations and the `role` command set them up from here.

viewer reads; pusher assembles, pushes and starts registry work (scans,
registry checks, child checks); admin also manages registries, users and
notification channels.
"""

from __future__ import annotations

SCAN = ("manifests", "scan_registry")
PUSH = ("manifests", "push_registry")

ROLES: dict[str, list[tuple[str, str]]] = {
    "viewer": [],
    "pusher": [PUSH, SCAN],
    "admin": [PUSH, SCAN, ("manifests", "add_registry"), ("manifests", "change_registry"),
              ("manifests", "delete_registry"), ("manifests", "view_apitoken"), ("manifests", "change_apitoken"),
              ("manifests", "add_channel"), ("manifests", "change_channel"), ("manifests", "delete_channel"),
              ("manifests", "view_channel"),
              ("auth", "add_user"), ("auth", "change_user"),
              ("auth", "delete_user"), ("auth", "view_user")],
}


def roles_ensure(*, group_model=None, permission_model=None) -> None:
    """Create the role groups and give each exactly its permissions (models from a migration's `apps` too)."""
    if group_model is None or permission_model is None:
        from django.contrib.auth.models import Group, Permission

        group_model, permission_model = Group, Permission
    for name, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set([permission_model.objects.get(content_type__app_label=app, codename=codename)
                               for app, codename in perms])
