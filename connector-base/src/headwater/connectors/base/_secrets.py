"""Secret masking in one place: passwords in URLs, secret option values, secret client settings.

Options keep secrets as pydantic ``SecretStr`` (their ``str`` and ``repr`` show ``**********``);
what a connector prints (errors from a client, logs) goes through a :class:`SecretMasker` built
from its options with :meth:`OptionsModel.masker`, or through :func:`mask_url` and
:func:`mask_settings`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretStr

__all__ = ["MASK", "SecretMasker", "mask_settings", "mask_url", "secret_values"]

MASK = "***"
"""What a secret is replaced with."""

_SECRET_KEY = re.compile(
    r"pass|secret|token|credential|oauth|ssl_context|private|api_key|access_key", re.IGNORECASE
)


def mask_url(url: str) -> str:
    """``url`` with the password of its user information replaced by ``***``.

    ``mongodb://app:pw@host/db`` becomes ``mongodb://app:***@host/db``; a URL without a
    password (or not a URL) is returned unchanged.
    """
    scheme, separator, rest = url.rpartition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, address = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{separator}{user}:{MASK}@{address}{slash}{path}"


def mask_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (client keyword arguments) with the values of secret keys masked.

    A key is secret when it names a password, secret, token, credential, OAuth setting, TLS
    context, private or API/access key (``sasl_plain_password``, ``ssl_context``, ``api_key``).
    """
    return {k: (MASK if _SECRET_KEY.search(k) else v) for k, v in settings.items()}


def _url_password(text: str) -> Iterator[str]:
    """The password of a URL (``scheme://user:pw@host``) or of ``user:pw@host:port``."""
    if "@" not in text:
        return
    try:
        password = urlsplit(text if "://" in text else f"//{text}").password
    except ValueError:
        return
    if password:
        yield password
        yield unquote(password)


def secret_values(value: Any) -> Iterator[str]:
    """The secrets inside ``value``: ``SecretStr`` values and the passwords of URLs, recursively.

    Walks pydantic models (every field), mappings (values), and lists, tuples and sets.
    """
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if secret:
            yield secret
            yield from _url_password(secret)
    elif isinstance(value, str):
        yield from _url_password(value)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secret_values(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from secret_values(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from secret_values(item)


class SecretMasker:
    """Replaces known secrets in any text with ``***`` (longest first).

    Example::

        mask = SecretMasker(["s3cr3t"])
        mask("login failed for app:s3cr3t")  # 'login failed for app:***'
    """

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text
