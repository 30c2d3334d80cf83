from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from registry.errors import InvalidReference
from registry.platform import platform_sort_key
from registry.reference import validate_repository

from ..models import Registry
from .platforms import platforms_normalize


class RegistryForm(forms.ModelForm):
    """Add or edit a registry. The secret is write-only: never rendered back."""

    # The fields only a signed-in registry needs: hidden by static/js/app.js
    # while "Anonymous" is chosen; without JavaScript they stay, and are ignored.
    CREDENTIAL_FIELDS = ("username", "secret", "clear_secret")

    secret = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        label="Password or token",
        help_text="Stored encrypted and never shown again. When editing, leave it empty to keep the stored one.")
    clear_secret = forms.BooleanField(required=False, label="Remove the stored password or token")

    class Meta:
        model = Registry
        fields = ["name", "url", "auth", "username", "insecure", "ca_bundle", "watch", "required_platforms",
                  "concurrency", "push_groups"]
        widgets = {"ca_bundle": forms.Textarea(attrs={"rows": 3}), "watch": forms.Textarea(attrs={"rows": 3})}
        labels = {
            "name": "Name",
            "url": "URL",
            "auth": "Sign-in",
            "username": "Username",
            "insecure": "Allow plain HTTP and unverified TLS (insecure)",
            "ca_bundle": "CA bundle (PEM)",
            "watch": "Repositories to watch",
            "required_platforms": "Required platforms",
            "concurrency": "Parallel requests",
            "push_groups": "Push groups",
        }
        help_texts = {
            "name": "A short name for the dashboard's addresses: letters, digits, '-' and '_'.",
            "url": "The registry's address, such as https://ghcr.io or http://127.0.0.1:5000.",
            "auth": "Anonymous for a public registry; a username and password, or a token, otherwise.",
            "username": "For a token: leave empty to send the token as it is (GHCR and Docker Hub want the "
                        "username with a personal access token as the password).",
            "insecure": "Only for a registry on your own machine or a trusted network.",
            "ca_bundle": "The certificates (PEM) of a private certificate authority that signed the registry's "
                         "certificate. Leave empty for a public certificate.",
            "watch": "One repository a line. Only needed when the registry does not list its repositories "
                     "(no catalog): Docker Hub, GHCR.",
            "required_platforms": "Platforms every tag should have, comma separated, such as "
                                  "linux/amd64,linux/arm64. The coverage page marks what is missing.",
            "concurrency": "How many requests a scan sends at once, 1 to 32.",
            "push_groups": "If any is chosen, only their members may push lists here.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not (self.instance.pk and self.instance.has_secret):
            del self.fields["clear_secret"]  # nothing stored, nothing to remove
        for name in self.CREDENTIAL_FIELDS:
            if name in self.fields:
                self.fields[name].widget.attrs["data-credential"] = ""
        self.fields["auth"].widget.attrs["data-auth-mode"] = ""

    def full_clean(self) -> None:
        super().full_clean()
        # A field in error names its messages (and its help) for screen readers.
        for name in self.errors:
            if name in self.fields:
                field_id = self[name].auto_id
                described = [f"{field_id}_error"] + ([f"{field_id}_helptext"] if self.fields[name].help_text else [])
                self.fields[name].widget.attrs["aria-describedby"] = " ".join(described)

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
        return ",".join(sorted(set(platforms_normalize(values)), key=platform_sort_key))

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

    def draft(self) -> tuple[Registry, str]:
        """(unsaved registry, the secret to test with) from valid data, for "Test connection" before saving.

        The secret is the one typed, else the stored one (unless anonymous or
        removed). Nothing is saved, and the instance being edited is untouched.
        """
        data = self.cleaned_data
        registry = Registry(name=data["name"], url=data["url"], auth=data["auth"],
                            username="" if data["auth"] == Registry.AUTH_ANONYMOUS else data.get("username", ""),
                            insecure=data.get("insecure", False), ca_bundle=data.get("ca_bundle", ""),
                            watch=data.get("watch", ""))
        secret = ""
        if data["auth"] != Registry.AUTH_ANONYMOUS:
            if data.get("secret"):
                secret = data["secret"]
            elif self.instance.pk and not data.get("clear_secret"):
                secret = self.instance.get_secret()
        return registry, secret

    def save(self, commit: bool = True) -> Registry:
        url_changed = bool(self.instance.pk) and "url" in self.changed_data
        registry = super().save(commit=False)
        # Anonymous: whatever was typed or stored is dropped, with or without
        # JavaScript (without it the credential fields stay on the page).
        if self.cleaned_data.get("clear_secret") or registry.auth == Registry.AUTH_ANONYMOUS:
            registry.secret_encrypted = ""
        if self.cleaned_data.get("secret") and registry.auth != Registry.AUTH_ANONYMOUS:
            registry.set_secret(self.cleaned_data["secret"])
        if registry.auth == Registry.AUTH_ANONYMOUS:
            registry.username = ""
        if url_changed:
            # Another address may have another token realm: the next check records it.
            registry.token_realm_origin = ""
        if commit:
            registry.save()
            # super().save(commit=False) leaves the many-to-many fields (push
            # groups) to save_m2m, which needs the row saved first.
            self.save_m2m()
        return registry
