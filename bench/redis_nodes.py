"""End-to-end throughput of nodes sharing their queues in one Redis (issue 14).

For 1, 2 and 4 nodes over one loopback redis-server (started and stopped here):
4 producers PUT batches of 64 on node i, 4 consumers GET max 64 with wait and
batch-ACK on node i+1 (so every message crosses nodes), until all are acked.
Prints e2e msg/s and the Redis CPU per message (INFO cpu). Not ``wonderq bench``
yet: a script of its own, run from a checkout:

    .venv/bin/python bench/redis_nodes.py
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.redis.nodes import running_nodes
from tests.redis.servers import RedisServer
from tests.support import LineClient


async def main(n_nodes, total):
    work = Path(tempfile.mkdtemp(prefix="wonderq-redis-bench-"))
    redis = RedisServer(work / f"r{n_nodes}").start()
    try:
        async with running_nodes(redis.url, work, n_nodes) as nodes:
            q = "bench"
            per = total // 4

            async def produce(i):
                async with await LineClient.connect(nodes[i % n_nodes].port) as c:
                    for _ in range(per // 64):
                        await c.call(op="PUT", queue=q, messages=[{"body": {"n": 1}}] * 64)

            got = [0]

            async def consume(i):
                async with await LineClient.connect(nodes[(i + 1) % n_nodes].port) as c:
                    while got[0] < (per // 64) * 64 * 4:
                        r = await c.call(op="GET", queue=q, max=64, wait=1)
                        ids = [m["id"] for m in r["messages"]]
                        if ids:
                            got[0] += len(ids)
                            await c.call(op="ACK", ids=ids)
                        elif got[0] >= (per // 64) * 64 * 4:
                            break

            cpu0 = redis_cpu(redis.port)
            t0 = time.monotonic()
            await asyncio.gather(*(produce(i) for i in range(4)), *(consume(i) for i in range(4)))
            dt = time.monotonic() - t0
            cpu = redis_cpu(redis.port) - cpu0
            print(
                f"nodes={n_nodes} msgs={got[0]} e2e={got[0] / dt:,.0f} msg/s redis_cpu={cpu / got[0] * 1e6:.1f} us/msg"
            )
    finally:
        redis.stop()


def redis_cpu(port):
    from tests.redis.nodes import redis_info

    i = redis_info(port, "cpu")
    return float(i["used_cpu_sys"]) + float(i["used_cpu_user"])


if __name__ == "__main__":
    for n in (1, 2, 4):
        asyncio.run(main(n, 64 * 4 * 150))
