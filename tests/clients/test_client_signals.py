"""wonderq.signals: the wakeup socket a blocking consumer's read waits on beside its own.

A signal whose Python handler cannot run yet (it landed just before a blocking
read began, or another thread took it) still writes a byte to the wakeup fd at
once; the subprocess tests in test_client_stop_signals.py show the consumer
ending. These check that the fd is set only while a blocking listener exists and
never over one someone else set.
"""

from __future__ import annotations

import signal
import socket

from wonderq import signals


def current_wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def test_a_blocking_listener_sets_the_wakeup_fd_and_the_last_one_gives_it_back() -> None:
    assert current_wakeup_fd() == -1 and signals.wakeup.reader is None
    first = signals.listen([signal.SIGUSR1], lambda sig: None)
    second = signals.listen([signal.SIGUSR2], lambda sig: None)
    try:
        reader = signals.wakeup.reader
        assert reader is not None and current_wakeup_fd() not in (-1, reader.fileno())
        first.close()
        assert signals.wakeup.reader is reader  # SIGUSR2 is still held
    finally:
        first.close()
        second.close()
    assert current_wakeup_fd() == -1 and signals.wakeup.reader is None


def test_a_signal_writes_to_the_wakeup_socket() -> None:
    got: list[signal.Signals] = []
    listening = signals.listen([signal.SIGUSR1], got.append)
    try:
        reader = signals.wakeup.reader
        assert reader is not None
        signal.raise_signal(signal.SIGUSR1)
        assert got == [signal.SIGUSR1]
        assert reader.recv(16) == bytes([signal.SIGUSR1])
    finally:
        listening.close()


def test_a_wakeup_fd_someone_else_set_is_kept() -> None:
    theirs, their_writer = socket.socketpair()
    their_writer.setblocking(False)
    signal.set_wakeup_fd(their_writer.fileno())
    try:
        listening = signals.listen([signal.SIGUSR1], lambda sig: None)
        assert signals.wakeup.reader is None  # a consumer then reads without it, as before
        assert current_wakeup_fd() == their_writer.fileno()
        listening.close()
        assert current_wakeup_fd() == their_writer.fileno()
    finally:
        signal.set_wakeup_fd(-1)
        theirs.close()
        their_writer.close()
