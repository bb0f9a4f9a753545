"""run_worker and consume stop cleanly on SIGINT and SIGTERM: no traceback, exit code 0, the
message in hand finished (or, on a second signal, released), the rest released at once.

Each worker is a script run as its own process (as a user runs it) against a real broker in
the test's event loop. The scripts say where they are on stdout; the client's warning log
lines (stderr) say when a signal was taken, so no test sleeps.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import wonderq

T = 15.0  # seconds any single wait may take; a GET in these scripts waits 60


class Script:
    """A Python script running as a subprocess, read line by line (bounded in time)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr: list[str] = []

    @classmethod
    async def start(cls, code: str, port: int, cwd: Path) -> Script:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-X",
            "faulthandler",  # a hung script's stacks, on the SIGABRT finish() sends
            "-c",
            textwrap.dedent(code).replace("PORT", str(port)),
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def stdout_line(self) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(T):
            line = await self.proc.stdout.readline()
        assert line, f"the script ended early:\n{await self.rest_of_stderr()}"
        return line.decode().strip()

    async def stderr_until(self, text: str) -> str:
        assert self.proc.stderr is not None
        async with asyncio.timeout(T):
            while True:  # bounded by the timeout and by the script's output
                line = (await self.proc.stderr.readline()).decode()
                assert line, f"the script ended before saying {text!r}:\n{''.join(self.stderr)}"
                self.stderr.append(line)
                if text in line:
                    return line.strip()

    async def rest_of_stderr(self) -> str:
        assert self.proc.stderr is not None
        async with asyncio.timeout(T):
            self.stderr.append((await self.proc.stderr.read()).decode())
        return "".join(self.stderr)

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def type_line(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")

    async def finish(self) -> tuple[int, str, str]:
        """Wait for the exit; return its code, the rest of stdout, and all of stderr."""
        try:
            async with asyncio.timeout(T):
                await self.proc.wait()  # the scripts print little: their pipes do not fill
        except TimeoutError:  # where it hangs: SIGABRT makes faulthandler print its stacks
            self.proc.send_signal(signal.SIGABRT)
            async with asyncio.timeout(T):
                await self.proc.wait()
            out, err = await self._rest()
            raise AssertionError(
                f"the script did not exit within {T} s; it printed:\n{out}"
                f"{''.join(self.stderr)}{err}"
            ) from None
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        out, err = await self._rest()
        self.stderr.append(err)
        assert self.proc.returncode is not None  # wait() returned: it exited
        return self.proc.returncode, out, "".join(self.stderr)

    async def _rest(self) -> tuple[str, str]:
        """What is left on stdout and stderr (the script has exited)."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        async with asyncio.timeout(T):
            out, err = await asyncio.gather(self.proc.stdout.read(), self.proc.stderr.read())
        return out.decode(), err.decode()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def assert_clean_exit(code: int, stderr: str) -> None:
    assert code == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


async def assert_consumer_ended_by_sigint(port: int, code: int, out: str, err: str) -> None:
    """The consumer of "jobs" took its one message, then a SIGINT ended its waiting GET:
    a clean exit after its loop, and nothing left leased or waiting on the broker."""
    assert_clean_exit(code, err)
    assert out == "loop ended\n"
    assert "received SIGINT: the consumer of 'jobs'" in err
    stats = await queue_stats(port)
    assert (stats.acked, stats.waiting_consumers, stats.leased) == (1, 0, 0)


async def queue_stats(port: int, queue: str = "jobs") -> wonderq.QueueStats:
    async with wonderq.connect("127.0.0.1", port) as client:
        return (await client.stats(queue)).queues[queue]


async def until_waiting(port: int, queue: str = "jobs") -> None:
    """Return once a GET waits on ``queue`` (asked every 20 ms, for at most T)."""
    async with wonderq.connect("127.0.0.1", port) as client, asyncio.timeout(T):
        for _ in range(int(T / 0.02)):
            if (await client.stats(queue)).queues[queue].waiting_consumers:
                return
            await asyncio.sleep(0.02)  # real time: the GET waits in the broker's task
    raise AssertionError(f"no GET waited on {queue!r} within {T} s")


ASYNC_WORKER = """
    import asyncio, sys, wonderq

    async def handle(message):
        print("started", message.body, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        print("finished", message.body, flush=True)

    async def main():
        async with await wonderq.connect("127.0.0.1", PORT) as client:
            await client.run_worker("jobs", handle, concurrency=1, wait=60)
        print("worker stopped", flush=True)

    asyncio.run(main())
"""

SYNC_WORKER = """
    import sys, wonderq

    def handle(message):
        print("started", message.body, flush=True)
        sys.stdin.readline()
        print("finished", message.body, flush=True)

    with wonderq.connect_sync("127.0.0.1", PORT) as client:
        client.run_worker("jobs", handle, concurrency=1, wait=60)
    print("worker stopped", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("code", [ASYNC_WORKER, SYNC_WORKER], ids=["async", "sync"])
async def test_a_worker_finishes_the_message_in_hand_and_exits_cleanly(
    broker: Any, client: wonderq.AsyncClient, tmp_path: Path, code: str, sig: signal.Signals
) -> None:
    await client.put_many("jobs", ["a", "b"])
    script = await Script.start(code, broker.port, tmp_path)
    try:
        assert await script.stdout_line() == "started a"
        script.send(sig)
        taken = await script.stderr_until(f"received {sig.name}")
        assert taken == (
            f"received {sig.name}: the worker of 'jobs' takes no more messages; 1 running "
            f"handlers get up to 30 s to finish ({sig.name} again to stop at once)"
        )
        script.type_line()  # the handler finishes
        code_, out, err = await script.finish()
    finally:
        await script.kill()
    assert_clean_exit(code_, err)
    assert out.split("\n")[:2] == ["finished a", "worker stopped"]
    stats = await queue_stats(broker.port)
    assert (stats.acked, stats.ready, stats.leased, stats.waiting_consumers) == (1, 1, 0, 0)


async def test_a_second_signal_cancels_the_handler_and_releases_its_message(
    broker: Any, client: wonderq.AsyncClient, tmp_path: Path
) -> None:
    msg_id = await client.put("jobs", "stuck")
    script = await Script.start(
        """
        import asyncio, wonderq

        async def handle(message):
            print("started", message.body, flush=True)
            await asyncio.Event().wait()  # never finishes by itself

        async def main():
            async with await wonderq.connect("127.0.0.1", PORT) as client:
                await client.run_worker("jobs", handle, wait=60)  # grace: 30 s
            print("worker stopped", flush=True)

        asyncio.run(main())
        """,
        broker.port,
        tmp_path,
    )
    try:
        assert await script.stdout_line() == "started stuck"
        script.send(signal.SIGINT)
        await script.stderr_until("received SIGINT: the worker")
        script.send(signal.SIGINT)  # Ctrl-C again: no more waiting
        await script.stderr_until("received SIGINT again: cancelling 1 running handlers")
        code, out, err = await script.finish()  # well within the 30 s grace
    finally:
        await script.kill()
    assert_clean_exit(code, err)
    assert out == "worker stopped\n"
    info = await client.info(msg_id)
    assert (info.state, info.attempts) == (wonderq.MessageState.READY, 1)


async def test_consume_ends_its_loop_and_releases_what_it_fetched(
    broker: Any, client: wonderq.AsyncClient, tmp_path: Path
) -> None:
    await client.put_many("jobs", ["a", "b", "c"])
    script = await Script.start(
        """
        import asyncio, sys, wonderq

        async def main():
            loop = asyncio.get_running_loop()
            async with await wonderq.connect("127.0.0.1", PORT) as client:
                async for message in client.consume("jobs", concurrency=3, wait=60):
                    print("got", message.body, flush=True)
                    await loop.run_in_executor(None, sys.stdin.readline)
                    await message.ack()
                    print("acked", message.body, flush=True)
            print("loop ended", flush=True)

        asyncio.run(main())
        """,
        broker.port,
        tmp_path,
    )
    try:
        assert await script.stdout_line() == "got a"  # b and c are fetched too, not handed out
        script.send(signal.SIGINT)
        assert await script.stderr_until("received SIGINT") == (
            "received SIGINT: the consumer of 'jobs' takes no more messages "
            "(SIGINT again to interrupt)"
        )
        script.type_line()
        code, out, err = await script.finish()
    finally:
        await script.kill()
    assert_clean_exit(code, err)
    assert out == "acked a\nloop ended\n"
    stats = await queue_stats(broker.port)
    assert (stats.acked, stats.ready, stats.leased) == (1, 2, 0)
    again = await client.get("jobs", max=2)
    assert sorted((m.body, m.attempts) for m in again) == [("b", 2), ("c", 2)]


@pytest.mark.parametrize(
    "consume",
    [
        """
        import asyncio, wonderq

        async def main():
            async with await wonderq.connect("127.0.0.1", PORT) as client:
                async for message in client.consume("jobs", wait=60):
                    print("got", message.body, flush=True)
                    await message.ack()
            print("loop ended", flush=True)

        asyncio.run(main())
        """,
        """
        import wonderq

        with wonderq.connect_sync("127.0.0.1", PORT) as client:
            for message in client.consume("jobs", wait=60):
                print("got", message.body, flush=True)
                message.ack()
        print("loop ended", flush=True)
        """,
    ],
    ids=["async", "sync"],
)
async def test_a_signal_ends_a_consumer_waiting_for_messages_at_once(
    broker: Any, client: wonderq.AsyncClient, tmp_path: Path, consume: str
) -> None:
    await client.put("jobs", "a")
    script = await Script.start(consume, broker.port, tmp_path)
    try:
        assert await script.stdout_line() == "got a"  # then its next GET waits (up to 60 s)
        script.send(signal.SIGINT)
        code, out, err = await script.finish()  # within T: the waiting GET was ended
    finally:
        await script.kill()
    await assert_consumer_ended_by_sigint(broker.port, code, out, err)
    await client.put("jobs", "after")  # not leased to the GET that was waiting
    assert [m.attempts for m in await client.get("jobs")] == [1]


async def test_a_signal_another_thread_takes_still_ends_the_waiting_get_at_once(
    broker: Any, client: wonderq.AsyncClient, tmp_path: Path
) -> None:
    """The kernel may hand a process's SIGINT to any of its threads: the main thread's
    read is then not interrupted, and the handler would wait for it (60 s). The same
    happens when the signal lands just before the read starts (CI saw it). The read
    waits on the signal's wakeup socket too, so it ends at once either way."""
    await client.put("jobs", "a")
    script = await Script.start(
        """
        import signal, sys, threading, wonderq

        def interrupt_from_this_thread():
            sys.stdin.readline()
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)

        threading.Thread(target=interrupt_from_this_thread, daemon=True).start()
        with wonderq.connect_sync("127.0.0.1", PORT) as client:
            for message in client.consume("jobs", wait=60):
                print("got", message.body, flush=True)
                message.ack()
        print("loop ended", flush=True)
        """,
        broker.port,
        tmp_path,
    )
    try:
        assert await script.stdout_line() == "got a"  # then its next GET waits (up to 60 s)
        await until_waiting(broker.port)  # the main thread blocks reading its reply
        script.type_line()  # the other thread takes a SIGINT
        code, out, err = await script.finish()  # within T: the waiting GET was ended
    finally:
        await script.kill()
    await assert_consumer_ended_by_sigint(broker.port, code, out, err)


async def test_one_signal_stops_every_worker_of_the_process(
    broker: Any, client: wonderq.AsyncClient, tmp_path: Path
) -> None:
    await client.put("first", "x")
    await client.put("second", "y")
    script = await Script.start(
        """
        import asyncio, wonderq

        async def handle(message):
            print("handled", message.body, flush=True)

        async def main():
            async with await wonderq.connect("127.0.0.1", PORT) as client:
                await asyncio.gather(
                    client.run_worker("first", handle, wait=60),
                    client.run_worker("second", handle, wait=60),
                )
            print("both stopped", flush=True)

        asyncio.run(main())
        """,
        broker.port,
        tmp_path,
    )
    try:
        assert sorted([await script.stdout_line(), await script.stdout_line()]) == [
            "handled x",
            "handled y",
        ]
        script.send(signal.SIGTERM)
        code, out, err = await script.finish()
    finally:
        await script.kill()
    assert_clean_exit(code, err)
    assert out == "both stopped\n"
    assert err.count("received SIGTERM: the worker of") == 2


async def test_a_signal_someone_else_handles_is_left_alone(client: wonderq.AsyncClient) -> None:
    def own(signum: int, frame: object) -> None:
        raise AssertionError("not sent in this test")

    previous = signal.signal(signal.SIGUSR1, own)
    try:
        messages = client.consume("jobs", wait=1, stop_signals=(signal.SIGUSR1, signal.SIGUSR2))
        await client.put("jobs", 1)
        first = await anext(messages)
        assert signal.getsignal(signal.SIGUSR1) is own  # the application's: not taken
        assert signal.getsignal(signal.SIGUSR2) is not signal.SIG_DFL  # free: taken
        await first.ack()
        await messages.aclose()
        assert signal.getsignal(signal.SIGUSR1) is own
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # given back
    finally:
        signal.signal(signal.SIGUSR1, previous)
