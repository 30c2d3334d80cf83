from __future__ import annotations

from django.contrib import admin

from .forms.registries import RegistryForm
from .models import ApiToken, Job, PushRecord, Registry


@admin.register(Registry)
class RegistryAdmin(admin.ModelAdmin):
    form = RegistryForm
    list_display = ("name", "url", "auth", "insecure", "last_scan_at")
    filter_horizontal = ("push_groups",)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("pk", "kind", "target", "status", "created_by", "created_at")
    list_filter = ("kind", "status")
    readonly_fields = [f.name for f in Job._meta.fields]


@admin.register(PushRecord)
class PushRecordAdmin(admin.ModelAdmin):
    list_display = ("registry", "repository", "tag", "old_digest", "new_digest", "user", "created_at")
    exclude = ("raw",)
    readonly_fields = ("registry", "repository", "tag", "old_digest", "new_digest", "media_type", "job", "user")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "prefix", "scope", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("scope",)
    readonly_fields = ("user", "prefix", "key_hash", "scope", "created_at", "last_used_at")
