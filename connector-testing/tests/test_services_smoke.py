"""Smoke tests: each server of tools/services answers its real client library.

Also proves the fault proxies against real servers: the HTTP proxy fails a seeded share
of batch entries at most once each (and the retried entries land exactly once), the TCP
proxy delays, cuts and refuses connections.
"""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from typing import Any

import boto3
import pytest
from headwater.connectors.testing.pytest_plugin import RunningService

pytestmark = [pytest.mark.services, pytest.mark.slow]  # each starts a server


# --- databases -----------------------------------------------------------------------


def test_postgres(postgres_database: RunningService) -> None:
    import psycopg

    with psycopg.connect(postgres_database.address) as connection:
        connection.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        connection.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
        rows = connection.execute("SELECT id, name FROM t ORDER BY id").fetchall()
    assert rows == [(1, "one"), (2, "two")]


def test_mariadb(mariadb_database: RunningService) -> None:
    import pymysql

    connection = pymysql.connect(
        host=mariadb_database.host,
        port=mariadb_database.port,
        user="root",
        database=mariadb_database.address.rsplit("/", 1)[1],
        autocommit=True,
    )
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT)")
        cursor.execute("INSERT INTO t VALUES (1, 'one') ON DUPLICATE KEY UPDATE name = 'uno'")
        cursor.execute("INSERT INTO t VALUES (1, 'one') ON DUPLICATE KEY UPDATE name = 'uno'")
        cursor.execute("SELECT id, name FROM t")
        assert cursor.fetchall() == ((1, "uno"),)


def test_mongodb_replica_set_change_stream(
    mongodb_service: RunningService, unique_name: str
) -> None:
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongodb_service.address, serverSelectionTimeoutMS=10_000
    )
    try:
        collection = client[unique_name]["events"]
        with collection.watch(full_document="updateLookup") as stream:
            collection.insert_one({"_id": 1, "value": "a"})
            collection.update_one({"_id": 1}, {"$set": {"value": "b"}})
            changes = [stream.next() for _ in range(2)]
        assert [c["operationType"] for c in changes] == ["insert", "update"]
        assert changes[1]["fullDocument"] == {"_id": 1, "value": "b"}
        with client.start_session() as session, session.start_transaction():
            collection.insert_one({"_id": 2}, session=session)
        assert collection.count_documents({}) == 2
    finally:
        client.drop_database(unique_name)
        client.close()


def test_cassandra(cassandra_service: RunningService, cassandra_keyspace: str) -> None:
    from cassandra.cluster import Cluster

    cluster = Cluster([cassandra_service.host], port=cassandra_service.port, protocol_version=3)
    try:
        session = cluster.connect(cassandra_keyspace)
        session.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        insert = session.prepare("INSERT INTO t (id, name) VALUES (?, ?) IF NOT EXISTS")
        assert session.execute(insert, (1, "one")).one()[0] is True
        assert session.execute(insert, (1, "again")).one()[0] is False
        rows = list(session.execute("SELECT id, name FROM t"))
        assert [(r.id, r.name) for r in rows] == [(1, "one")]
        assert cluster.metadata.token_map is not None
    finally:
        cluster.shutdown()


def test_redis(redis_service: RunningService, unique_name: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_service.address)
    try:
        client.set(unique_name, b"value", ex=60)
        assert client.get(unique_name) == b"value"
    finally:
        client.delete(unique_name)
        client.close()


# --- brokers -------------------------------------------------------------------------


def test_rabbitmq(rabbitmq_service: RunningService, unique_name: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_service.address))
    try:
        channel = connection.channel()
        channel.queue_declare(unique_name, auto_delete=True)
        channel.confirm_delivery()
        channel.basic_publish("", unique_name, b"hello")
        method, _properties, body = channel.basic_get(unique_name, auto_ack=True)
        assert method is not None
        assert body == b"hello"
        channel.queue_delete(unique_name)
    finally:
        connection.close()


async def test_kafka(kafka_service: RunningService, unique_name: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_service.address)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique_name, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_service.address, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(
                unique_name, f"v{i}".encode(), key=b"k", partition=i % 2, headers=[("h", b"1")]
            )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_service.address, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(unique_name, p) for p in range(2)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        batches = await consumer.getmany(*partitions, timeout_ms=5000, max_records=100)
        values = sorted(r.value for records in batches.values() for r in records)
    finally:
        await consumer.stop()
    assert values == sorted(f"v{i}".encode() for i in range(10))


# --- search --------------------------------------------------------------------------


@pytest.fixture(params=["opensearch", "elasticsearch"])
def search_service(request: pytest.FixtureRequest) -> RunningService:
    """The OpenSearch API server, then the Elasticsearch one: same client, same test."""
    service: RunningService = request.getfixturevalue(f"{request.param}_service")
    return service


def _search_client(service: RunningService) -> Any:
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=[service.address], timeout=10)


