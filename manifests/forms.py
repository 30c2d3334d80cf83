from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from registry.errors import InvalidPlatform, InvalidReference
from registry.platform import Platform, platform_sort_key
from registry.reference import validate_repository

from .models import Registry


class RegistryForm(forms.ModelForm):
    """Add or edit a registry. The secret is write-only: never rendered back."""

    secret = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        label="Password or token", help_text="Leave empty to keep the stored one.")
    clear_secret = forms.BooleanField(required=False, label="Remove the stored secret")

    class Meta:
        model = Registry
        fields = ["name", "url", "auth", "username", "insecure", "ca_bundle", "watch", "required_platforms",
                  "concurrency", "push_groups"]
        widgets = {"ca_bundle": forms.Textarea(attrs={"rows": 3}), "watch": forms.Textarea(attrs={"rows": 3})}

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip().rstrip("/")
        if "://" not in url:
            url = "https://" + url
        scheme, _, rest = url.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest or "@" in rest or " " in rest:
            raise ValidationError("Give the registry's base URL, such as https://ghcr.io or http://127.0.0.1:5000.")
        return url

    def clean_watch(self) -> str:
        names = [n.strip() for n in self.cleaned_data["watch"].replace(",", "\n").splitlines() if n.strip()]
        for name in names:
            try:
                validate_repository(name)
            except InvalidReference as exc:
                raise ValidationError(str(exc)) from None
        return "\n".join(names)

    def clean_required_platforms(self) -> str:
        values = [p.strip() for p in self.cleaned_data["required_platforms"].split(",") if p.strip()]
        normalized = []
        for value in values:
            try:
                normalized.append(Platform.parse(value).normalized)
            except InvalidPlatform as exc:
                raise ValidationError(str(exc)) from None
        return ",".join(sorted(set(normalized), key=platform_sort_key))

    def clean_concurrency(self) -> int:
        value = self.cleaned_data["concurrency"]
        if not 1 <= value <= 32:
            raise ValidationError("Between 1 and 32.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        if data.get("url", "").startswith("http://") and not data.get("insecure"):
            self.add_error("insecure", "A plain http URL needs the insecure flag.")
        auth = data.get("auth")
        has_secret = bool(data.get("secret")) or (self.instance.pk and self.instance.has_secret
                                                 and not data.get("clear_secret"))
        if auth == Registry.AUTH_BASIC and not data.get("username"):
            self.add_error("username", "A username is needed for password authentication.")
        if auth in (Registry.AUTH_BASIC, Registry.AUTH_TOKEN) and not has_secret:
            self.add_error("secret", "Give the password or token.")
        return data

    def save(self, commit: bool = True) -> Registry:
        registry = super().save(commit=False)
        if self.cleaned_data.get("clear_secret") or registry.auth == Registry.AUTH_ANONYMOUS:
            registry.secret_encrypted = ""
        if self.cleaned_data.get("secret"):
            registry.set_secret(self.cleaned_data["secret"])
        if registry.auth == Registry.AUTH_ANONYMOUS:
            registry.username = ""
        if commit:
            registry.save()
            # super().save(commit=False) leaves the many-to-many fields (push
            # groups) to save_m2m, which needs the row saved first.
            self.save_m2m()
        return registry
