"""Secret masking: URL passwords, SecretStr options (nested), client settings."""

from __future__ import annotations

from headwater.connectors.base import OptionsModel, SecretMasker, mask_settings, mask_url
from pydantic import SecretStr


class Auth(OptionsModel):
    """Credentials."""

    user: str = "app"
    """The user."""
    password: SecretStr | None = None
    """The password."""


class Client(OptionsModel):
    """A client's options."""

    uri: SecretStr
    """The URI (it may carry a password)."""
    hosts: tuple[str, ...] = ()
    """Hosts, perhaps with passwords."""
    auth: Auth = Auth()
    """Credentials."""


def test_mask_url_hides_the_password_only() -> None:
    assert mask_url("mongodb://app:pw@db:27017/x?authSource=admin") == (
        "mongodb://app:***@db:27017/x?authSource=admin"
    )
    assert mask_url("https://admin:p@ss@node:9200") == "https://admin:***@node:9200"
    assert mask_url("https://node:9200/") == "https://node:9200/"
    assert mask_url("amqp://guest@host/") == "amqp://guest@host/"


def test_options_masker_finds_nested_and_url_secrets() -> None:
    options = Client(
        uri=SecretStr("mongodb://u:uri%2Fpw@h/db"),
        hosts=("http://admin:hostpw@n1:9200", "n2:9200"),
        auth=Auth(password=SecretStr("s3cr3t")),
    )
    mask = options.masker()
    text = "failed: mongodb://u:uri%2Fpw@h/db uri/pw http://admin:hostpw@n1 pw=s3cr3t n2:9200"
    masked = mask(text)
    for secret in ("uri%2Fpw", "uri/pw", "hostpw", "s3cr3t"):
        assert secret not in masked
    assert "n2:9200" in masked and "admin:***@n1" in masked
    assert "s3cr3t" not in repr(options)


def test_masker_replaces_longest_secret_first() -> None:
    assert SecretMasker(["ab", "abcd"])("xabcdx ab") == "x***x ***"


def test_mask_settings_by_key() -> None:
    masked = mask_settings({"sasl_plain_password": "p", "ssl_context": object(), "acks": "all"})
    assert masked == {"sasl_plain_password": "***", "ssl_context": "***", "acks": "all"}


def test_options_errors_never_echo_the_value() -> None:
    import pytest
    from headwater.core import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"Auth: option 'user'") as caught:
        Auth(user=["hunter2"])  # type: ignore[arg-type]
    assert "hunter2" not in str(caught.value)