def test_search_bulk_and_per_item_errors(search_service: RunningService, unique_name: str) -> None:
    client = _search_client(search_service)
    client.indices.create(
        index=unique_name, body={"mappings": {"properties": {"n": {"type": "integer"}}}}
    )
    actions = []
    for i in range(5):
        actions += [{"index": {"_index": unique_name, "_id": str(i)}}, {"n": i}]
    actions += [{"index": {"_index": unique_name, "_id": "bad"}}, {"n": "not a number"}]
    answer = client.bulk(body=actions)
    statuses = [item["index"]["status"] for item in answer["items"]]
    assert answer["errors"] is True
    assert statuses[:5] == [201] * 5
    assert statuses[5] == 400
    client.indices.refresh(index=unique_name)
    assert client.count(index=unique_name)["count"] == 5
    hits = client.search(index=unique_name, body={"query": {"range": {"n": {"gte": 3}}}})
    assert sorted(h["_id"] for h in hits["hits"]["hits"]) == ["3", "4"]


# --- AWS -----------------------------------------------------------------------------


def _kinesis_stream(client: Any, name: str, shards: int = 1) -> None:
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
    )


def _kinesis_read_all(client: Any, name: str) -> list[bytes]:
    data = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=1000)
            data += [r["Data"] for r in page["Records"]]
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return data


def test_kinesis(kinesis_service: RunningService, unique_name: str) -> None:
    client = boto3.client("kinesis", **kinesis_service.boto3_kwargs())
    _kinesis_stream(client, unique_name, shards=2)
    answer = client.put_records(
        StreamName=unique_name,
        Records=[{"Data": f"r{i}".encode(), "PartitionKey": str(i)} for i in range(20)],
    )
    assert answer["FailedRecordCount"] == 0
    client.split_shard(
        StreamName=unique_name,
        ShardToSplit="shardId-000000000000",
        NewStartingHashKey=str(2**126),
    )
    shards = client.list_shards(StreamName=unique_name)["Shards"]
    assert {s.get("ParentShardId") for s in shards} >= {"shardId-000000000000"}
    assert sorted(_kinesis_read_all(client, unique_name)) == sorted(
        f"r{i}".encode() for i in range(20)
    )


def _dynamodb_table(client: Any, name: str, *, stream: bool = False) -> None:
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def test_dynamodb_with_streams(dynamodb_service: RunningService, unique_name: str) -> None:
    kwargs = dynamodb_service.boto3_kwargs()
    client = boto3.client("dynamodb", **kwargs)
    streams = boto3.client("dynamodbstreams", **kwargs)
    _dynamodb_table(client, unique_name, stream=True)
    client.put_item(TableName=unique_name, Item={"id": {"S": "1"}, "v": {"N": "1"}})
    client.update_item(
        TableName=unique_name,
        Key={"id": {"S": "1"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "2"}},
    )
    arn = client.describe_table(TableName=unique_name)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    assert records[1]["dynamodb"]["OldImage"]["v"] == {"N": "1"}


def _firehose_to_bucket(service: RunningService, name: str) -> tuple[Any, Any, str]:
    kwargs = service.boto3_kwargs()
    s3 = boto3.client("s3", **kwargs)
    firehose = boto3.client("firehose", **kwargs)
    bucket = name.replace("_", "-")
    s3.create_bucket(Bucket=bucket)
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
        },
    )
    return firehose, s3, bucket


def _bucket_contents(s3: Any, bucket: str) -> bytes:
    objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return b"".join(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in objects)


def test_moto_firehose_to_s3(moto_service: RunningService, unique_name: str) -> None:
    firehose, s3, bucket = _firehose_to_bucket(moto_service, unique_name)
    answer = firehose.put_record_batch(
        DeliveryStreamName=unique_name, Records=[{"Data": b"a\n"}, {"Data": b"b\n"}]
    )
    assert answer["FailedPutCount"] == 0
    assert _bucket_contents(s3, bucket) == b"a\nb\n"


# --- fault proxies against real servers ----------------------------------------------

SEED = 20240601


def test_fault_proxy_kinesis_put_records(
    kinesis_service: RunningService, unique_name: str, fault_http_proxy_factory: Any
) -> None:
    proxy = fault_http_proxy_factory(kinesis_service.address, failure_rate=0.4, seed=SEED)
    direct = boto3.client("kinesis", **kinesis_service.boto3_kwargs())
    client = boto3.client(
        "kinesis", **{**kinesis_service.boto3_kwargs(), "endpoint_url": proxy.url}
    )
    _kinesis_stream(direct, unique_name)
    data = [f"r{i}".encode() for i in range(30)]
    pending = [{"Data": d, "PartitionKey": str(i)} for i, d in enumerate(data)]
    first = client.put_records(StreamName=unique_name, Records=pending)
    failed = [rec for rec, res in zip(pending, first["Records"], strict=True) if "ErrorCode" in res]
    assert 0 < first["FailedRecordCount"] == len(failed) < 30
    assert {r["ErrorCode"] for r in first["Records"] if "ErrorCode" in r} == {
        "ProvisionedThroughputExceededException"
    }
    retry = client.put_records(StreamName=unique_name, Records=failed)
    assert retry["FailedRecordCount"] == 0  # each entry fails at most once
    assert sorted(_kinesis_read_all(direct, unique_name)) == sorted(data)
    stats = proxy.stats()["kinesis.PutRecords"]
    assert (stats.requests, stats.entries, stats.failed) == (2, 30 + len(failed), len(failed))


