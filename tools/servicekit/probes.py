"""Readiness probes: each asks a server something in its own protocol.

A probe returns when the server gave a correct answer and raises otherwise (``OSError``
for transport trouble, :class:`ProbeError` for a wrong answer). They use only the
standard library, so ``tools/services`` runs before any client library is installed.
The MongoDB helpers also initiate the single-node replica set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "ProbeError",
    "amqp_probe",
    "aws_json_probe",
    "cql_probe",
    "http_probe",
    "kafka_probe",
    "mongo_command",
    "mysql_probe",
    "postgres_probe",
    "redis_probe",
]

_TIMEOUT = 3.0


class ProbeError(Exception):
    """The server answered, but not as a ready server would."""


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=_TIMEOUT)
    sock.settimeout(_TIMEOUT)
    return sock


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ProbeError("connection closed mid-answer")
        chunks += chunk
    return bytes(chunks)


# --- HTTP ---------------------------------------------------------------------------


def http_probe(url: str, *, method: str = "GET") -> None:
    """Expect a 2xx answer to one plain HTTP request."""
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
        response.read()


def aws_json_probe(url: str, target: str, *, region: str = "us-east-1") -> None:
    """Call an AWS JSON-protocol API (``X-Amz-Target``) with an empty request body.

    The emulators do not check signatures, but they read the access key and region from a
    well-formed ``Authorization`` header (DynamoDB Local keeps data per key and region).
    """
    now = dt.datetime.now(dt.UTC)
    day = now.strftime("%Y%m%d")
    service = "dynamodb" if target.startswith("DynamoDB") else "kinesis"
    signature = hashlib.sha256(target.encode()).hexdigest()
    headers = {
        "Content-Type": "application/x-amz-json-1.0"
        if service == "dynamodb"
        else "application/x-amz-json-1.1",
        "X-Amz-Target": target,
        "X-Amz-Date": now.strftime("%Y%m%dT%H%M%SZ"),
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=test/{day}/{region}/{service}/aws4_request, "
            f"SignedHeaders=host;x-amz-date;x-amz-target, Signature={signature}"
        ),
    }
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise ProbeError(f"{target}: HTTP {exc.code} {exc.read()[:200]!r}") from None


# --- PostgreSQL ---------------------------------------------------------------------


def postgres_probe(host: str, port: int, *, user: str, database: str) -> None:
    """Log in without a password (trust auth) and run ``SELECT 1``."""
    with _connect(host, port) as sock:
        params = f"user\0{user}\0database\0{database}\0\0".encode()
        sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        _postgres_until_ready(sock)
        query = b"SELECT 1\0"
        sock.sendall(b"Q" + struct.pack("!i", 4 + len(query)) + query)
        _postgres_until_ready(sock)
        sock.sendall(b"X" + struct.pack("!i", 4))  # Terminate: no "unexpected EOF" in the log


def _postgres_until_ready(sock: socket.socket) -> None:
    while True:
        kind, size = struct.unpack("!ci", _read_exact(sock, 5))
        body = _read_exact(sock, size - 4)
        if kind == b"E":
            fields = dict((f[:1], f[1:]) for f in body.split(b"\0") if f)
            raise ProbeError(fields.get(b"M", body).decode(errors="replace"))
        if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
            raise ProbeError("the server asks for a password: only trust auth is supported")
        if kind == b"Z":
            return


# --- MySQL / MariaDB -----------------------------------------------------------------

_CLIENT_LONG_PASSWORD = 0x1
_CLIENT_CONNECT_WITH_DB = 0x8
_CLIENT_PROTOCOL_41 = 0x200
_CLIENT_SECURE_CONNECTION = 0x8000
_CLIENT_PLUGIN_AUTH = 0x80000


def mysql_probe(host: str, port: int, *, user: str, database: str) -> None:
    """Log in with an empty password and run ``SELECT 1``."""
    with _connect(host, port) as sock:
        seq, greeting = _mysql_read(sock)
        if greeting[:1] == b"\xff":
            raise ProbeError(greeting[3:].decode(errors="replace"))
        flags = (
            _CLIENT_LONG_PASSWORD
            | _CLIENT_CONNECT_WITH_DB
            | _CLIENT_PROTOCOL_41
            | _CLIENT_SECURE_CONNECTION
            | _CLIENT_PLUGIN_AUTH
        )
        login = (
            struct.pack("<iiB23x", flags, 1 << 24, 33)
            + user.encode()
            + b"\0\0"  # user, then an empty auth response (length 0)
            + database.encode()
            + b"\0mysql_native_password\0"
        )
        _mysql_write(sock, seq + 1, login)
        seq, answer = _mysql_read(sock)
        if answer[:1] == b"\xfe":  # auth switch: an empty password is empty in any plugin
            _mysql_write(sock, seq + 1, b"")
            seq, answer = _mysql_read(sock)
        if answer[:1] != b"\x00":
            raise ProbeError(f"login refused: {answer[3:].decode(errors='replace')}")
        _mysql_write(sock, 0, b"\x03SELECT 1")
        _, answer = _mysql_read(sock)
        if answer[:1] == b"\xff":
            raise ProbeError(answer[3:].decode(errors="replace"))
        _mysql_write(sock, 0, b"\x01")  # COM_QUIT: no "aborted connection" in the log


def _mysql_read(sock: socket.socket) -> tuple[int, bytes]:
    header = _read_exact(sock, 4)
    size = int.from_bytes(header[:3], "little")
    return header[3], _read_exact(sock, size)


def _mysql_write(sock: socket.socket, seq: int, payload: bytes) -> None:
    sock.sendall(len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload)


# --- Redis, AMQP ---------------------------------------------------------------------


def redis_probe(host: str, port: int) -> None:
    """Send ``PING`` and expect ``+PONG``."""
    with _connect(host, port) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        answer = sock.recv(64)
        if not answer.startswith(b"+PONG"):
            raise ProbeError(f"PING answered {answer!r}")


def amqp_probe(host: str, port: int) -> None:
    """Send the AMQP 0-9-1 protocol header and expect ``Connection.Start``."""
    with _connect(host, port) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        frame_type, channel, _size, class_id, method_id = struct.unpack(
            "!BHIHH", _read_exact(sock, 11)
        )
        if (frame_type, channel, class_id, method_id) != (1, 0, 10, 10):
            raise ProbeError("the server did not answer with Connection.Start")


# --- Kafka ---------------------------------------------------------------------------


def kafka_probe(host: str, port: int) -> None:
    """Send an ApiVersions (v0) request and expect error code 0."""
    client_id = b"headwater-services"
    body = struct.pack("!hhih", 18, 0, 7, len(client_id)) + client_id
    with _connect(host, port) as sock:
        sock.sendall(struct.pack("!i", len(body)) + body)
        (size,) = struct.unpack("!i", _read_exact(sock, 4))
        correlation, error = struct.unpack("!ih", _read_exact(sock, size)[:6])
    if correlation != 7 or error != 0:
        raise ProbeError(f"ApiVersions answered correlation {correlation}, error {error}")


# --- Cassandra (CQL native protocol v3) ----------------------------------------------

_CQL_STARTUP, _CQL_READY, _CQL_QUERY, _CQL_RESULT, _CQL_ERROR = 0x01, 0x02, 0x07, 0x08, 0x00


def cql_probe(host: str, port: int) -> None:
    """Open a CQL v3 session and read ``release_version`` from ``system.local``."""
    with _connect(host, port) as sock:
        options = {"CQL_VERSION": "3.0.0"}
        startup = struct.pack("!H", len(options)) + b"".join(
            struct.pack("!H", len(k)) + k.encode() + struct.pack("!H", len(v)) + v.encode()
            for k, v in options.items()
        )
        _cql_expect(sock, _CQL_STARTUP, startup, _CQL_READY)
        cql = b"SELECT release_version FROM system.local"
        query = struct.pack("!i", len(cql)) + cql + struct.pack("!HB", 0x0001, 0)
        _cql_expect(sock, _CQL_QUERY, query, _CQL_RESULT)


def _cql_expect(sock: socket.socket, opcode: int, body: bytes, wanted: int) -> None:
    sock.sendall(struct.pack("!BBhBi", 0x03, 0, 1, opcode, len(body)) + body)
    _version, _flags, _stream, answer, size = struct.unpack("!BBhBi", _read_exact(sock, 9))
    payload = _read_exact(sock, size)
    if answer != wanted:
        detail = payload[6:].decode(errors="replace") if answer == _CQL_ERROR else ""
        raise ProbeError(f"CQL opcode {answer:#x} instead of {wanted:#x} {detail}".strip())


# --- MongoDB (OP_MSG with a minimal BSON codec) --------------------------------------


def mongo_command(host: str, port: int, command: Mapping[str, Any]) -> dict[str, Any]:
    """Run one database command (``$db`` included in ``command``) and return the reply."""
    body = struct.pack("<I", 0) + b"\x00" + _bson_encode(command)
    with _connect(host, port) as sock:
        sock.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
        (size,) = struct.unpack("<i", _read_exact(sock, 4))
        reply = _read_exact(sock, size - 4)
    # header rest (12 bytes), flag bits (4), section kind (1), then the document
    document, _ = _bson_decode(reply, 17)
    return document


def _bson_encode(document: Mapping[str, Any]) -> bytes:
    out = bytearray()
    for key, value in document.items():
        name = key.encode() + b"\0"
        if isinstance(value, bool):
            out += b"\x08" + name + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            out += b"\x12" + name + struct.pack("<q", value)
        elif isinstance(value, float):
            out += b"\x01" + name + struct.pack("<d", value)
        elif isinstance(value, str):
            raw = value.encode() + b"\0"
            out += b"\x02" + name + struct.pack("<i", len(raw)) + raw
        elif isinstance(value, Mapping):
            out += b"\x03" + name + _bson_encode(value)
        elif isinstance(value, list):
            out += b"\x04" + name + _bson_encode({str(i): v for i, v in enumerate(value)})
        else:
            raise TypeError(f"cannot encode {type(value).__name__} as BSON")
    return struct.pack("<i", len(out) + 5) + bytes(out) + b"\0"


_BSON_FIXED: Mapping[int, Callable[[bytes], Any]] = {
    0x01: lambda b: struct.unpack("<d", b)[0],
    0x07: bytes.hex,
    0x08: lambda b: b != b"\x00",
    0x09: lambda b: struct.unpack("<q", b)[0],
    0x10: lambda b: struct.unpack("<i", b)[0],
    0x11: lambda b: struct.unpack("<Q", b)[0],
    0x12: lambda b: struct.unpack("<q", b)[0],
    0x13: bytes,
}
_BSON_SIZES = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}


def _bson_decode(data: bytes, offset: int) -> tuple[dict[str, Any], int]:
    """Decode the document at ``offset``; return it and the offset after it."""
    (size,) = struct.unpack_from("<i", data, offset)
    end, pos, out = offset + size - 1, offset + 4, {}
    while pos < end:
        kind = data[pos]
        name_end = data.index(b"\0", pos + 1)
        key, pos = data[pos + 1 : name_end].decode(), name_end + 1
        if kind in _BSON_SIZES:
            width = _BSON_SIZES[kind]
            out[key], pos = _BSON_FIXED[kind](data[pos : pos + width]), pos + width
        elif kind == 0x02:
            (length,) = struct.unpack_from("<i", data, pos)
            out[key], pos = data[pos + 4 : pos + 3 + length].decode(), pos + 4 + length
        elif kind in (0x03, 0x04):
            sub, pos = _bson_decode(data, pos)
            out[key] = list(sub.values()) if kind == 0x04 else sub
        elif kind == 0x05:
            (length,) = struct.unpack_from("<i", data, pos)
            out[key], pos = data[pos + 5 : pos + 5 + length], pos + 5 + length
        elif kind in (0x06, 0x0A, 0x7F, 0xFF):
            out[key] = None
        else:
            raise ProbeError(f"unsupported BSON type {kind:#x} in field {key!r}")
    return out, end + 1
