"""The Synap seed's documented examples through `roost.compat.synap`, as the seed writes them
with only the import changed, on SQLite and PostgreSQL (the sync tests are generated from these).

Filled in: the server's URL and a real API key for the examples' placeholders, annotations
that `mypy --strict` wants, and the helpers an example leaves to the reader (`process_task`,
`get_username`, `send_email`). Where an example cannot run as written the test pins what
happens instead, and docs/coming-from-synap.md says why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import wraps
from typing import Any

import pytest

from roost.compat._async.synap import AsyncSynapClient
from roost.compat.synap import (
    ClientConfig,
    GetResult,
    KeyNotFoundError,
    QueueMessage,
    QueueNotFoundError,
    RateLimitError,
    RoomNotFoundError,
    StreamEvent,
    SynapError,
)
from roost.errors import NotFoundError, RoostError
from tests.compat._async.waiting import wait_until
from tests.compat.tenants import Tenant
from tests.conftest import RunningServer
from tests.proxy import FlakyProxy


@pytest.fixture
def synap_env(
    server: RunningServer, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """The URL and API key, also as SYNAP_URL / SYNAP_API_KEY (the examples that name none)."""
    monkeypatch.setenv("SYNAP_URL", server.url)
    monkeypatch.setenv("SYNAP_API_KEY", tenant.key)
    return server.url, tenant.key


@pytest.mark.anyio
async def test_quick_start(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    client = AsyncSynapClient(url=url, api_key=api_key)

    # Key-Value operations
    await client.kv.set("user:1", {"name": "Alice"}, ttl=3600)
    value = await client.kv.get("user:1")

    # Queue operations
    await client.queue.publish("tasks", {"type": "send_email"})
    message = await client.queue.consume("tasks")
    assert message is not None
    await client.queue.ack("tasks", message.message_id)

    await client.close()
    assert (value.found, value.value) == (True, {"name": "Alice"})
    assert message.message == {"type": "send_email"}


@pytest.mark.anyio
async def test_client_configuration(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    config = ClientConfig(
        url=url,
        api_key=api_key,
        timeout=30.0,  # Request timeout in seconds
        retries=3,  # Retry attempts
        pool_size=10,  # Connection pool size
        keep_alive=True,  # Keep-alive connections
        compression=False,  # Enable gzip compression
        format="json",  # 'json' or 'msgpack'
    )

    client = AsyncSynapClient(config)
    native = client.native.config
    assert (native.api_url, native.timeout, native.max_retries, native.pool_size) == (
        url,
        30.0,
        3,
        10,
    )
    assert native.token_type == "api_key"
    await client.kv.set("config:checked", True)
    await client.close()


@pytest.mark.anyio
async def test_kv_set_get_delete_incr(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        result: Any = {"rows": 3}
        # Simple set
        await client.kv.set("session:abc", {"user_id": 123})
        # With TTL (1 hour)
        await client.kv.set("cache:data", result, ttl=3600)
        # Conditional set
        await client.kv.delete("lock:resource")
        result = await client.kv.set("lock:resource", True, ttl=60, nx=True)
        assert result.success
        again = await client.kv.set("lock:resource", True, ttl=60, nx=True)
        assert not again  # the answer's truth value is its outcome
        if again.success:
            pytest.fail("a taken lock was acquired")

        await client.kv.set("user:1001", {"name": "Bob"}, ttl=600)
        got = await client.kv.get("user:1001")
        if got.found:
            assert got.value == {"name": "Bob"}
            assert got.ttl is not None
            assert 0 < got.ttl <= 600

        # Delete single key
        await client.kv.delete("user:1001")
        # Delete multiple keys
        await client.kv.set("user:1002", 2)
        await client.kv.set("user:1003", 3)
        deleted = await client.kv.delete("user:1001", "user:1002", "user:1003")
        assert deleted == 2

        await client.kv.delete("article:123:views", "counter", "inventory:item:42")
        await client.kv.set("inventory:item:42", 10)
        # Increment page views
        views = await client.kv.incr("article:123:views")
        # Increment by custom amount
        count = await client.kv.incr("counter", amount=5)
        # Decrement inventory
        remaining = await client.kv.decr("inventory:item:42")
        assert (views, count, remaining) == (1, 5, 9)


@pytest.mark.anyio
async def test_kv_get_of_a_missing_key_raises_key_not_found(synap_env: tuple[str, str]) -> None:
    """The seed's error example; its GET example's `else` branch (found is False) is never
    reached: the seed shows both answers for the same call, and the compat raises."""
    url, _ = synap_env
    client = AsyncSynapClient(url=url)  # the API key: SYNAP_API_KEY
    caught: list[str] = []
    try:
        value = await client.kv.get("nonexistent-key")
        caught.append(f"value {value}")
    except KeyNotFoundError as e:
        caught.append(f"Key not found: {e.details}")
    except RateLimitError as e:
        caught.append(f"Rate limited, retry after: {e.details.get('retry_after')}")
    except SynapError as e:
        caught.append(f"Synap error [{e.code}]: {e.message}")
    await client.close()
    assert caught == ["Key not found: {'key': 'nonexistent-key'}"]
    assert issubclass(KeyNotFoundError, NotFoundError)
    assert issubclass(SynapError, RoostError)
    assert SynapError is RoostError


@pytest.mark.anyio
async def test_kv_scan_pages_through_every_key(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        for n in range(7):
            await client.kv.set(f"user:scan:{n}", n)
        # Scan all user keys
        cursor = None
        all_keys = []

        while True:
            result = await client.kv.scan(prefix="user:scan:", cursor=cursor, count=3)
            all_keys.extend(result.keys)

            if not result.has_more:
                break

            cursor = result.cursor

        assert sorted(all_keys) == [f"user:scan:{n}" for n in range(7)]
        assert (await client.kv.scan()).keys  # no prefix: every key


@pytest.mark.anyio
async def test_queue_publish_consume_ack_nack(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        result = await client.queue.publish(
            "emails",
            {"type": "send_email", "to": "user@example.com", "subject": "Welcome!"},
            priority=8,
            headers={"source": "signup-flow"},
        )
        assert result.position == 0
        assert result.message_id

        # Poll for message (return immediately if none)
        msg = await client.queue.consume("emails")
        assert msg is not None
        assert msg.headers == {"source": "signup-flow"}
        await client.queue.nack("emails", msg.message_id, requeue=True)

        # Wait up to 30 seconds
        msg = await client.queue.consume("emails", timeout=30)

        processed: list[Any] = []

        async def process_task(task: Any) -> None:
            processed.append(task)

        if msg:
            try:
                # Process message
                await process_task(msg.message)

                # Acknowledge success
                await client.queue.ack("emails", msg.message_id)

            except Exception:
                # Negative acknowledge (requeue)
                await client.queue.nack("emails", msg.message_id, requeue=True)
        assert processed == [
            {"type": "send_email", "to": "user@example.com", "subject": "Welcome!"}
        ]
        assert msg is not None
        assert msg.retry_count == 1

        # a message no longer in flight: Synap's error for an unknown queue or message
        with pytest.raises(QueueNotFoundError):
            await client.queue.ack("emails", msg.message_id)
        with pytest.raises(QueueNotFoundError):
            await client.queue.nack("never-used", msg.message_id)


@pytest.mark.anyio
async def test_stream_publish_subscribe_history(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        with pytest.raises(RoomNotFoundError):
            await client.stream.history("chat-room-1")
        result = await client.stream.publish(
            "chat-room-1",
            "message",
            {"user": "alice", "text": "Hello everyone!", "timestamp": datetime.now().isoformat()},
        )
        assert (result.offset, result.subscribers_notified) == (0, 0)

        printed: list[str] = []

        def on_event(event: StreamEvent) -> None:
            if event.event_type == "message":
                printed.append(f"{event.data['user']}: {event.data['text']}")

        # Subscribe with history
        subscription = await client.stream.subscribe(
            "chat-room-1",
            on_event,
            from_offset=-50,  # Last 50 events
            replay=True,
        )
        await wait_until(lambda: printed == ["alice: Hello everyone!"])
        assert subscription.room == "chat-room-1"

        # Later: unsubscribe
        await subscription.unsubscribe()

        history = await client.stream.history("chat-room-1", from_offset=0, limit=100)
        assert (len(history.events), history.oldest_offset, history.newest_offset) == (1, 0, 0)


@pytest.mark.anyio
async def test_pubsub_publish_and_wildcard_subscribe(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        printed: list[str] = []

        def on_message(topic: str, message: Any) -> None:
            printed.append(f"[{topic}] {message}")

        # Subscribe with wildcards
        subscription = await client.pubsub.subscribe(
            ["notifications.email.*", "events.user.#"], on_message
        )

        result = await client.pubsub.publish(
            "notifications.email.user",
            {"to": "alice@example.com", "subject": "Welcome!", "body": "Thanks for signing up"},
        )
        assert result.subscribers_matched == 1
        await client.pubsub.publish("events.user.signed.up", "bob")
        await wait_until(lambda: len(printed) == 2)
        assert printed[1] == "[events.user.signed.up] bob"

        # Unsubscribe
        await subscription.unsubscribe()


@pytest.mark.anyio
async def test_context_manager_and_explicit_close(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        await client.kv.set("key", "value")
        result = await client.kv.get("key")
    # Automatically closes connection
    assert result.value == "value"

    client = AsyncSynapClient(url=url, api_key=api_key)

    try:
        await client.kv.set("key", "value")
    finally:
        await client.close()  # Clean shutdown


@pytest.mark.anyio
async def test_type_hints_example(synap_env: tuple[str, str]) -> None:
    """Its `else None` is never reached: a missing key raises KeyNotFoundError."""
    url, api_key = synap_env

    async def get_user(client: AsyncSynapClient, user_id: int) -> dict[str, Any] | None:
        result: GetResult = await client.kv.get(f"user:{user_id}")
        return result.value if result.found else None

    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        await client.kv.set("user:7", {"name": "Gus"})
        assert await get_user(client, 7) == {"name": "Gus"}
        with pytest.raises(KeyNotFoundError):
            await get_user(client, 8)


@pytest.mark.anyio
async def test_cache_decorator_example(synap_env: tuple[str, str]) -> None:
    """The decorator's miss raises KeyNotFoundError before it can compute: the seed's
    `if result.found` needs a `try` on Roost (docs/coming-from-synap.md)."""
    url, api_key = synap_env
    computed: list[int] = []

    async def fetch_from_database(user_id: int) -> dict[str, Any]:
        computed.append(user_id)
        return {"id": user_id}

    def cached(ttl: int = 3600) -> Callable[[Any], Any]:
        def decorator(func: Any) -> Any:
            @wraps(func)
            async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                cache_key = f"{func.__name__}:{args}:{kwargs}"

                # Try cache
                result = await self.client.kv.get(cache_key)
                if result.found:
                    return result.value

                # Compute value
                value = await func(self, *args, **kwargs)

                # Store in cache
                await self.client.kv.set(cache_key, value, ttl=ttl)

                return value

            return wrapper

        return decorator

    class UserService:
        def __init__(self, client: AsyncSynapClient) -> None:
            self.client = client

        @cached(ttl=300)
        async def get_user_profile(self, user_id: int) -> dict[str, Any]:
            # Expensive database query
            return await fetch_from_database(user_id)

    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        service = UserService(client)
        await client.kv.set("get_user_profile:(5,):{}", {"id": 5, "cached": True})
        assert await service.get_user_profile(5) == {"id": 5, "cached": True}
        with pytest.raises(KeyNotFoundError):
            await service.get_user_profile(6)
        assert computed == []


@pytest.mark.anyio
async def test_background_task_worker_example(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    processed: list[dict[str, Any]] = []

    class TaskWorker:
        def __init__(self, client: AsyncSynapClient, queue_name: str) -> None:
            self.client = client
            self.queue_name = queue_name
            self.running = False

        async def start(self) -> None:
            self.running = True

            while self.running:
                msg: QueueMessage | None = None
                try:
                    # Wait for task (30 second timeout)
                    msg = await self.client.queue.consume(
                        self.queue_name, timeout=30, ack_deadline=300
                    )

                    if not msg:
                        continue

                    # Process task
                    await self.process_task(msg.message)

                    # Acknowledge completion
                    await self.client.queue.ack(self.queue_name, msg.message_id)

                except Exception as e:
                    print(f"Worker error: {e}")

                    # NACK on failure
                    if msg:
                        await self.client.queue.nack(self.queue_name, msg.message_id, requeue=True)

        async def process_task(self, task: dict[str, Any]) -> None:
            # Task processing logic
            print(f"Processing task: {task}")
            processed.append(task)
            self.stop()  # the test's own: one task, then the loop ends

        def stop(self) -> None:
            self.running = False

    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        await client.queue.publish("work", {"data": "value"})
        await TaskWorker(client, "work").start()
        assert processed == [{"data": "value"}]
        assert (await client.native.queue.stats("work")).in_flight == 0


@pytest.mark.anyio
async def test_event_stream_listener_example(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    printed: list[str] = []

    class ChatListener:
        def __init__(self, client: AsyncSynapClient) -> None:
            self.client = client
            self.subscription: Any = None

        def get_username(self) -> str:  # the reader's own, in the seed
            return "carol"

        async def join_room(self, room_id: str) -> None:
            def on_event(event: StreamEvent) -> None:
                if event.event_type == "message":
                    printed.append(f"{event.data['user']}: {event.data['text']}")
                elif event.event_type == "join":
                    printed.append(f"{event.data['user']} joined the room")
                elif event.event_type == "leave":
                    printed.append(f"{event.data['user']} left the room")

            self.subscription = await self.client.stream.subscribe(
                f"chat-{room_id}",
                on_event,
                from_offset=-50,  # Last 50 messages
                replay=True,
            )

        async def send_message(self, room_id: str, text: str) -> None:
            await self.client.stream.publish(
                f"chat-{room_id}",
                "message",
                {
                    "user": self.get_username(),
                    "text": text,
                    "timestamp": datetime.now().isoformat(),
                },
            )

        async def leave_room(self) -> None:
            if self.subscription:
                await self.subscription.unsubscribe()

    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        await client.stream.publish("chat-lobby", "join", {"user": "dave"})
        listener = ChatListener(client)
        await listener.join_room("lobby")
        await listener.send_message("lobby", "hi all")
        await wait_until(lambda: len(printed) == 2)
        await listener.leave_room()
        assert printed == ["dave joined the room", "carol: hi all"]


@pytest.mark.anyio
async def test_pubsub_notifications_example(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    sent: list[tuple[str, Any]] = []

    class NotificationService:
        def __init__(self, client: AsyncSynapClient) -> None:
            self.client = client

        async def start_listening(self) -> None:
            await self.client.pubsub.subscribe(
                ["notifications.#"],  # All notifications
                self.handle_notification,
            )

        def handle_notification(self, topic: str, message: dict[str, Any]) -> None:
            if topic.startswith("notifications.email"):
                self.send_email(message)
            elif topic.startswith("notifications.sms"):
                self.send_sms(message)

        def send_email(self, message: dict[str, Any]) -> None:  # the reader's own
            sent.append(("email", message["to"]))

        def send_sms(self, message: dict[str, Any]) -> None:  # the reader's own
            sent.append(("sms", message))

        async def notify_email(self, to: str, subject: str, body: str) -> None:
            await self.client.pubsub.publish(
                "notifications.email.user",
                {
                    "to": to,
                    "subject": subject,
                    "body": body,
                    "timestamp": datetime.now().isoformat(),
                },
            )

    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        service = NotificationService(client)
        await service.start_listening()
        await service.notify_email("erin@example.com", "Hi", "Hello")
        await wait_until(lambda: sent == [("email", "erin@example.com")])


@pytest.mark.anyio
async def test_fixture_example(synap_env: tuple[str, str]) -> None:
    """The seed's pytest fixture, run by the anyio plugin (the seed uses pytest-asyncio)."""
    url, api_key = synap_env

    async def synap_client() -> AsyncIterator[AsyncSynapClient]:
        client = AsyncSynapClient(url=url, api_key=api_key)
        yield client
        await client.close()

    async for synap_client_ in synap_client():
        # Test set and get
        await synap_client_.kv.set("test-key", "test-value")
        result = await synap_client_.kv.get("test-key")

        assert result.found
        assert result.value == "test-value"


