"""S3: multipart uploads as the recoverable writer, completed on commit.

An in-progress part file is a multipart upload: full parts (``part_size`` bytes, at least the
5 MiB S3 requires of every part but the last) are uploaded as they fill; at a checkpoint the upload
id, the uploaded parts' ETags and the buffered tail go into the checkpoint. Nothing is visible
under the final key until the committer completes the upload. Uploads abandoned by a failure (in
progress after the restored checkpoint) are never completed: give the bucket a lifecycle rule that
aborts incomplete multipart uploads after a day.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

from headwater.connectors.base.aws import AwsClientOptions, error_code, translate
from headwater.connectors.files._filesystem import (
    FileInfo,
    FileSystem,
    InProgressFile,
    PendingFile,
    ResumeState,
    hidden,
)
from headwater.core import ConfigurationError

__all__ = ["MIN_PART_SIZE", "S3FileSystem", "split_s3_url"]

MIN_PART_SIZE = 5 * 1024 * 1024
"""The smallest part S3 accepts (except the last part of an upload)."""
_GONE = frozenset({"NoSuchUpload", "404", "NoSuchKey"})


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` as ``(bucket, key)``."""
    if not url.startswith("s3://"):
        raise ConfigurationError(f"files: {url!r} is not an s3:// URL")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigurationError(f"files: {url!r} names no bucket")
    return bucket, key


class _S3InProgressFile(InProgressFile):
    def __init__(self, client: Any, final_path: str, part_size: int) -> None:
        super().__init__(final_path)
        self._client = client
        self._bucket, self._key = split_s3_url(final_path)
        self._part_size = part_size
        self._buffer = bytearray()
        self._size = 0
        self.upload_id: str | None = None
        self.parts: list[tuple[int, str]] = []

    @classmethod
    def resumed(
        cls, client: Any, final_path: str, storage: dict[str, Any], part_size: int
    ) -> _S3InProgressFile:
        file = cls(client, final_path, part_size)
        file.upload_id = storage["upload_id"]
        file.parts = [(int(n), str(etag)) for n, etag in storage["parts"]]
        file._buffer = bytearray(base64.b64decode(storage["tail"]))
        file._size = int(storage["size"])
        return file

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= self._part_size:
            chunk = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._upload_part(chunk)
        return len(data)

    def tell(self) -> int:
        return self._size

    def _upload_part(self, data: bytes) -> None:
        try:
            if self.upload_id is None:
                created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
                self.upload_id = str(created["UploadId"])
            number = len(self.parts) + 1
            answer = self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
            )
        except Exception as exc:
            raise translate(exc, "files", f"uploading a part of {self.final_path}") from exc
        self.parts.append((number, str(answer["ETag"])))

    def persist(self) -> dict[str, Any]:
        """The upload so far; the tail (less than a part) travels in the checkpoint."""
        return {
            "upload_id": self.upload_id,
            "parts": [[n, etag] for n, etag in self.parts],
            "tail": base64.b64encode(bytes(self._buffer)).decode("ascii"),
            "size": self._size,
        }

    def close_for_commit(self) -> dict[str, Any]:
        """Upload the tail as the last part."""
        if self._buffer or not self.parts:
            tail = bytes(self._buffer)
            self._buffer.clear()
            self._upload_part(tail)
        self.closed = True
        return {"upload_id": self.upload_id, "parts": [[n, etag] for n, etag in self.parts]}


