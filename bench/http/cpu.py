"""Runs a command (wrk) and reports where the machine's CPU went meanwhile.

    python3 cpu.py SERVER_PID -- wrk ...

Prints the command's output, then one line

    CPU busy_pct=N server_pct=N client_pct=N other_pct=N

in percent of all cores over the run: the whole machine (/proc/stat), the
server process, the command itself, and the rest (other processes on a
shared machine: the figures of a run with a large `other` are not to be
trusted).
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


def main():
    pid = int(sys.argv[1])
    command = sys.argv[sys.argv.index("--") + 1:]
    busy0, total0 = machine()
    server0 = process(pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = machine()
    server1 = process(pid)
    ticks = os.sysconf("SC_CLK_TCK")
    total = max(total1 - total0, 1)
    client = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * ticks
    busy, server = busy1 - busy0, server1 - server0
    other = max(busy - server - client, 0)
    pct = lambda x: round(100 * x / total)
    print(f"CPU busy_pct={pct(busy)} server_pct={pct(server)} client_pct={pct(client)} other_pct={pct(other)}")
    sys.exit(done.returncode)


main()
