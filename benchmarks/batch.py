"""Batch tracking on a local dask cluster: speed, byte-identity with serial runs, and faults.

Run from the repo root: ``python benchmarks/batch.py`` (options: ``--help``). It simulates
``--sequences`` fluo-nuclei sequences, tracks them one by one in-process with ``celltrail track``
and then with :func:`celltrail.batch.run_batch` on a ``--workers`` LocalCluster, and compares
every output file by hash. Then two faults: (a) one worker process is killed (SIGKILL) once the
first sequence is done; (b) the whole batch (driver and workers) is killed the same way, and the
manifest is run again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client

import celltrail
from celltrail.batch import local_cluster, run_batch
from celltrail.simulate import SimParams, simulate


def cpu_seconds() -> float:
    """User and system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def hashes(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` of the files of a folder (empty when it does not exist)."""
    if not folder.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def identical(root: Path, runs: str, n: int) -> list[bool]:
    """Whether each output folder ``root/runs/i`` is byte-identical to ``root/serial/i``."""
    return [bool(hashes(root / runs / f"{i}"))
            and hashes(root / runs / f"{i}") == hashes(root / "serial" / f"{i}") for i in range(n)]


def leftovers(folder: Path) -> list[str]:
    """Temporary folders of interrupted atomic writes (``.NAME.XXXX.tmp``)."""
    return sorted(p.name for p in folder.glob(".*.tmp")) if folder.is_dir() else []


def manifest(root: Path, runs: str, n: int) -> Path:
    """A manifest writing the ``n`` sequences to ``root/runs/i``."""
    path = root / f"{runs}.csv"
    path.write_text("input,out\n" + "".join(f"seq{i}/01,{runs}/{i}\n" for i in range(n)))
    return path


def kill_one_worker(root: Path, n: int, workers: int) -> tuple[str, dict[str, int]]:
    """Fault (a): SIGKILL a busy worker process once the first sequence is done; the statuses."""
    path = manifest(root, "fault_a", n)
    killed = []
    with local_cluster(workers) as cluster, Client(cluster) as client:

        def on_done(done: int, _: int) -> None:
            if done == 1:
                busy = [w for w, keys in client.processing().items() if keys]
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                killed.append(f"worker pid {pid} while writing {leftovers(root / 'fault_a')}")
                os.kill(pid, signal.SIGKILL)

        summary = run_batch(path, scheduler=cluster.scheduler_address, progress=on_done)
    return killed[0], summary["status"].value_counts().to_dict()


def kill_batch(root: Path, n: int, workers: int) -> tuple[int, list[str], list[bool]]:
    """Fault (b): SIGKILL the batch's whole process group once a sequence is done; the folders
    complete at that moment, the temporary leftovers and which outputs are then intact."""
    path = manifest(root, "fault_b", n)
    code = f"from celltrail.batch import run_batch; run_batch({str(path)!r}, workers={workers})"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            stderr=subprocess.DEVNULL)
    out = root / "fault_b"
    while not any((out / f"{i}" / "res_track.txt").exists() for i in range(n)):
        time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError("the batch ended before it could be killed")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    complete = sum((out / f"{i}" / "res_track.txt").exists() for i in range(n))
    return complete, leftovers(out), identical(root, "fault_b", n)


def arguments() -> argparse.Namespace:
    """The command line: how many sequences, of what size, on how many workers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    n = args.sequences
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        params = SimParams(frames=args.frames, size=args.size, cells=args.cells)
        for i in range(n):
            simulate(root / f"seq{i}", params, seed=i)
        print(f"{n} simulated fluo-nuclei sequences, {args.size}x{args.size}x{args.frames}, "
              f"{args.cells} cells; {args.workers} workers on {os.cpu_count()} cores")

        start, cpu_start = time.perf_counter(), time.process_time()
        for i in range(n):  # as `celltrail track` does, in this process
            celltrail.track(root / f"seq{i}" / "01").save(root / "serial" / f"{i}")
        serial, serial_cpu = time.perf_counter() - start, time.process_time() - cpu_start

        start = time.perf_counter()  # run_batch's own cluster, made here to read its CPU time
        with local_cluster(args.workers) as cluster, Client(cluster) as client:
            started = time.perf_counter() - start
            summary = run_batch(manifest(root, "batch", n), scheduler=cluster.scheduler_address)
            batch = time.perf_counter() - start
            batch_cpu = sum(client.run(cpu_seconds).values())
        same = identical(root, "batch", n)
        start = time.perf_counter()
        rerun = run_batch(root / "batch.csv", workers=args.workers)
        again = time.perf_counter() - start

        killed, statuses_a = kill_one_worker(root, n, args.workers)
        same_a = identical(root, "fault_a", n)
        left_a = leftovers(root / "fault_a")
        rerun_a = run_batch(root / "fault_a.csv", workers=args.workers)

        complete, left_b, intact_b = kill_batch(root, n, args.workers)
        rerun_b = run_batch(root / "fault_b.csv", workers=args.workers)
        same_b = identical(root, "fault_b", n)
        after_b = leftovers(root / "fault_b")

    rows = [
        ("serial, celltrail track one by one (in-process)", f"{serial:.2f} s",
         f"reference; CPU {serial_cpu:.1f} s"),
        (f"run_batch, LocalCluster {args.workers} workers", f"{batch:.2f} s",
         f"of which cluster start {started:.2f} s; worker CPU {batch_cpu:.1f} s; "
         f"{sum(same)}/{n} byte-identical, statuses {summary['status'].value_counts().to_dict()}"),
        ("rerun of the finished batch (incl. start)", f"{again:.2f} s",
         f"statuses {rerun['status'].value_counts().to_dict()}"),
        ("(a) kill one worker after 1st sequence", "",
         f"killed {killed}; statuses {statuses_a}; {sum(same_a)}/{n} byte-identical; "
         f"leftover temp folders {left_a}"),
        ("(a) rerun", "", f"statuses {rerun_a['status'].value_counts().to_dict()}"),
        ("(b) kill the whole batch after 1st sequence", "",
         f"{complete}/{n} folders complete, of them {sum(intact_b)} byte-identical; others "
         f"absent; leftover temp folders {left_b}"),
        ("(b) rerun", "", f"statuses {rerun_b['status'].value_counts().to_dict()}; "
                          f"{sum(same_b)}/{n} byte-identical; leftover temp folders {after_b}"),
    ]
    width = max(len(r[0]) for r in rows)
    for what, seconds, result in rows:
        print(f"{what:<{width}}  {seconds:>8}  {result}")


if __name__ == "__main__":
    main()
