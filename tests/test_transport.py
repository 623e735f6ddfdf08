"""config.transport: kombu's Redis transport with one client per channel, on a real Redis."""

from __future__ import annotations

import uuid

import pytest
import redis
from kombu import Connection, Exchange, Queue

from config.transport import Transport

pytestmark = pytest.mark.redis


@pytest.fixture
def connection(redis_url):
    with Connection(redis_url, transport=Transport) as conn:
        yield conn


@pytest.fixture
def queue(connection):
    q = Queue(f"vq-transport-{uuid.uuid4().hex[:8]}", Exchange("vq-transport", "direct"), routing_key="rk")
    q(connection.default_channel).declare()
    yield q
    q(connection.default_channel).delete()


def test_messages_round_trip_with_one_client_per_channel(connection, queue):
    channel = connection.default_channel
    with connection.Producer() as producer:
        for i in range(20):
            producer.publish({"n": i}, exchange=queue.exchange, routing_key="rk", declare=[queue])
    received = []
    for _ in range(20):
        message = queue(channel).get(no_ack=False)
        received.append(message.payload["n"])
        message.ack()
    assert received == list(range(20))  # published, delivered and acknowledged, in order
    assert channel._create_client() is channel._create_client()


def test_a_replaced_pool_gets_a_new_client(connection):
    channel = connection.default_channel
    before = channel._create_client()
    channel._pool = None  # what kombu does on a lost connection or after a fork
    after = channel._create_client()
    assert after is not before and after.connection_pool is channel.pool
    assert after.ping()


def test_closing_again_after_the_connection_is_gone_is_a_connection_error(redis_url, queue):
    conn = Connection(redis_url, transport=Transport)
    channel = conn.channel()
    with conn.Producer() as producer:
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key="rk", declare=[queue])
    assert queue(channel).get(no_ack=False) is not None  # delivered, not acknowledged
    channel._disconnect_pools()
    conn.transport.client = None  # as Connection.collect() leaves it after a broker crash

    with pytest.raises(redis.ConnectionError) as caught:
        channel._create_client()
    assert isinstance(caught.value, conn.connection_errors)  # what kombu's closing code ignores
    conn.maybe_close_channel(channel)  # restoring the unacked message fails quietly, no AttributeError


def _unacked(connection) -> tuple[set, set]:
    channel = connection.default_channel
    client = channel._create_client()
    return (set(client.zrange(channel.unacked_index_key, 0, -1)), set(client.hkeys(channel.unacked_key)))


def test_a_delivered_message_is_held_until_acknowledged(connection, queue):
    channel = connection.default_channel
    with connection.Producer() as producer:
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key="rk", declare=[queue])
    message = queue(channel).get(no_ack=False)
    tag = message.delivery_tag.encode()
    index, held = _unacked(connection)
    assert tag in index and tag in held  # a dead worker's message can be restored from here
    message.ack()
    index, held = _unacked(connection)
    assert tag not in index and tag not in held


def test_an_unacknowledged_message_is_restored_to_its_queue(redis_url, queue):
    with Connection(redis_url, transport=Transport) as conn:
        with conn.Producer() as producer:
            producer.publish({"n": 7}, exchange=queue.exchange, routing_key="rk", declare=[queue])
        channel = conn.channel()
        assert queue(channel).get(no_ack=False).payload == {"n": 7}  # taken, never acknowledged
        channel.qos.restore_unacked()  # what kombu does for a channel closed with work in hand
    with Connection(redis_url, transport=Transport) as conn:
        again = queue(conn.default_channel).get(no_ack=False)
        assert again is not None and again.payload == {"n": 7}
        again.ack()
        assert _unacked(conn) == (set(), set())


def test_a_rejected_message_is_dropped(connection, queue):
    channel = connection.default_channel
    with connection.Producer() as producer:
        for n in range(2):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="rk", declare=[queue])
    first = queue(channel).get(no_ack=False)
    first.reject(requeue=False)
    second = queue(channel).get(no_ack=False)
    assert second.payload == {"n": 1}
    second.ack()
    assert _unacked(connection) == (set(), set())
    assert queue(channel).get(no_ack=False) is None  # the rejected one did not come back
