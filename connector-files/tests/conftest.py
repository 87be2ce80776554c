"""Fixtures of the file connector tests: S3 buckets on the moto server, the jobs on sys.path."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from headwater.connectors.base.aws import AwsClientOptions
from headwater.connectors.testing.pytest_plugin import RunningService

HERE = str(Path(__file__).parent)
sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def _jobs_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill tests run ``files_jobs`` in child processes: put this directory on their path."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))
    )


@pytest.fixture
def s3_client(moto_service: RunningService) -> Any:
    """A plain boto3 S3 client of the moto server."""
    return boto3.client("s3", **moto_service.boto3_kwargs())


@pytest.fixture
def s3_options(moto_service: RunningService) -> AwsClientOptions:
    """Client options of the moto server for the connector."""
    return AwsClientOptions(
        endpoint_url=moto_service.address,
        region="us-east-1",
        access_key_id="test",
        secret_access_key="test",
    )


@pytest.fixture
def s3_bucket(s3_client: Any, unique_name: str) -> Iterator[str]:
    """A fresh bucket, emptied and deleted after the test."""
    name = unique_name.replace("_", "-").lower()[:63]
    s3_client.create_bucket(Bucket=name)
    yield name
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3_client.delete_object(Bucket=name, Key=item["Key"])
    for upload in s3_client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3_client.abort_multipart_upload(
            Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
        )
    s3_client.delete_bucket(Bucket=name)
