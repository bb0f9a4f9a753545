"""``wonderq bench``: throughput, latency, CPU and memory of WonderQ and its peers.

Owns: the load generator (``workloads``), one wire adapter per broker
(``adapters``: WonderQ JSON lines, beanstalkd's text protocol, Redis' RESP, all
behind the same interface so every broker runs the very same client code),
starting and stopping broker processes (``procs``) and the report (``report``).
Must never: talk to anything but loopback, leave a server it started running,
or run a loop without a bound on its count or its time.
"""
