"""The options of the OpenSearch connector: frozen, keyword-only, validated at construction.

The docs page's options tables are generated from these models' JSON Schemas.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from headwater.connectors.base import AsyncSinkOptions, OptionsModel, mask_url
from headwater.core import DeliveryGuarantee
from pydantic import Field, SecretStr, field_validator, model_validator

__all__ = [
    "BulkWriterOptions",
    "Flavor",
    "OpenSearchClientOptions",
    "OpenSearchLookupOptions",
    "OpenSearchSinkOptions",
    "OpenSearchSourceOptions",
]

_MIB = 1024 * 1024


class Flavor(StrEnum):
    """Which server the connector talks to: the APIs differ only for point-in-time search."""

    OPENSEARCH = "opensearch"
    ELASTICSEARCH = "elasticsearch"


class OpenSearchClientOptions(OptionsModel):
    """How to reach the cluster: hosts, authentication and TLS (passed to ``AsyncOpenSearch``)."""

    hosts: tuple[str, ...] = Field(
        min_length=1,
        description=(
            "The nodes to connect to, as URLs (`https://node1:9200`) or host:port. A password in "
            "a URL is used but never printed."
        ),
    )
    flavor: Flavor = Field(
        default=Flavor.OPENSEARCH,
        description=(
            "`opensearch` or `elasticsearch` (7.10+/8.x): selects the point-in-time API of the "
            "source; the bulk protocol is the same."
        ),
    )
    username: str | None = Field(default=None, description="User name for HTTP basic auth.")
    password: SecretStr | None = Field(
        default=None, description="Password for HTTP basic auth (masked in logs and errors)."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="An API key (`id:key` or its base64 form) sent as `Authorization: ApiKey`.",
    )
    aws_region: str | None = Field(
        default=None,
        description=(
            "Sign requests with AWS SigV4 for this region (Amazon OpenSearch Service); "
            "credentials come from boto3's default chain (install the `aws` extra)."
        ),
    )
    aws_service: Literal["es", "aoss"] = Field(
        default="es",
        description="The SigV4 service name: `es` (managed domains) or `aoss` (Serverless).",
    )
    verify_certs: bool = Field(default=True, description="Verify the server's TLS certificate.")
    ca_certs: str | None = Field(
        default=None, description="A CA bundle file to verify the server's certificate with."
    )
    request_timeout: timedelta = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        description="How long one HTTP request may take before it counts as failed.",
    )

    def __repr_args__(self) -> Any:
        """Hosts with their passwords masked (``repr`` and ``str`` never show secrets)."""
        for name, value in super().__repr_args__():
            yield name, tuple(map(mask_url, value)) if name == "hosts" else value

    @model_validator(mode="after")
    def _check_auth(self) -> OpenSearchClientOptions:
        methods = [
            name
            for name, used in (
                ("username/password", self.username is not None or self.password is not None),
                ("api_key", self.api_key is not None),
                ("aws_region", self.aws_region is not None),
            )
            if used
        ]
        if len(methods) > 1:
            raise ValueError(f"set one authentication method, not {' and '.join(methods)}")
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password, or neither")
        return self


_FIELD = re.compile(r"{([^{}:!]+)(?:![rsa])?(?::[^{}]*)?}")


def index_fields(pattern: str) -> list[str]:
    """The record fields an index pattern such as ``logs-{ts:%Y.%m.%d}`` reads."""
    return _FIELD.findall(pattern)


class BulkWriterOptions(AsyncSinkOptions):
    """The ``writer`` option: connector-base's async sink knobs with bulk-sized defaults."""

    max_batch_size: int = AsyncSinkOptions.default("max_batch_size", 1000)
    max_in_flight_requests: int = AsyncSinkOptions.default("max_in_flight_requests", 4)
    max_batch_size_in_bytes: int = AsyncSinkOptions.default("max_batch_size_in_bytes", 5 * _MIB)
    max_time_in_buffer: timedelta = AsyncSinkOptions.default(
        "max_time_in_buffer", timedelta(seconds=1)
    )
    max_record_size_in_bytes: int | None = AsyncSinkOptions.default(
        "max_record_size_in_bytes", 5 * _MIB
    )
    request_timeout: timedelta = AsyncSinkOptions.default("request_timeout", timedelta(minutes=2))


