"""The credentials a test registry knows, to check that none reaches a log."""

from __future__ import annotations

from manifests.stack.distribution import RunningRegistry


def registry_secrets(running: RunningRegistry) -> list[str]:
    """The registry's password and every bearer token its token server has issued so far."""
    _, password = running.credentials()
    tokens = list(running.token_server.issued) if running.token_server else []
    return [secret for secret in (password, *tokens) if secret]


def assert_never_logged(running: RunningRegistry, *logs: str, also: tuple[str, ...] = ()) -> None:
    """No password, token (nor any of `also`, e.g. the stored ciphertext) in any of `logs`."""
    secrets = [*registry_secrets(running), *(s for s in also if s)]
    if running.mode == "token":
        assert running.token_server.issued, "no token was issued: the check would prove nothing"
    for log in logs:
        for secret in secrets:
            assert secret not in log, f"a credential ({secret[:4]}…) reached a log"
