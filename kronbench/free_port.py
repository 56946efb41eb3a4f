"""`python -m kronbench.free_port` prints a TCP port that is free on this host now: the rendezvous port of one
multi-process launch (workflow `launcher`), so that jobs sharing a node do not all meet on the default 29500.
Another process may take it before the launch binds it; the window is the launcher's start-up, well under a second
of a job's life."""

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))  # port 0: the kernel picks an unused one
        return s.getsockname()[1]


if __name__ == "__main__":
    print(free_port())
