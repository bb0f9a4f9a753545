"""``wonderq bench``: throughput, latency, CPU and memory of WonderQ and its peers.

Owns: the load (``workloads``: producers and consumers on one load process's
connections; ``worker``: a load process; ``fleet``: running a plan over several
load processes and merging what they saw), one raw wire adapter per broker
(``adapters``: WonderQ JSON lines, beanstalkd's text protocol, Redis' RESP, all
behind the same interface so every broker runs the very same client code), the
servers it starts and stops (``procs``), the floor server (``floor``: the least
a Python broker on this stack pays per request), the flat-cost backgrounds
(``backgrounds``) and the report (``report``).
Must never: talk to anything but loopback, leave a process it started running,
or run a loop without a bound on its count or its time.
"""
