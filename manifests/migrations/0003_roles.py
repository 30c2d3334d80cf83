"""The three roles as groups: viewer (read), pusher (assemble and push), admin (registries and users)."""

from __future__ import annotations

from django.db import migrations

ROLES = {
    "viewer": [],
    "pusher": [("manifests", "push_registry")],
    "admin": [("manifests", "push_registry"), ("manifests", "add_registry"), ("manifests", "change_registry"),
              ("manifests", "delete_registry"), ("auth", "add_user"), ("auth", "change_user"),
              ("auth", "delete_user"), ("auth", "view_user")],
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set([Permission.objects.get(content_type__app_label=app, codename=codename)
                               for app, codename in perms])


class Migration(migrations.Migration):
    dependencies = [
        ("manifests", "0002_registry_push_groups"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
