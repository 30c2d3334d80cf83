"""API token scopes and expiry, the scan permission for pushers and admins, per-registry webhook tokens."""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models


def forward(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    # Written out, not read from manifests.roles: a migration keeps meaning what it meant.
    permission = apps.get_model("auth", "Permission").objects.filter(content_type__app_label="manifests")
    groups = apps.get_model("auth", "Group").objects
    for group in groups.filter(name__in=["pusher", "admin"]):
        group.permissions.add(permission.get(codename="scan_registry"))
    # Admins see API keys, their scope and last use, in the admin site, and may revoke them there.
    for group in groups.filter(name="admin"):
        group.permissions.add(*permission.filter(codename__in=["view_apitoken", "change_apitoken"]))
    # Keys issued before scopes could write: they keep doing so (revoke them
    # and issue `read` ones where a script only reads).
    apps.get_model("manifests", "ApiToken").objects.update(scope="push")


class Migration(migrations.Migration):

    dependencies = [
        ('manifests', '0006_job_heartbeat'),
        ('auth', '0012_alter_user_first_name_max_length'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='registry',
            options={'ordering': ['name'], 'permissions': [('push_registry', 'Can assemble and push lists'), ('scan_registry', 'Can start scans, registry checks and child checks')], 'verbose_name_plural': 'registries'},
        ),
        migrations.AddField(
            model_name='apitoken',
            name='expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='scope',
            field=models.CharField(choices=[('read', 'read'), ('push', 'push')], default='read', max_length=8),
        ),
        migrations.AddField(
            model_name='registry',
            name='webhook_token_hash',
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.CreateModel(
            name='WebhookEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_id', models.CharField(max_length=128)),
                ('received_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('registry', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_events', to='manifests.registry')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('registry', 'event_id'), name='webhookevent_unique')],
            },
        ),
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