class OpenSearchSinkOptions(OptionsModel):
    """Options of :class:`~headwater.connectors.opensearch.OpenSearchSink`."""

    client: OpenSearchClientOptions = Field(description="Hosts, authentication and TLS.")
    index: str = Field(
        min_length=1,
        description=(
            "The target index: a name (`orders`), or a pattern with record fields in braces "
            "(`orders-{tenant}`, `logs-{ts:%Y.%m.%d}` for a datetime field `ts`)."
        ),
    )
    action: Literal["index", "create", "update", "delete"] = Field(
        default="index",
        description=(
            "The bulk action per record: `index` (replace), `create` (only if absent), `update` "
            "(partial document) or `delete` (by id)."
        ),
    )
    doc_as_upsert: bool = Field(
        default=True,
        description="With `update`: create the document when it does not exist yet.",
    )
    id_fields: tuple[str, ...] | None = Field(
        default=None,
        description=(
            "Record fields whose values, joined by `id_separator`, are the document id. Without "
            "it the server generates ids (each replay adds a copy: at-least-once only)."
        ),
    )
    id_separator: str = Field(default="_", description="Joins the values of `id_fields`.")
    routing_field: str | None = Field(
        default=None, description="A record field whose value is the shard routing key."
    )
    version_field: str | None = Field(
        default=None,
        description=(
            "A record field holding an integer version, sent with `version_type=external`: the "
            "server keeps the highest version, so a replay of older data never overwrites newer "
            "data (its 409 answers count as success)."
        ),
    )
    delivery_guarantee: DeliveryGuarantee = Field(
        default=DeliveryGuarantee.AT_LEAST_ONCE,
        description=(
            "`at_least_once` (every request answered before a checkpoint completes) or `none` "
            "(checkpoints do not wait). With `id_fields` the index holds each document once."
        ),
    )
    refresh: Literal["false", "true", "wait_for"] = Field(
        default="false", description="The `refresh` parameter of every bulk request."
    )
    writer: BulkWriterOptions = Field(
        default=BulkWriterOptions(),
        description=(
            "Bulk size (actions, bytes), time in buffer, requests in flight (AIMD rate limiting) "
            "and retries; a dict overrides only the keys it names."
        ),
    )

    @field_validator("delivery_guarantee")
    @classmethod
    def _no_exactly_once(cls, value: DeliveryGuarantee) -> DeliveryGuarantee:
        if value is DeliveryGuarantee.EXACTLY_ONCE:
            raise ValueError(
                "exactly_once is not a transport guarantee of bulk writes: use at_least_once "
                "with id_fields (idempotent writes give each document once in the index)"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> OpenSearchSinkOptions:
        if self.action in ("update", "delete") and not self.id_fields:
            raise ValueError(f"action '{self.action}' needs id_fields")
        if self.version_field is not None and self.action == "update":
            raise ValueError("version_field (external versioning) does not apply to 'update'")
        if "{" in self.index and not index_fields(self.index):
            raise ValueError(f"index pattern {self.index!r} names no field")
        return self


class OpenSearchSourceOptions(OptionsModel):
    """Options of :class:`~headwater.connectors.opensearch.OpenSearchSource`."""

    client: OpenSearchClientOptions = Field(description="Hosts, authentication and TLS.")
    index: str = Field(min_length=1, description="The index, alias or pattern to read.")
    query: dict[str, Any] | None = Field(
        default=None, description='A query DSL object (`{"term": {"x": 1}}`); default all.'
    )
    slices: int | None = Field(
        default=None,
        ge=1,
        description="The number of slices (one split each); default the job's parallelism.",
    )
    sort: tuple[Any, ...] = Field(
        default=("_shard_doc",),
        description=(
            "The sort of each slice, for `search_after`. The default `_shard_doc` is the fastest "
            "but its positions hold only within one point in time; sort on fields that are unique "
            'together (`[{"order_id": "asc"}]`) to resume after the point in time expired.'
        ),
    )
    fetch_size: int = Field(default=1000, ge=1, le=10_000, description="Documents per request.")
    keep_alive: timedelta = Field(
        default=timedelta(minutes=10),
        gt=timedelta(0),
        description=(
            "How long the point in time lives between requests; a job restored later than this "
            "opens a new one (see `sort`)."
        ),
    )
    with_metadata: bool = Field(
        default=False,
        description='Emit `{"_index", "_id", "_source"}` dicts instead of the sources.',
    )


class OpenSearchLookupOptions(OptionsModel):
    """Options of :class:`~headwater.connectors.opensearch.OpenSearchLookup`."""

    client: OpenSearchClientOptions = Field(description="Hosts, authentication and TLS.")
    index: str = Field(min_length=1, description="The index or alias to look documents up in.")
    field: str | None = Field(
        default=None,
        description="Look up by a term query on this field; default: by document id (get).",
    )
    max_hits: int = Field(default=10, ge=1, description="The most documents a term lookup returns.")
    cache_size: int = Field(
        default=0, ge=0, description="Keys kept in an LRU cache; 0 disables the cache."
    )
    cache_ttl: timedelta | None = Field(
        default=None, description="How long a cached answer is used; `None`: until evicted."
    )
