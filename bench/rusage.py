"""Run a command and write its CPU seconds (user + system) to a file: the load generator's own
cost, which tells whether the client core bounds a benchmark row.

    python3 bench/rusage.py OUT_FILE CMD [ARGS...]
"""
import resource
import subprocess
import sys

out, cmd = sys.argv[1], sys.argv[2:]
rc = subprocess.run(cmd).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    f.write("%.3f" % (r.ru_utime + r.ru_stime))
sys.exit(rc)
