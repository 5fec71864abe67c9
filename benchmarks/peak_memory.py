"""Wall time and peak memory of a command and every process it starts.

    python benchmarks/peak_memory.py make run

`/usr/bin/time -v` reports the largest single process; `polyrec run` trains in several
(run_jobs.py), so this samples the whole process tree every half second and prints the peak
of the summed RSS (shared pages counted once per process: an upper bound) and of the summed
PSS (shared pages split among the processes that map them), and each process's own peak.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil


def main(command: list[str], every: float = 0.5) -> int:
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    root = psutil.Process(proc.pid)
    peak_rss = peak_pss = 0
    per_process: dict[tuple[int, str], int] = {}
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        rss = pss = 0
        for p in tree:
            try:
                info = p.memory_full_info()
                name = " ".join(p.cmdline())[:70]
            except psutil.Error:
                continue  # ended between listing and reading
            rss, pss = rss + info.rss, pss + info.pss
            per_process[p.pid, name] = max(per_process.get((p.pid, name), 0), info.rss)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(every)
    code = proc.wait()
    gib = 2**30
    print(f"wall {time.perf_counter() - start:.1f} s · peak memory of the process tree: "
          f"{peak_rss / gib:.2f} GiB summed RSS, {peak_pss / gib:.2f} GiB summed PSS · exit {code}")
    for (pid, name), rss in sorted(per_process.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {rss / 2**20:7.0f} MB  pid {pid}  {name}")
    return code


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
