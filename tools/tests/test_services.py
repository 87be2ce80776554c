"""Unit tests of tools/servicekit that need no real server: proxy logic, state, codecs."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1]))  # servicekit; last, shadows nothing

from servicekit import installers, manager, probes, registry, settings
from servicekit.cli import main
from servicekit.errors import ServiceError
from servicekit.faults import FaultHttpProxy, TcpProxy
from servicekit.manager import StateDir
from servicekit.processes import ProcessId, stop

# --- a fake upstream that answers like the AWS APIs and _bulk -------------------------


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list[tuple[str, str, bytes]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        target = self.headers.get("X-Amz-Target", "")
        self.received.append((self.path, target, body))
        if target.endswith("PutRecords"):
            records = json.loads(body)["Records"]
            answer = {
                "FailedRecordCount": 0,
                "Records": [{"SequenceNumber": r["Data"], "ShardId": "s"} for r in records],
            }
        elif target.endswith("BatchWriteItem"):
            answer = {"UnprocessedItems": {}}
        elif self.path.endswith("_bulk"):
            lines = [json.loads(line) for line in body.splitlines()]
            verbs = [next(iter(line)) for line in lines if next(iter(line)) in ("index", "delete")]
            answer = {"took": 1, "errors": False, "items": [{v: {"status": 200}} for v in verbs]}
        else:
            answer = {"echo": body.decode()}
        payload = json.dumps(answer).encode()
        crc = {"x-amz-crc32": "0"} if target.startswith("DynamoDB") else {}
        self._answer(payload, crc)

    def do_GET(self) -> None:
        if self.path == "/stream":  # chunked, as an event stream would be
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one,", b"two"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._answer(b"plain")


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    _Upstream.received = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _call(
    proxy: FaultHttpProxy, path: str, body: Any, *, target: str = "", method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"X-Amz-Target": target} if target else {}
    connection.request(method, path, body=raw if method != "GET" else None, headers=headers)
    response = connection.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return result


def _put_records(proxy: FaultHttpProxy, n: int) -> dict[str, Any]:
    records = [{"Data": f"d{i}", "PartitionKey": "k"} for i in range(n)]
    _, _, body = _call(
        proxy, "/", {"StreamName": "s", "Records": records}, target="Kinesis_20131202.PutRecords"
    )
    answer: dict[str, Any] = json.loads(body)
    return answer


def _failed_positions(answer: dict[str, Any]) -> list[int]:
    return [i for i, r in enumerate(answer["Records"]) if "ErrorCode" in r]


# --- FaultHttpProxy --------------------------------------------------------------------


def test_same_seed_fails_the_same_entries(upstream: str) -> None:
    runs = []
    for _ in range(2):
        with FaultHttpProxy(upstream, failure_rate=0.3, seed=11) as proxy:
            runs.append(_failed_positions(_put_records(proxy, 50)))
    assert runs[0] == runs[1]
    assert 0 < len(runs[0]) < 50
    with FaultHttpProxy(upstream, failure_rate=0.3, seed=12) as proxy:
        assert _failed_positions(_put_records(proxy, 50)) != runs[0]


def test_failed_entries_never_reach_the_server_and_fail_only_once(upstream: str) -> None:
    with FaultHttpProxy(upstream, failure_rate=1.0) as proxy:
        first = _put_records(proxy, 5)
        assert first["FailedRecordCount"] == 5
        assert _Upstream.received == []  # nothing was left to forward
        second = _put_records(proxy, 5)
        assert second["FailedRecordCount"] == 0
        assert [r["SequenceNumber"] for r in second["Records"]] == [f"d{i}" for i in range(5)]
        stats = proxy.stats()["kinesis.PutRecords"]
        assert (stats.requests, stats.entries, stats.failed) == (2, 10, 5)


def test_kept_entries_are_forwarded_and_results_keep_their_positions(upstream: str) -> None:
    with FaultHttpProxy(upstream, failure_rate=0.5, seed=3) as proxy:
        answer = _put_records(proxy, 20)
    failed = set(_failed_positions(answer))
    forwarded = json.loads(_Upstream.received[0][2])["Records"]
    assert [r["Data"] for r in forwarded] == [f"d{i}" for i in range(20) if i not in failed]
    for i, result in enumerate(answer["Records"]):
        if i not in failed:
            assert result["SequenceNumber"] == f"d{i}"
    assert answer["FailedRecordCount"] == len(failed)


def test_firehose_failures_use_firehose_names(upstream: str) -> None:
    with FaultHttpProxy(upstream, failure_rate=1.0) as proxy:
        _, _, body = _call(
            proxy,
            "/",
            {"DeliveryStreamName": "d", "Records": [{"Data": "YQ=="}]},
            target="Firehose_20150804.PutRecordBatch",
        )
    answer = json.loads(body)
    assert answer["FailedPutCount"] == 1
    assert answer["RequestResponses"][0]["ErrorCode"] == "ServiceUnavailableException"


def test_dynamodb_failures_go_to_unprocessed_items_with_a_fresh_crc(upstream: str) -> None:
    items = {
        "a": [{"PutRequest": {"Item": {"id": {"S": str(i)}}}} for i in range(10)],
        "b": [{"DeleteRequest": {"Key": {"id": {"S": "x"}}}}],
    }
    with FaultHttpProxy(upstream, failure_rate=0.5, seed=5) as proxy:
        _, headers, body = _call(
            proxy, "/", {"RequestItems": items}, target="DynamoDB_20120810.BatchWriteItem"
        )
    unprocessed = json.loads(body)["UnprocessedItems"]
    forwarded = json.loads(_Upstream.received[0][2])["RequestItems"] if _Upstream.received else {}
    for table, requests in items.items():
        back = unprocessed.get(table, []) + forwarded.get(table, [])
        assert sorted(map(json.dumps, back)) == sorted(map(json.dumps, requests))
    assert unprocessed
    assert headers["x-amz-crc32"] == str(zlib.crc32(body))


def test_bulk_items_get_429_with_index_from_the_path(upstream: str) -> None:
    lines = [{"index": {"_id": "1"}}, {"n": 1}, {"delete": {"_id": "2"}}, {"create": {}}, {"n": 3}]
    ndjson = "\n".join(map(json.dumps, lines)).encode() + b"\n"
    with FaultHttpProxy(upstream, failure_rate=1.0) as proxy:
        _, _, body = _call(proxy, "/logs/_bulk?refresh=true", ndjson)
    answer = json.loads(body)
    assert answer["errors"] is True
    assert [next(iter(item)) for item in answer["items"]] == ["index", "delete", "create"]
    first = answer["items"][0]["index"]
    assert (first["_index"], first["_id"], first["status"]) == ("logs", "1", 429)
    assert first["error"]["type"] == "es_rejected_execution_exception"


def test_other_requests_pass_unchanged_including_chunked_answers(upstream: str) -> None:
    with FaultHttpProxy(upstream, failure_rate=1.0) as proxy:
        assert _call(proxy, "/anything", b"", method="GET")[2] == b"plain"
        assert _call(proxy, "/stream", b"", method="GET")[2] == b"one,two"
        status, _, body = _call(proxy, "/", {"x": 1}, target="Kinesis_20131202.ListShards")
    assert (status, json.loads(body)) == (200, {"echo": '{"x": 1}'})


def test_delay_is_added_to_every_request_and_can_change(upstream: str) -> None:
    with FaultHttpProxy(upstream, delay=0.2) as proxy:
        started = time.monotonic()
        _call(proxy, "/", b"", method="GET")
        assert time.monotonic() - started >= 0.2
        proxy.configure(delay=0.0)
        started = time.monotonic()
        _call(proxy, "/", b"", method="GET")
        assert time.monotonic() - started < 0.2


def test_settings_are_validated(upstream: str) -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        FaultHttpProxy(upstream, failure_rate=1.5)
    with pytest.raises(ValueError, match="upstream"):
        FaultHttpProxy("https://example.invalid")


# --- codecs, ports, registry ---------------------------------------------------------


def test_bson_round_trip() -> None:
    document = {"a": 1, "b": "x", "c": True, "d": {"e": [1, "two", {"f": 2.5}]}, "g": -(2**40)}
    encoded = probes._bson_encode(document)
    assert probes._bson_decode(encoded, 0) == (document, len(encoded))


def test_ports_default_override_and_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER_KAFKA_PORT", raising=False)
    assert settings.resolve_port("kafka", "port", 9092, free=False) == 9092
    assert settings.resolve_port("kafka", "port", 9092, free=True) != 9092
    monkeypatch.setenv("HEADWATER_CASSANDRA_STORAGE_PORT", "7100")
    assert settings.resolve_port("cassandra", "storage", 7000, free=True) == 7100
    monkeypatch.setenv("HEADWATER_KAFKA_PORT", "x")
    with pytest.raises(ValueError, match="HEADWATER_KAFKA_PORT"):
        settings.resolve_port("kafka", "port", 9092, free=False)


def test_every_service_publishes_its_address_host_and_port() -> None:
    for name, service in registry.SERVICES.items():
        ports = {port_name: 1000 + i for i, port_name in enumerate(service.ports)}
        variables = service.variables(ports)
        assert variables[f"HEADWATER_{name.upper()}_PORT"] == "1000"
        assert variables[f"HEADWATER_{name.upper()}_HOST"] == "127.0.0.1"
        assert "1000" in variables[service.address[0]]


def test_the_pytest_plugin_has_a_fixture_per_service() -> None:
    from headwater.connectors.testing import pytest_plugin

    assert tuple(registry.SERVICES) == pytest_plugin.SERVICE_NAMES


# --- the state directory with a stand-in server --------------------------------------


def _http_server(startup_timeout: float = 20.0, argv: list[str] | None = None) -> Any:
    """A managed service that runs Python's http.server: cheap, and answers HTTP."""
    return registry.ManagedService(
        name="fake",
        summary="python -m http.server",
        ports={"port": 18080},
        address=("HEADWATER_FAKE_URL", "http://{host}:{port}"),
        probe=lambda host, ports: probes.http_probe(f"http://{host}:{ports['port']}/"),
        startup_timeout=startup_timeout,
        installs=(),
        launch=lambda ctx: registry.Launch(
            argv or [sys.executable, "-m", "http.server", "-b", "127.0.0.1", str(ctx.ports["port"])]
        ),
    )


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StateDir]:
    monkeypatch.setitem(registry.SERVICES, "fake", _http_server())
    directory = StateDir(tmp_path / "state")
    yield directory
    directory.down_all()