class S3FileSystem(FileSystem):
    """Part files in S3 (``s3://bucket/prefix``), written with multipart uploads.

    Args:
        client: how to reach S3 (region, endpoint, credentials; connector-aws's options).
        part_size: the size of each uploaded part but the last, at least 5 MiB.
    """

    def __init__(self, client: AwsClientOptions, part_size: int = MIN_PART_SIZE) -> None:
        if part_size < MIN_PART_SIZE:
            raise ConfigurationError(f"files: s3 part_size must be at least {MIN_PART_SIZE} bytes")
        self.client_options = client
        self.part_size = part_size
        self._client: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"client_options": self.client_options, "part_size": self.part_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["client_options"], state["part_size"])  # type: ignore[misc]

    @property
    def client(self) -> Any:
        """The boto3 S3 client (built on first use; blocking)."""
        with self._lock:
            if self._client is None:
                self._client = self.client_options.create_client("s3")
            return self._client

    def open_in_progress(self, final_path: str) -> InProgressFile:
        """A multipart upload, started when its first part is uploaded."""
        return _S3InProgressFile(self.client, final_path, self.part_size)

    def recover_for_commit(self, state: ResumeState) -> PendingFile | None:
        """Upload the checkpointed tail as the last part; ``None`` if already completed."""
        file = _S3InProgressFile.resumed(
            self.client, state.final_path, state.storage, self.part_size
        )
        try:
            storage = file.close_for_commit()
        except Exception as exc:
            if error_code(exc.__cause__ or exc) in _GONE and self._exists(state.final_path):
                return None
            raise
        return PendingFile(
            final_path=state.final_path,
            bucket=state.bucket,
            records=state.records,
            size=int(state.storage["size"]),
            storage=storage,
        )

    def _exists(self, url: str) -> bool:
        bucket, key = split_s3_url(url)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if error_code(exc) in _GONE:
                return False
            raise translate(exc, "files", f"checking {url}") from exc
        return True

    def commit(self, pending: PendingFile) -> bool:
        """Complete the multipart upload."""
        bucket, key = split_s3_url(pending.final_path)
        parts = [{"PartNumber": int(n), "ETag": etag} for n, etag in pending.storage["parts"]]
        try:
            self.client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=pending.storage["upload_id"],
                MultipartUpload={"Parts": parts},
            )
        except Exception as exc:
            if error_code(exc) in _GONE:
                if self._exists(pending.final_path):
                    return False
                raise FileNotFoundError(
                    f"files: the upload of {pending.final_path} is gone and the object does not "
                    f"exist"
                ) from exc
            raise translate(exc, "files", f"completing the upload of {pending.final_path}") from exc
        return True

    def write_atomically(self, path: str, data: bytes) -> None:
        """One PutObject (S3 objects appear whole)."""
        bucket, key = split_s3_url(path)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
        except Exception as exc:
            raise translate(exc, "files", f"writing {path}") from exc

    def list_files(self, root: str) -> Iterator[FileInfo]:
        """Visible objects under the prefix ``root``, sorted by key."""
        bucket, prefix = split_s3_url(root)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    relative = str(item["Key"])[len(prefix) :]
                    if any(hidden(segment) for segment in relative.split("/")):
                        continue
                    yield FileInfo(
                        f"s3://{bucket}/{item['Key']}",
                        int(item["Size"]),
                        int(item["LastModified"].timestamp() * 1000),
                    )
        except Exception as exc:
            raise translate(exc, "files", f"listing {root}") from exc

    def open_read(self, path: str, start: int = 0) -> BinaryIO:
        """The object's bytes from ``start`` (a streaming body)."""
        bucket, key = split_s3_url(path)
        try:
            kwargs: dict[str, Any] = {"Range": f"bytes={start}-"} if start else {}
            body = self.client.get_object(Bucket=bucket, Key=key, **kwargs)["Body"]
        except Exception as exc:
            if error_code(exc) == "InvalidRange":
                return io.BytesIO()
            raise translate(exc, "files", f"reading {path}") from exc
        return body  # type: ignore[no-any-return]

    def join(self, *parts: str) -> str:
        """Join with ``/``."""
        kept = [p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts) if p]
        return "/".join(kept)

    def check_writable(self, root: str) -> None:
        """Fail naming the bucket if it does not exist or cannot be reached."""
        bucket, _ = split_s3_url(root)
        try:
            self.client.head_bucket(Bucket=bucket)
        except Exception as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchBucket"):
                raise ConfigurationError(f"files: the S3 bucket {bucket!r} does not exist") from exc
            raise translate(exc, "files", f"checking the S3 bucket {bucket!r}") from exc
