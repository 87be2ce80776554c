"""AWS client options, client creation and error translation, for every connector that talks to AWS.

Needs boto3: ``pip install 'headwater-connector-base[aws]'`` (connector-aws and connector-files'
S3 storage use it).

Clients are built with boto3's standard credential chain (environment, shared files, container and
instance roles) unless keys are given; keys are pydantic ``SecretStr`` values, so they never show in
``repr``, logs or error messages. Retries of single calls are botocore's (``standard`` or
``adaptive`` mode); the connectors add their own retries for partial failures of batch calls.

Errors are translated at the boundary: throttling, server and connection errors become
:class:`~headwater.core.RetryableError`, the rest (a missing stream or table, access denied, a bad
request) :class:`~headwater.core.FatalError`. Messages name the connector, the operation and the
AWS error code, never the client's settings.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
from headwater.connectors.base._options import OptionsModel
from headwater.connectors.base._retry import ErrorClass
from headwater.core import ConnectorError, FatalError, RetryableError
from pydantic import Field, SecretStr, model_validator

__all__ = ["AwsClientOptions", "classify_aws_error", "error_code", "translate"]

_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "KMSThrottlingException",
        "ExpiredIteratorException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


_SESSIONS: dict[str | None, boto3.session.Session] = {}
_SESSIONS_LOCK = threading.Lock()


class AwsClientOptions(OptionsModel):
    """How to reach AWS: region, endpoint, credentials, botocore retries and timeouts.

    Args:
        region: the AWS region; ``None`` uses the standard chain (``AWS_REGION``, profile).
        endpoint_url: an endpoint override (a VPC endpoint, an emulator).
        profile: a named profile of the shared credentials files.
        access_key_id: a static access key; ``None`` uses the standard credential chain.
        secret_access_key: the secret of ``access_key_id`` (required with it).
        session_token: a session token for temporary credentials.
        retry_mode: botocore's retry mode for single calls: ``standard`` or ``adaptive``
            (client-side rate limiting on throttling).
        max_attempts: botocore's attempts per call, the first included.
        connect_timeout: the socket connect timeout.
        read_timeout: the socket read timeout.
        max_pool_connections: HTTP connections the client keeps (size it to the requests in
            flight).
    """

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = Field(default=3, ge=1)
    connect_timeout: timedelta = timedelta(seconds=10)
    read_timeout: timedelta = timedelta(seconds=60)
    max_pool_connections: int = Field(default=64, ge=1)

    @model_validator(mode="after")
    def _check(self) -> AwsClientOptions:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key must be set together")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        for name in ("connect_timeout", "read_timeout"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        return self

    def create_client(self, service: str) -> Any:
        """A new boto3 client for ``service`` (blocking: call it on the thread pool).

        boto3 clients are thread-safe once built; sessions are not, so clients are built under a
        lock from one session per profile (which keeps the loaded service models: building a
        client from a fresh session takes about 75 ms).
        """
        with _SESSIONS_LOCK:
            session = _SESSIONS.get(self.profile)
            if session is None:
                session = _SESSIONS[self.profile] = boto3.session.Session(profile_name=self.profile)
            return self._client(session, service)

    def _client(self, session: boto3.session.Session, service: str) -> Any:
        config = Config(
            retries={"mode": self.retry_mode, "max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout.total_seconds(),
            read_timeout=self.read_timeout.total_seconds(),
            max_pool_connections=self.max_pool_connections,
        )
        kwargs: dict[str, Any] = {}
        if self.access_key_id is not None and self.secret_access_key is not None:
            kwargs["aws_access_key_id"] = self.access_key_id.get_secret_value()
            kwargs["aws_secret_access_key"] = self.secret_access_key.get_secret_value()
        if self.session_token is not None:
            kwargs["aws_session_token"] = self.session_token.get_secret_value()
        return session.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=config,
            **kwargs,
        )


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``None`` for other errors)."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in _RETRYABLE_CODES or int(status or 0) >= 500
    return isinstance(
        exc, BotoConnectionError | ReadTimeoutError | ConnectionError | TimeoutError | OSError
    )


def translate(exc: BaseException, connector: str, operation: str) -> ConnectorError:
    """A headwater error for ``exc`` raised by ``operation`` (raise it ``from exc``).

    The message holds the connector, the operation and the AWS error code and message; botocore
    messages never contain credentials.
    """
    if isinstance(exc, ConnectorError):
        return exc
    kind = RetryableError if _retryable(exc) else FatalError
    code = error_code(exc)
    if isinstance(exc, ClientError):
        detail = f"{code}: {exc.response.get('Error', {}).get('Message', '')}"
    elif isinstance(exc, BotoCoreError):
        detail = f"{type(exc).__name__}: {exc}"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return kind(f"{connector}: {operation} failed: {detail}")


def classify_aws_error(error: BaseException) -> ErrorClass:
    """Retryable for throttling, server and connection errors (translated or not), else fatal."""
    if isinstance(error, RetryableError):
        return ErrorClass.RETRYABLE
    if isinstance(error, FatalError):
        return ErrorClass.FATAL
    return ErrorClass.RETRYABLE if _retryable(error) else ErrorClass.FATAL
