"""The ``AsyncOpenSearch`` client built from the options, error translation, secret masking.

Errors are translated at the connector boundary: lost connections, timeouts, 429 and 502-504
become :class:`~headwater.core.RetryableError`, every other failure a
:class:`~headwater.core.FatalError`. Messages never carry a password or an API key: every secret
the options hold (including a password written into a host URL) is replaced by ``***``, and the
client library's exception is not chained (its text is already in the message, masked).
"""

from __future__ import annotations

import base64
from typing import Any

from headwater.connectors.base import SecretMasker, secret_values
from headwater.connectors.opensearch._options import Flavor, OpenSearchClientOptions
from headwater.core import ConnectorError, FatalError, RetryableError
from opensearchpy import AsyncOpenSearch, AsyncTransport, JSONSerializer, TransportError
from opensearchpy import ConnectionError as ClientConnectionError

__all__ = [
    "RETRYABLE_STATUS",
    "CountingSerializer",
    "Masker",
    "close_point_in_time",
    "create_client",
    "open_point_in_time",
    "status_of",
    "translate",
]

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
"""HTTP statuses (of a request or of one bulk item) that a later attempt may turn into success."""


class Masker(SecretMasker):
    """Replaces the secrets of one client's options (passwords, API key, URL passwords) in text."""

    def __init__(self, options: OpenSearchClientOptions) -> None:
        super().__init__(secret_values(options))


def _api_key_header(api_key: str) -> str:
    if ":" in api_key:
        return base64.b64encode(api_key.encode()).decode()
    return api_key


def _aws_auth(options: OpenSearchClientOptions, region: str) -> Any:
    try:
        import boto3
        from opensearchpy import AWSV4SignerAsyncAuth
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise FatalError(
            "opensearch: option 'aws_region' needs boto3: pip install "
            "'headwater-connector-opensearch[aws]'"
        ) from exc
    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise FatalError("opensearch: option 'aws_region' is set but boto3 found no credentials")
    return AWSV4SignerAsyncAuth(credentials, region, options.aws_service)


class CountingSerializer(JSONSerializer):
    """opensearch-py's JSON serializer that counts the bytes of the answers it decodes."""

    def __init__(self) -> None:
        self.bytes_read = 0

    def loads(self, s: str) -> Any:
        """Decode an answer, counting its size."""
        self.bytes_read += len(s)
        return super().loads(s)

    def take(self) -> int:
        """The bytes decoded since the last call."""
        count, self.bytes_read = self.bytes_read, 0
        return count


def create_client(
    options: OpenSearchClientOptions, serializer: JSONSerializer | None = None
) -> AsyncOpenSearch:
    """A client for ``options`` (call it on the event loop that will use it)."""
    kwargs: dict[str, Any] = {
        "hosts": list(options.hosts),
        "timeout": options.request_timeout.total_seconds(),
        "verify_certs": options.verify_certs,
        # Retries are the connector's (per bulk item, with backoff), never the transport's.
        "max_retries": 0,
        "retry_on_timeout": False,
        "transport_class": AsyncTransport,
    }
    if serializer is not None:
        kwargs["serializer"] = serializer
    if options.ca_certs is not None:
        kwargs["ca_certs"] = options.ca_certs
    if options.username is not None and options.password is not None:
        kwargs["http_auth"] = (options.username, options.password.get_secret_value())
    elif options.api_key is not None:
        header = _api_key_header(options.api_key.get_secret_value())
        kwargs["headers"] = {"authorization": f"ApiKey {header}"}
    elif options.aws_region is not None:
        kwargs["http_auth"] = _aws_auth(options, options.aws_region)
    return AsyncOpenSearch(**kwargs)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a client error (``None`` for connection errors and others)."""
    if isinstance(exc, TransportError) and isinstance(exc.status_code, int):
        return exc.status_code
    return None


def translate(exc: BaseException, what: str, mask: Masker) -> ConnectorError:
    """A headwater error for ``exc`` raised while doing ``what``, secrets masked.

    Raise it ``from None``: the client's exception may carry a URL with a password.
    """
    status = status_of(exc)
    retryable = isinstance(exc, ClientConnectionError | OSError | TimeoutError) or (
        status in RETRYABLE_STATUS
    )
    kind = RetryableError if retryable else FatalError
    return kind(mask(f"opensearch: {what} failed: {type(exc).__name__}: {exc}"))


async def open_point_in_time(
    client: AsyncOpenSearch, flavor: Flavor, index: str, keep_alive: str
) -> str:
    """Open a point in time on ``index``; its id (OpenSearch and Elasticsearch name it apart)."""
    if flavor is Flavor.ELASTICSEARCH:
        answer = await client.transport.perform_request(
            "POST", f"/{index}/_pit", params={"keep_alive": keep_alive}
        )
        return str(answer["id"])
    answer = await client.transport.perform_request(
        "POST", f"/{index}/_search/point_in_time", params={"keep_alive": keep_alive}
    )
    return str(answer["pit_id"])


async def close_point_in_time(client: AsyncOpenSearch, flavor: Flavor, pit_id: str) -> None:
    """Release a point in time (a missing one is fine: it may have expired)."""
    if flavor is Flavor.ELASTICSEARCH:
        await client.transport.perform_request("DELETE", "/_pit", body={"id": pit_id})
    else:
        await client.transport.perform_request(
            "DELETE", "/_search/point_in_time", body={"pit_id": [pit_id]}
        )