def test_fault_proxy_firehose_put_record_batch(
    moto_service: RunningService, unique_name: str, fault_http_proxy_factory: Any
) -> None:
    _, s3, bucket = _firehose_to_bucket(moto_service, unique_name)
    proxy = fault_http_proxy_factory(moto_service.address, failure_rate=0.5, seed=SEED)
    client = boto3.client("firehose", **{**moto_service.boto3_kwargs(), "endpoint_url": proxy.url})
    records = [{"Data": f"{i}\n".encode()} for i in range(20)]
    answer = client.put_record_batch(DeliveryStreamName=unique_name, Records=records)
    responses = answer["RequestResponses"]
    failed = [rec for rec, res in zip(records, responses, strict=True) if "ErrorCode" in res]
    assert 0 < answer["FailedPutCount"] == len(failed) < 20
    assert all("RecordId" in r for r in responses if "ErrorCode" not in r)
    retry = client.put_record_batch(DeliveryStreamName=unique_name, Records=failed)
    assert retry["FailedPutCount"] == 0
    delivered = _bucket_contents(s3, bucket).decode().split()
    assert sorted(map(int, delivered)) == list(range(20))


def test_fault_proxy_dynamodb_batch_write_item(
    dynamodb_service: RunningService, unique_name: str, fault_http_proxy_factory: Any
) -> None:
    direct = boto3.client("dynamodb", **dynamodb_service.boto3_kwargs())
    _dynamodb_table(direct, unique_name)
    proxy = fault_http_proxy_factory(dynamodb_service.address, failure_rate=0.5, seed=SEED)
    client = boto3.client(
        "dynamodb", **{**dynamodb_service.boto3_kwargs(), "endpoint_url": proxy.url}
    )
    requests = [{"PutRequest": {"Item": {"id": {"S": str(i)}}}} for i in range(25)]
    answer = client.batch_write_item(RequestItems={unique_name: requests})
    unprocessed = answer["UnprocessedItems"].get(unique_name, [])
    assert 0 < len(unprocessed) < 25
    retry = client.batch_write_item(RequestItems={unique_name: unprocessed})
    assert retry["UnprocessedItems"] == {}
    assert direct.scan(TableName=unique_name, Select="COUNT")["Count"] == 25


def test_fault_proxy_bulk_429(
    search_service: RunningService, unique_name: str, fault_http_proxy_factory: Any
) -> None:
    proxy = fault_http_proxy_factory(search_service.address, failure_rate=0.3, seed=SEED)
    client = _search_client(replace(search_service, address=proxy.url))
    client.indices.create(index=unique_name)
    actions = []
    for i in range(40):
        actions += [{"index": {"_index": unique_name, "_id": str(i)}}, {"n": i}]
    actions += [{"delete": {"_index": unique_name, "_id": "nothing"}}]
    answer = client.bulk(body=actions)
    rejected = [
        i for i, item in enumerate(answer["items"]) if item[next(iter(item))]["status"] == 429
    ]
    assert answer["errors"] is True
    assert 0 < len(rejected) < 41
    assert (
        answer["items"][rejected[0]][next(iter(answer["items"][rejected[0]]))]["error"]["type"]
        == "es_rejected_execution_exception"
    )
    retry_actions = []
    for i in rejected:
        retry_actions += actions[2 * i : 2 * i + 2] if i < 40 else actions[80:]
    retry = client.bulk(body=retry_actions)
    assert all(item[next(iter(item))]["status"] != 429 for item in retry["items"])
    client.indices.refresh(index=unique_name)
    assert client.count(index=unique_name)["count"] == 40


def test_tcp_proxy_delay_cut_refuse(redis_service: RunningService, tcp_proxy_factory: Any) -> None:
    import redis

    proxy = tcp_proxy_factory(redis_service.host, redis_service.port)
    client = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=5)
    assert client.ping()

    proxy.delay(0.3)
    started = time.monotonic()
    assert client.ping()
    assert time.monotonic() - started >= 0.3  # one chunk each way, both held
    proxy.restore()

    raw = socket.create_connection(("127.0.0.1", proxy.port))
    raw.sendall(b"PING\r\n")
    assert raw.recv(16) == b"+PONG\r\n"
    proxy.cut()
    with pytest.raises(ConnectionResetError):
        raw.sendall(b"PING\r\n")
        if not raw.recv(16):
            raise ConnectionResetError("closed")
    raw.close()

    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    proxy.restore()
    fresh = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=5)
    assert fresh.ping()
