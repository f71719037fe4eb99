"""Lithops side of wisp's benchmark (`cargo run -p wisp-bench -- --lithops`).

Runs, on Lithops' localhost backend with localhost storage, the two
workloads that wisp's benchmark also runs:

1. a map of N no-op calls, timed from `map()` to the end of `get_result()`;
2. the word count of `examples/wordcount` over a text corpus: every file cut
   into newline-aligned chunks of about 256 KiB, each chunk's text passed to
   one map call, the per-chunk counts added up by one reduce call
   (`map_reduce`), timed from listing the files to the reduced result.

The chunks are cut here, from the local files, exactly as
`wisp::partition::partition` cuts them, and each call receives
`{"source", "offset", "text"}`, the argument wisp's `count_words` receives.
Lithops' own partitioner (`obj_chunk_size`) is not used: it needs the data
uploaded to its storage first, and wisp's side reads local files too.

Lithops is configured in code, not from ~/.lithops/config:

- backend `localhost` (its default version 2 handler: one fresh process of
  the host Python per call, `worker_processes` calls at a time; version 1
  with `--localhost-version 1`), with the runtime set to this interpreter's absolute path, so that calls run in the
  same virtualenv and no container engine is involved;
- storage `localhost`, which keeps its objects under the system temporary
  directory: TMPDIR and HOME point into a fresh work directory before
  Lithops is imported, so its storage, job files, logs and runtime cache
  all land there;
- `data_limit` raised from 4 MiB to 64 MiB: the word count passes the whole
  corpus (4.4 MB) as the calls' arguments, as wisp does;
- `data_cleaner` off, like wisp's benchmark: nothing is deleted while
  timing, and the work directory is removed at the end (or left to the
  caller when `--work-dir` is given).

Progress goes to stderr; stdout gets one JSON object with the figures.
"""

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time

WORD = re.compile(r"[^\W_]+")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000,
                        help="no-op calls in the timed map (default 1000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="calls run at a time (default: one per core)")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="seconds the timed map may take: when the warm-up "
                             "says --calls would take longer, fewer calls are "
                             "made, and the JSON says so (default 600)")
    parser.add_argument("--data", default=None,
                        help="corpus for the word count (default: "
                             "examples/data/first-folio of this repository); "
                             "empty to skip the word count")
    parser.add_argument("--chunk-size", type=int, default=256 * 1024,
                        help="bytes per word-count chunk (default 262144)")
    parser.add_argument("--localhost-version", type=int, choices=(1, 2), default=2,
                        help="Lithops' localhost handler: 2, its default, runs "
                             "each call in a fresh process; 1 runs each job in "
                             "one process that forks the workers (default 2)")
    parser.add_argument("--work-dir", default=None,
                        help="where Lithops' storage, jobs and logs go; kept "
                             "afterwards (default: a temporary directory, "
                             "removed at the end)")
    args = parser.parse_args()
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.chunk_size < 1:
        parser.error("--chunk-size must be at least 1")
    if args.data is None:
        here = os.path.dirname(os.path.abspath(__file__))
        args.data = os.path.join(here, "..", "..", "examples", "data", "first-folio")
    return args


def log(message):
    print(f"lithops driver: {message}", file=sys.stderr, flush=True)


# --- The functions the calls run. Defined at module level, so Lithops ships
# them by value with the job.

def noop(x):
    # Returns its argument: Lithops gives no result at all for a call that
    # returns None, and the map's results are counted.
    return x


def count_words(source, offset, text):
    """Counts the words of one chunk: maximal runs of letters and digits,
    lowercased (wisp's `count_words`)."""
    counts = {}
    for word in WORD.findall(text.lower()):
        counts[word] = counts.get(word, 0) + 1
    return counts


def merge_counts(results):
    """Adds up the per-chunk counts and puts a summary first
    (wisp's `merge_counts`)."""
    total = {}
    for part in results:
        for word, n in part.items():
            total[word] = total.get(word, 0) + n
    ranked = sorted(total.items(), key=lambda wn: (-wn[1], wn[0]))
    return {
        "total_words": sum(total.values()),
        "distinct_words": len(total),
        "top": ranked[:10],
        "counts": dict(sorted(total.items())),
    }


# --- Partitioning, as wisp::partition does it.

def files_under(path):
    """The file itself, or every file below the directory in name order,
    skipping names that start with a dot."""
    if os.path.isfile(path):
        return [path]
    files = []
    for name in sorted(os.listdir(path)):
        if name.startswith("."):
            continue
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            files.extend(files_under(full))
        elif os.path.isfile(full):
            files.append(full)
    return files


def chunks_of(files, chunk_size):
    """Each file cut into ranges of about chunk_size bytes, every cut moved
    to just past the next newline; each as the argument of one call."""
    chunks = []
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        while start < len(data):
            end = min(start + chunk_size, len(data))
            if end < len(data):
                newline = data.find(b"\n", end)
                end = len(data) if newline < 0 else newline + 1
            chunks.append({
                "source": path,
                "offset": start,
                "text": data[start:end].decode("utf-8"),
            })
            start = end
    return chunks


# --- The measurements.

