"""Runs a command (wrk) and reports where the machine's CPU went meanwhile.

    python3 cpu.py SERVER_PID[,SERVER_PID…] -- wrk ...

Prints the command's output, then one line

    CPU busy_pct=N server_pct=N client_pct=N db_pct=N other_pct=N

in percent of all cores over the run: the whole machine (/proc/stat), the
server processes, the command itself, the database server (every process
named `postgres`: its backends live as long as the pool's connections),
and the rest (other processes on a shared machine: the figures of a run
with a large `other` are not to be trusted).
"""

import os
import resource
import subprocess
import sys


def machine():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def process(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def database():
    """CPU ticks of every process named postgres, by pid."""
    ticks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            ticks[pid] = process(pid)
        except OSError:
            pass
    return ticks


def main():
    pids = [int(p) for p in sys.argv[1].split(",")]
    command = sys.argv[sys.argv.index("--") + 1:]
    busy0, total0 = machine()
    server0 = sum(process(p) for p in pids)
    db0 = database()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = machine()
    server1 = sum(process(p) for p in pids)
    db1 = database()
    # Backends that lived through the run; a new one counts from zero.
    db = sum(t - db0.get(pid, 0) for pid, t in db1.items())
    ticks = os.sysconf("SC_CLK_TCK")
    total = max(total1 - total0, 1)
    client = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * ticks
    busy, server = busy1 - busy0, server1 - server0
    other = max(busy - server - client - db, 0)
    pct = lambda x: round(100 * x / total)
    print(f"CPU busy_pct={pct(busy)} server_pct={pct(server)} client_pct={pct(client)} db_pct={pct(db)} other_pct={pct(other)}")
    sys.exit(done.returncode)


main()
