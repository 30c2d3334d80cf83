"""Encryption of registry credentials at rest (Fernet, keys from the environment)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class CredentialsUndecryptable(Exception):
    """The stored secret was encrypted with a key that is no longer configured."""


def _fernet() -> MultiFernet:
    keys = [key for key in settings.CREDENTIALS_KEYS if key]
    if not keys:
        raise ImproperlyConfigured(
            "CREDENTIALS_KEY is not set: registry credentials cannot be stored. "
            "Generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured("CREDENTIALS_KEY must be 32 url-safe base64-encoded bytes") from None


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise CredentialsUndecryptable("stored credentials cannot be decrypted with the configured keys") from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the first (newest) key."""
    if not ciphertext:
        return ""
    return _fernet().rotate(ciphertext.encode()).decode()