def timed_map(fexec, calls):
    started = time.perf_counter()
    futures = fexec.map(noop, range(calls))
    submitted = time.perf_counter() - started
    results = fexec.get_result(futures, show_progressbar=False)
    wall = time.perf_counter() - started
    if len(results) != calls:
        raise RuntimeError(f"a map of {calls} calls gave {len(results)} results")
    return submitted, wall


def measure_noop(fexec, args):
    # A first map deploys the runtime (Lithops asks the interpreter for its
    # metadata) and starts the consumer threads; it is not timed as the
    # figure, only used to tell whether --calls fits in the budget.
    warm_calls = 4 * args.workers
    log(f"warm-up map of {warm_calls} no-op calls")
    _, warm_wall = timed_map(fexec, warm_calls)
    warm_rate = warm_calls / warm_wall
    calls = args.calls
    expected = calls / warm_rate
    if expected > args.budget:
        calls = max(warm_calls, int(warm_rate * args.budget))
        # Round down to two significant digits, so the count reads plainly.
        digits = max(len(str(calls)) - 2, 0)
        calls = max(warm_calls, calls // 10 ** digits * 10 ** digits)
        log(f"{args.calls} calls would take about {expected:.0f} s at the "
            f"warm-up's {warm_rate:.1f} calls/s, over the {args.budget:.0f} s "
            f"budget: timing {calls} calls instead")
    log(f"timed map of {calls} no-op calls")
    submitted, wall = timed_map(fexec, calls)
    log(f"{calls} calls in {wall:.1f} s: {calls / wall:.1f} calls/s")
    return {
        "calls_requested": args.calls,
        "calls": calls,
        "warmup_calls": warm_calls,
        "warmup_seconds": warm_wall,
        "submit_seconds": submitted,
        "seconds": wall,
        "calls_per_second": calls / wall,
    }


def measure_word_count(fexec, args):
    log(f"word count over {args.data}")
    started = time.perf_counter()
    files = files_under(args.data)
    chunks = chunks_of(files, args.chunk_size)
    partitioned = time.perf_counter() - started
    # spawn_reducer=100: the reduce call starts once every map call is done,
    # as in wisp's map_reduce, instead of holding one of the workers while
    # it waits for the rest.
    futures = fexec.map_reduce(count_words, chunks, merge_counts, spawn_reducer=100)
    result = fexec.get_result(futures, show_progressbar=False)
    wall = time.perf_counter() - started
    log(f"{len(chunks)} chunks of {len(files)} files counted in {wall:.1f} s: "
        f"{result['total_words']} words, {result['distinct_words']} distinct")
    return {
        "data": os.path.realpath(args.data),
        "input": "local files cut into newline-aligned chunks by the driver, "
                 "each chunk's text passed as the call's argument",
        "files": len(files),
        "bytes": sum(len(c["text"].encode("utf-8")) for c in chunks),
        "chunk_size": args.chunk_size,
        "chunks": len(chunks),
        "partition_seconds": partitioned,
        "seconds": wall,
        "total_words": result["total_words"],
        "distinct_words": result["distinct_words"],
        "top": result["top"],
    }


def main():
    args = parse_args()
    own_dir = args.work_dir is None
    work_dir = tempfile.mkdtemp(prefix="wisp-lithops-") if own_dir else args.work_dir
    os.makedirs(work_dir, exist_ok=True)
    work_dir = os.path.realpath(work_dir)
    home = os.path.join(work_dir, "home")
    tmp = os.path.join(work_dir, "tmp")
    os.makedirs(home, exist_ok=True)
    os.makedirs(tmp, exist_ok=True)
    # Lithops reads both when it is imported, and its call processes inherit
    # them.
    os.environ["HOME"] = home
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = tmp

    stdout = sys.stdout
    # Whatever Lithops prints goes to stderr; stdout is kept for the JSON.
    sys.stdout = sys.stderr
    began = time.perf_counter()
    try:
        import lithops
        from lithops.version import __version__ as lithops_version

        config = {
            "lithops": {
                "backend": "localhost",
                "storage": "localhost",
                "data_cleaner": False,
                # The corpus (4.4 MB) passed as the calls' arguments is over
                # Lithops' default limit on a job's data, 4 MiB.
                "data_limit": 64,
            },
            "localhost": {
                "runtime": sys.executable,
                "worker_processes": args.workers,
                "version": args.localhost_version,
            },
        }
        started = time.perf_counter()
        with lithops.FunctionExecutor(config=config, backend="localhost",
                                      storage="localhost",
                                      log_level="WARNING") as fexec:
            executor_seconds = time.perf_counter() - started
            figures = {
                "lithops_version": lithops_version,
                "python": platform.python_version(),
                "runtime": sys.executable,
                "backend": "localhost",
                "localhost_version": fexec.config["localhost"].get("version", 2),
                "storage": "localhost",
                "workers": args.workers,
                "cores": os.cpu_count(),
                "executor_seconds": executor_seconds,
                "noop": measure_noop(fexec, args),
            }
            if args.data:
                figures["word_count"] = measure_word_count(fexec, args)
        figures["driver_seconds"] = time.perf_counter() - began
    finally:
        sys.stdout = stdout
        if own_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    json.dump(figures, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