def test_up_reuse_status_and_down(state: StateDir) -> None:
    (record,) = state.up(["fake"], free_ports=True)
    process = record.process
    assert process is not None and process.alive()
    assert record.ports["port"] != 18080
    assert state.env("fake")["HEADWATER_FAKE_URL"] == f"http://127.0.0.1:{record.ports['port']}"
    (again,) = state.up(["fake"], free_ports=True)
    assert again.pid == record.pid  # still answering: reused, not restarted
    row = next(r for r in state.status() if r.service == "fake")
    assert (row.state, row.pid) == ("up", record.pid)
    assert row.rss_bytes and row.rss_bytes > 1_000_000
    state.down(["fake"])
    assert not process.alive()
    assert record.data_dir and not Path(record.data_dir).exists()
    with pytest.raises(ServiceError, match="not up"):
        state.env("fake")


def test_a_server_that_exits_fails_up_with_its_log(
    state: StateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [sys.executable, "-c", "print('broken config'); raise SystemExit(3)"]
    monkeypatch.setitem(registry.SERVICES, "fake", _http_server(argv=argv))
    with pytest.raises(ServiceError, match=r"(?s)fake: exited with code 3.*broken config"):
        state.up(["fake"], free_ports=True)
    assert state.load("fake") is None


def test_a_server_that_never_answers_is_stopped_after_the_timeout(
    state: StateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [sys.executable, "-c", "print('waiting', flush=True); import time; time.sleep(60)"]
    service = _http_server(startup_timeout=1.0, argv=argv)
    monkeypatch.setitem(registry.SERVICES, "fake", service)
    with pytest.raises(ServiceError, match=r"(?s)did not answer .* within 1 s.*waiting"):
        state.up(["fake"], free_ports=True)
    assert state.load("fake") is None


def test_a_server_listening_beyond_loopback_is_refused(
    state: StateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = settings.free_port()
    argv = [sys.executable, "-m", "http.server", "-b", "0.0.0.0", str(port)]
    monkeypatch.setenv("HEADWATER_FAKE_PORT", str(port))
    monkeypatch.setitem(registry.SERVICES, "fake", _http_server(argv=argv))
    with pytest.raises(ServiceError, match=rf"listens beyond loopback, on 0\.0\.0\.0:{port}"):
        state.up(["fake"], free_ports=True)
    assert state.load("fake") is None


def test_down_all_reaps_sessions_whose_owner_exited(state: StateDir) -> None:
    finished = StateDir(state.path / "pytest-1")
    finished.up(["fake"], free_ports=True)
    finished.claim(ProcessId(os.getpid(), -1))  # this PID with another start time: gone
    (orphan,) = [finished.load("fake")]
    running = StateDir(state.path / "pytest-2")
    running.up(["fake"], free_ports=True)
    me = ProcessId.of(os.getpid())
    assert me is not None
    running.claim(me)
    state.down_all()
    assert orphan is not None and orphan.process is not None
    assert not orphan.process.alive()
    assert not finished.path.exists()
    assert running.load("fake") is not None
    running.down(["fake"])


_DAEMON = (
    "import subprocess, sys; "
    "server = subprocess.Popen([sys.executable, '-m', 'http.server', '-b', '127.0.0.1', "
    "sys.argv[1]], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "open(sys.argv[2], 'w').write(str(server.pid))"
)


def test_a_stopped_system_server_is_started_and_left_running_by_down(
    state: StateDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = settings.free_port()
    pid_file = tmp_path / "server.pid"
    service = registry.SystemService(
        name="fake",
        summary="a daemonizing http.server, standing in for a Debian service",
        ports={"port": port},
        address=("HEADWATER_FAKE_URL", "http://{host}:{port}"),
        probe=lambda host, ports: probes.http_probe(f"http://{host}:{ports['port']}/"),
        packages=("not-needed",),
        installed=sys.executable,
        start=lambda: [sys.executable, "-c", _DAEMON, str(port), str(pid_file)],
        logs=(),
    )
    monkeypatch.setitem(registry.SERVICES, "fake", service)
    monkeypatch.setattr(manager, "cache_dir", lambda: tmp_path / "cache")
    (record,) = state.up(["fake"], free_ports=True)
    assert (record.pid, record.ports) == (None, {"port": port})
    state.down(["fake"])
    server = ProcessId.of(int(pid_file.read_text()))
    assert server is not None
    try:
        assert server.alive()
        probes.http_probe(f"http://127.0.0.1:{port}/")  # still serving: shared servers stay up
    finally:
        stop(server)


def test_only_root_installs_debian_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ServiceError, match="only root can install them: run `sudo apt-get"):
        installers.ensure_debian_packages(["redis-server"], tmp_path / "log")


def test_cli_reports_errors_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--state", "/nonexistent/state", "env", "kafka"]) == 1
    assert "kafka is not up here" in capsys.readouterr().err
    assert main(["--state", "/nonexistent/state", "env", "nope"]) == 1
    assert "unknown service 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["cut", "refuse"])
def test_a_cut_resets_idle_connections_on_both_sides(action: str) -> None:
    """An idle link (both pumps blocked in recv) must be torn down: the server sees it too.

    Otherwise a database keeps the session of a "cut" client, with its locks, forever.
    """
    server = socket.create_server(("127.0.0.1", 0))
    with server, TcpProxy("127.0.0.1", server.getsockname()[1]) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port))
        upstream, _ = server.accept()
        client.sendall(b"hello")
        assert upstream.recv(5) == b"hello"
        time.sleep(0.1)  # both pump threads are now blocked in recv
        getattr(proxy, action)()
        for side in (upstream, client):
            side.settimeout(5)
            with pytest.raises(ConnectionResetError):
                if not side.recv(5):
                    raise AssertionError("an orderly end instead of a reset")
            side.close()
        assert proxy.open_connections == 0
