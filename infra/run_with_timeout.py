"""Run a command with no standard input in its own process group, and kill the whole group after a
time-out: exit status 124, as timeout(1). Used by deploy.sh and conditional-access.sh for every az call
(az then fails instead of prompting, and a hung call cannot stall a deployment).

    python infra/run_with_timeout.py <seconds> <command> [arguments...]
"""

import os
import signal
import subprocess
import sys

seconds, command = float(sys.argv[1]), sys.argv[2:]
child = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: S603 - the caller's own az command
try:
    sys.exit(child.wait(timeout=seconds))
except subprocess.TimeoutExpired:
    os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
    sys.exit(124)
except KeyboardInterrupt:
    os.killpg(child.pid, signal.SIGTERM)
    sys.exit(130)