@pytest.mark.anyio
async def test_settings_from_the_environment_and_reconnection_options(
    synap_env: tuple[str, str],
) -> None:
    # Pool is managed automatically (the URL and key: SYNAP_URL, SYNAP_API_KEY)
    client = AsyncSynapClient(pool_size=20)
    await client.kv.set("key1", 1)
    assert (await client.kv.get("key1")).value == 1
    assert client.native.config.pool_size == 20
    await client.close()

    url, _ = synap_env
    client = AsyncSynapClient(
        url=url,
        retries=5,
        retry_delay=1.0,  # Initial delay (seconds)
        retry_backoff=2.0,  # Exponential backoff
        retry_max_delay=30.0,  # Max delay
    )
    native = client.native.config
    assert (native.max_retries, native.retry_delay, native.retry_multiplier) == (5, 1.0, 2.0)
    assert native.retry_max_delay == 30.0
    await client.close()


@pytest.mark.anyio
async def test_batch_operations(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    async with AsyncSynapClient(url=url, api_key=api_key) as client:
        results = await client.batch(
            [
                {"command": "kv.set", "payload": {"key": "user:1", "value": "Alice"}},
                {"command": "kv.set", "payload": {"key": "user:2", "value": "Bob"}},
                {"command": "kv.get", "payload": {"key": "user:1"}},
            ]
        )

        printed = []
        for result in results:
            if result.status == "success":
                printed.append(f"Success: {result.payload}")
            else:
                printed.append(f"Error: {result.error}")
        assert len(printed) == 3
        assert all(line.startswith("Success") for line in printed)
        assert results[2].payload["value"] == "Alice"


@pytest.mark.anyio
async def test_msgpack_serialization(synap_env: tuple[str, str]) -> None:
    url, api_key = synap_env
    client = AsyncSynapClient(url=url, api_key=api_key, format="msgpack")

    # Values are serialized with MessagePack
    large_object = {"blob": list(range(1000))}
    await client.kv.set("binary-data", large_object)
    assert (await client.kv.get("binary-data")).value == large_object
    await client.close()


@pytest.mark.anyio
async def test_event_handlers(
    server: RunningServer, tenant: Tenant, flaky_proxy: Callable[[str], FlakyProxy]
) -> None:
    proxy = flaky_proxy(server.url)
    client = AsyncSynapClient(url=proxy.url, api_key=tenant.key)
    seen: list[str] = []

    @client.on("connected")
    async def on_connected() -> None:
        seen.append("Connected to Synap")

    @client.on("disconnected")
    async def on_disconnected(reason: str) -> None:
        seen.append(f"Disconnected: {reason}")

    @client.on("error")
    async def on_error(error: Exception) -> None:
        seen.append(f"Error: {error}")

    await client.pubsub.subscribe(["handlers.#"], lambda topic, message: None)
    await wait_until(lambda: "Connected to Synap" in seen)
    proxy.cut_all()
    await wait_until(lambda: any(line.startswith("Disconnected: ") for line in seen))
    reason = next(line for line in seen if line.startswith("Disconnected: "))
    assert len(reason) > len("Disconnected: ")
    assert callable(on_connected)  # the decorator hands the function back
    await client.close()
