#!/usr/bin/env python3
"""bench-malloc -- compare malloc implementations by LD_PRELOAD.

Runs one suite under glibc (no preload), jemalloc, tcmalloc, mimalloc and
kmem's libkmem-malloc.so, each put in place with LD_PRELOAD for the child
process only (never for this script), and writes a table, JSON and gnuplot
plots.  Python 3 standard library only.

What is run
  The workloads are bench/bench_malloc.c and, for the server cells,
  bench/bench_server.cc (their header comments say exactly what each test
  measures and how it is timed); every cell is one process printing one
  JSON line.  Cells:
    pair-S      malloc/write/free of S bytes, S = 16 B .. 32 KiB; ns per pair,
                CPU time of the process (median of 3 runs of ~--ms after a
                calibration that is also the warm-up)
    batch-S     malloc 1000 objects of S bytes, then free them; ns per
                malloc+free, CPU time: the layers behind the thread caches
    random      random sizes 16..4096 (skewed small) replacing random slots of
                a 20000-object live set: random free order; ns per op, CPU
    xthread-PxC P producer threads malloc, P consumer threads free (remote
                frees) through rings; million objects per second, wall time
                (the median of the run's 50 ms windows)
    falseshare-Tt-SB  T threads take turns to malloc 4 objects of S bytes
                each, then hammer counters in their own objects; slowdown
                against counters 128 B apart (1.0 = no false sharing), wall
    churn       5000 short-lived threads (4 alive at once) malloc and free 256
                objects each; CPU time per thread (ranked: thread creation is
                serialised, and on a shared machine the wall time is mostly
                other processes'), threads per second in wall time (shown,
                "info": not in the goals) and RSS afterwards
    frag        200 MiB of small objects, 90 % freed at random, then 100 MiB of
                larger ones: peak RSS (VmHWM) and final RSS; then everything
                freed: RSS at once, and after 3 s of light malloc/free
    idle        a 512 MiB burst of small objects freed, then 5 s without an
                allocator call: RSS over time (mean over the idle time, at
                its end, and after 10000 more malloc/free pairs)
    programs    the real programs of tests/programs/workload.sh ("list",
                "prepare DIR" once, "missing NAME", "cmd NAME DIR"), each
                command split into words and run from the repository root
                (through sh -c only if it had shell operators): CPU time
                (user + system of the child tree, from os.wait4: ranked,
                and the goal's "time", as the shared machine's other
                tenants inflate wall time, not CPU time), wall time
                (shown), and peak RSS (ru_maxrss: the largest process of
                the tree); stdout discarded
  Issue 12 shapes (--only issue12): workloads of the shapes on which kmem
  lost in an outside allocator suite, written here:
    server-Tt-sized, server-Tt-plain   (bench_server, C++) T threads
                replace random objects of 8..1000 B (new char[] / delete[],
                sized or plain) in slot arrays that they hand over to each
                other every 20480 steps; million steps per CPU-second of
                the threads (ranked: on a shared machine a run's wall rate
                moves 4x with the other tenants' load), per wall second
                (median 50 ms window; info)
    large       20 live blocks of 5..25 MiB, one replaced at random and
                all its bytes written per step; CPU ms per step (ranked),
                user and system time, minor faults and wall time per step
                (info), peak RSS (memory)
    mix-Tt      T threads, a server-like mix of sizes (16 B .. 256 KiB,
                mostly small) and lifetimes (8, 512 allocations, long),
                5 % freed by the next thread; million mallocs per
                CPU-second (ranked), per wall second (info)
    prodcons-1xN  one thread mallocs 16..255 B, N threads free (rings,
                16 objects to each in turn); million objects per second,
                wall (median 50 ms window)
    gthread-Tt  T threads each replace random objects of a 1024-slot
                working set, sizes 4..32 KiB with density ~ 1/size^2 (as
                glibc's bench-malloc-thread); ns per free+malloc, CPU
    alloctest-Tt  T threads each over a live set of up to 131072 objects
                of 8..4095 B (skewed small) that grows and shrinks, freed
                oldest first, newest first or at random by turns; ns per
                call (malloc or free), CPU
    cachescratch-Tt-SB  the main thread mallocs one S-byte object for
                each of T threads (neighbours), each frees it, then
                mallocs its own and writes it, in rounds; slowdown against
                buffers 128 B apart, from the threads' CPU time (ranked:
                wall time moves with the other tenants, CPU time does not;
                a shared cache line costs CPU time), wall (info)
  Sizes above are the full run's (pair/batch cells ~20 ms per timed run,
  xthread 1 s, falseshare 20 million counts per thread and round; server,
  mix, prodcons, alloctest 1 s, gthread 0.5 s, large 200 steps,
  cachescratch 100 million byte writes per thread and phase); --quick
  shrinks them (3 ms, 200 ms, 5 million, churn 1000 threads, frag 50 MiB,
  idle 128 MiB for 2 s; the issue 12 shapes 100-200 ms, 40 steps, 40
  million) and makes 3 repetitions, the programs 1.
  Cells whose threads outnumber the CPUs of this process are labelled
  "threads > CPUs": they measure time-sharing, contention and migration as
  well as the allocator.

Against noise (a shared 2-CPU machine)
  Each allocator runs in its own process, every cell of every repetition;
  within a repetition the allocators run cell by cell in a rotated order
  (repetition r starts with the r-th allocator), so a burst of load lands
  on different allocators.  --reps repetitions (5; --quick: 3; the real
  programs, 1-5 s each, --prog-reps: as many, but 1 with --quick); the
  median of each allocator is kept, and every ratio is between medians of the
  same run: ratio = time (or memory) / the best allocator's, >= 1, the best
  is 1.00; for rates (per second) the inverse, so above 1 is always worse.
  "spread" is the largest (max - min) / median among the allocators of a
  row: a rough noise gauge.

Goals (issue, section 4), checked when kmem ran: the geometric mean of
  kmem / best peer over the synthetic speed cells (pair, batch, random,
  xthread, falseshare, churn, and the issue 12 shapes' ranked metrics;
  24 of the 48 are pair/batch sizes; the shapes' own geometric mean is
  printed too) <= 1.5;
  no synthetic cell, speed or memory, worse than 3x the best peer; every
  real program within 1.15x of the best peer's CPU time and peak RSS.

Before measuring, each allocator runs "bench_malloc probe", which prints
the file the program's malloc is bound to (dladdr): an allocator whose
LD_PRELOAD did not take effect is reported and skipped, like a missing one.
jemalloc needs no GLIBC_TUNABLES when preloaded (its initial-exec TLS is
only a problem when dlopen'ed); bench_server is probed the same way when
server cells run, and every cell's own line must name the allocator's
file as its malloc_from, or the cell counts as failed.  Each workload
binary is a copy of build/release's (bench_malloc, bench_server) when that
is newer than its source and its malloc is libc's; otherwise the script
compiles the source itself into the output directory: bench_malloc.c with
$CC (cc) -O2, bench_server.cc with $CXX (c++) -O2 -fsized-deallocation.

Output (--out, default build/bench-malloc): results.json (every value of
every repetition, medians, ratios), results.md (machine, tables, goals,
plots; also printed to stdout at the end), *.dat and *.gp for gnuplot, and
pair.png (ns per pair and per batch op by size), idle.png (RSS over
time), ratios.png (every other cell's ratio to the best), programs.png
(real programs' time and RSS normalised to the best), when gnuplot is
installed (pngcairo terminal, or png).

Usage: scripts/bench-malloc.py [--reps N] [--quick] [--only TEST,...]
           [--alloc NAME,...] [--kmem PATH] [--out DIR] [--bin PATH]
           [--workload PATH] [--prog-reps N] [--no-plots]
  TEST: pair batch random xthread falseshare churn frag idle server large
  mix prodcons gthread alloctest cachescratch programs, issue12 (server ..
  cachescratch), or a cell name (pair-64, xthread-2x2, server-2t-sized,
  ...).  NAME: glibc jemalloc tcmalloc mimalloc kmem.
"""

import argparse
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "bench", "bench_malloc.c")
# The workload programs: bench_malloc (C) runs every cell but the server
# cells, which bench_server (C++: new[] / delete[]) runs.
WORKLOADS = {
    "malloc": dict(name="bench_malloc", src=SRC, cc_env="CC", cc="cc",
                   flags=["-std=gnu11", "-O2", "-pthread"], libs=[]),
    "server": dict(name="bench_server",
                   src=os.path.join(ROOT, "bench", "bench_server.cc"),
                   cc_env="CXX", cc="c++",
                   flags=["-std=c++17", "-O2", "-pthread",
                          "-fsized-deallocation"], libs=["-ldl"]),
}
ALL_ALLOCS = ["glibc", "jemalloc", "tcmalloc", "mimalloc", "kmem"]
PEER_LIBS = {
    "jemalloc": ["libjemalloc.so.2", "libjemalloc.so"],
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"],
    "mimalloc": ["libmimalloc.so.2", "libmimalloc.so"],
}
LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
            "/usr/local/lib"]
SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
# Issue 12: the shapes on which kmem lost in an outside suite.
SHAPES = ["server", "large", "mix", "prodcons", "gthread", "alloctest",
          "cachescratch"]
GROUPS = ["pair", "batch", "random", "xthread", "falseshare", "churn",
          "frag", "idle"] + SHAPES + ["programs"]
ALIASES = {"issue12": SHAPES}
CELL_TIMEOUT = 600
TUNABLE_ENV = ("MALLOC_", "GLIBC_TUNABLES", "JE_MALLOC_CONF", "MALLOC_CONF",
               "TCMALLOC_", "MIMALLOC_", "KMEM_")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- allocators ----

def ldconfig_paths():
    """name -> path from ldconfig -p (empty if unavailable)."""
    out = {}
    for exe in ("/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"):
        try:
            txt = subprocess.run([exe, "-p"], capture_output=True,
                                 text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in txt.splitlines():
            m = re.match(r"\s*(\S+)\s.*=>\s*(\S+)", line)
            if m and m.group(1) not in out:
                out[m.group(1)] = m.group(2)
        break
    return out


def find_lib(names, ldc):
    for n in names:
        for d in LIB_DIRS:
            p = os.path.join(d, n)
            if os.path.exists(p):
                return p
        if n in ldc and os.path.exists(ldc[n]):
            return ldc[n]
    return None


def pkg_version(path):
    """'package version' of the Debian package owning path, or ''."""
    if not shutil.which("dpkg-query"):
        return ""
    for p in dict.fromkeys([path, os.path.realpath(path)]):
        try:
            r = subprocess.run(["dpkg-query", "-S", p], capture_output=True,
                               text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return ""
        if r.returncode == 0 and ":" in r.stdout:
            pkg = r.stdout.split(": ")[0].split(",")[0].strip()
            v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                               capture_output=True, text=True).stdout.strip()
            return "%s %s" % (pkg, v)
    return ""


def git_rev():
    try:
        r = subprocess.run(["git", "-C", ROOT, "describe", "--always",
                            "--dirty"], capture_output=True, text=True,
                           timeout=20)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def child_env(lib):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    return env


def find_allocators(args):
    want = ALL_ALLOCS if not args.alloc else args.alloc.split(",")
    for w in want:
        if w not in ALL_ALLOCS:
            sys.exit("bench-malloc: unknown allocator %r (known: %s)"
                     % (w, " ".join(ALL_ALLOCS)))
    ldc = ldconfig_paths()
    found, skipped = [], []
    for name in ALL_ALLOCS:
        if name not in want:
            continue
        if name == "glibc":
            found.append({"name": "glibc", "lib": None,
                          "version": "glibc " + (platform.libc_ver()[1]
                                                 or "?")})
        elif name == "kmem":
            p = os.path.abspath(args.kmem)
            if os.path.exists(p):
                found.append({"name": "kmem", "lib": p,
                              "version": "this tree " + git_rev()})
            else:
                skipped.append(("kmem", "not found at %s" % p))
        else:
            p = find_lib(PEER_LIBS[name], ldc)
            if p:
                found.append({"name": name, "lib": p,
                              "version": pkg_version(p)})
            else:
                skipped.append((name, "not installed (%s)"
                                % " or ".join(PEER_LIBS[name])))
    return found, skipped


# ---- the workload binary ----

def probe(binary, lib):
    """(malloc_from, error)"""
    try:
        r = subprocess.run([binary, "probe"], env=child_env(lib),
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return None, str(e)
    if r.returncode != 0:
        return None, "rc %d: %s" % (r.returncode, r.stderr.strip()[-300:])
    try:
        d = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, "bad probe output %r" % r.stdout[-200:]
    if "ld.so" in r.stderr or "cannot be preloaded" in r.stderr:
        return d["malloc_from"], r.stderr.strip()[-300:]
    return d["malloc_from"], None


def from_libc(path):
    return path and re.match(r"libc[.-]", os.path.basename(path)) is not None


def get_binary(args, outdir, kind="malloc"):
    """The workload program WORKLOADS[kind]: --bin (bench_malloc only), a
    copy of the release build's when newer than its source and bound to
    libc's malloc, else compiled here."""
    w = WORKLOADS[kind]
    if kind == "malloc" and args.bin:
        return os.path.abspath(args.bin)
    out = os.path.join(outdir, w["name"])
    cand = os.path.join(ROOT, "build", "release", w["name"])
    if (os.path.exists(cand) and os.path.getmtime(cand)
            >= os.path.getmtime(w["src"])):
        # A copy: a rebuild during the run must not swap it underneath.
        shutil.copy2(cand, out)
        mf, err = probe(out, None)
        if err is None and from_libc(mf):
            log("bench-malloc: using a copy of %s" % cand)
            return out
        log("bench-malloc: %s: malloc bound to %s, not libc; compiling "
            "my own" % (cand, mf))
    cc = os.environ.get(w["cc_env"], w["cc"])
    cmd = [cc] + w["flags"] + ["-o", out, w["src"]] + w["libs"]
    log("bench-malloc: " + " ".join(cmd))
    r = subprocess.run(cmd)
    if r.returncode != 0:
        sys.exit("bench-malloc: could not build %s" % w["src"])
    return out


# ---- cells and metrics ----

def params(quick):
    if quick:
        return dict(reps=3, pair_ms=3, random_ms=10, xt_ms=200,
                    fs_iters=5000000, churn=1000, frag_mb=50, idle_mb=128,
                    idle_ms=2000, server_ms=200, large_steps=40,
                    mix_ms=200, pc_ms=200, gt_ms=100, at_ms=200,
                    cs_iters=40000000)
    return dict(reps=5, pair_ms=20, random_ms=50, xt_ms=1000,
                fs_iters=20000000, churn=5000, frag_mb=200, idle_mb=512,
                idle_ms=5000, server_ms=1000, large_steps=200, mix_ms=1000,
                pc_ms=1000, gt_ms=500, at_ms=1000, cs_iters=100000000)


def metric(mid, label, key, unit, better, kind, clock, fmt="%.1f",
           scale=1.0, extract=None):
    return dict(id=mid, label=label, key=key, unit=unit, better=better,
                kind=kind, clock=clock, fmt=fmt, scale=scale,
                extract=extract)


def idle_mean(d):
    s = [k for _, k in d["samples"]]
    return sum(s) / len(s)


def idle_end(d):
    return d["samples"][-1][1]


def make_cells(p, ncpu):
    cells = []

    def over(nthr):
        return (" [%d threads > %d CPUs]" % (nthr, ncpu)
                if nthr > ncpu else "")

    for s in SIZES:
        cells.append(dict(
            id="pair-%d" % s, group="pair",
            args=["pair", "--size", str(s), "--ms", str(p["pair_ms"])],
            metrics=[metric("pair-%d" % s, "pair %d B" % s, "ns", "ns/pair",
                            "lower", "speed", "cpu")]))
    for s in SIZES:
        cells.append(dict(
            id="batch-%d" % s, group="batch",
            args=["pair", "--size", str(s), "--batch", "1000", "--ms",
                  str(p["pair_ms"])],
            metrics=[metric("batch-%d" % s, "batch %d B" % s, "ns", "ns/op",
                            "lower", "speed", "cpu")]))
    cells.append(dict(
        id="random", group="random",
        args=["random", "--ms", str(p["random_ms"])],
        metrics=[metric("random", "random sizes, random free", "ns",
                        "ns/op", "lower", "speed", "cpu")]))
    for n in (1, 2):
        cid = "xthread-%dx%d" % (n, n)
        cells.append(dict(
            id=cid, group="xthread",
            args=["xthread", "--threads", str(n), "--ms", str(p["xt_ms"])],
            metrics=[metric(cid, "xthread %d prod + %d cons%s"
                            % (n, n, over(2 * n)), "mops_win_median",
                            "M obj/s",
                            "higher", "speed", "wall", "%.2f")]))
    for t, s in ((2, 16), (2, 64), (4, 16)):
        cid = "falseshare-%dt-%dB" % (t, s)
        cells.append(dict(
            id=cid, group="falseshare",
            args=["falseshare", "--threads", str(t), "--size", str(s),
                  "--iters", str(p["fs_iters"])],
            metrics=[metric(cid, "falseshare %d thr, %d B%s"
                            % (t, s, over(t)), "slowdown", "x apart",
                            "lower", "speed", "wall", "%.2f")]))
    conc = 4
    cells.append(dict(
        id="churn", group="churn",
        args=["churn", "--total", str(p["churn"]), "--conc", str(conc)],
        metrics=[metric("churn:cpu", "churn, %d alive%s" % (conc, over(conc)),
                        "cpu_us_per_thread", "us/thread", "lower", "speed",
                        "cpu", "%.1f"),
                 metric("churn:rate", "churn: threads per second (info)",
                        "threads_per_s", "k thr/s", "higher", "info",
                        "wall", "%.2f", 1e-3),
                 metric("churn:rss", "churn: RSS after", "rss_kib", "MiB",
                        "lower", "memory", "none", "%.1f", 1 / 1024)]))
    cells.append(dict(
        id="frag", group="frag", args=["frag", "--mb", str(p["frag_mb"])],
        metrics=[metric("frag:peak", "frag: peak RSS", "peak_kib", "MiB",
                        "lower", "memory", "none", "%.1f", 1 / 1024),
                 metric("frag:final", "frag: final RSS", "final_kib", "MiB",
                        "lower", "memory", "none", "%.1f", 1 / 1024),
                 metric("frag:freed", "frag: RSS after free all",
                        "all_freed_kib", "MiB", "lower", "memory", "none",
                        "%.1f", 1 / 1024),
                 metric("frag:later", "frag: RSS 3 s of light use later",
                        "later_kib", "MiB", "lower", "memory", "none",
                        "%.1f", 1 / 1024)]))
    cells.append(dict(
        id="idle", group="idle",
        args=["idle", "--mb", str(p["idle_mb"]), "--idle-ms",
              str(p["idle_ms"]), "--period-ms", "250"],
        metrics=[metric("idle:mean", "idle: mean RSS while idle", None,
                        "MiB", "lower", "memory", "none", "%.1f", 1 / 1024,
                        idle_mean),
                 metric("idle:end", "idle: RSS at the end", None, "MiB",
                        "lower", "memory", "none", "%.1f", 1 / 1024,
                        idle_end),
                 metric("idle:calls", "idle: RSS after 10000 more calls",
                        "rss_after_calls_kib", "MiB", "lower", "memory",
                        "none", "%.1f", 1 / 1024)]))
    cells += shape_cells(p, over)
    for c in cells:
        for m in c["metrics"]:
            m["group"] = c["group"]
    return cells


def shape_cells(p, over):
    """Issue 12: the shapes on which kmem lost in an outside suite
    (bench/bench_server.cc and bench_malloc.c's large .. cachescratch)."""
    cells = []
    for t in (2, 4):
        for d in ("sized", "plain"):
            cid = "server-%dt-%s" % (t, d)
            lab = "server %d thr, %s delete%s" % (t, d, over(t))
            cells.append(dict(
                id=cid, group="server", prog="server",
                args=["server", "--threads", str(t), "--delete", d, "--ms",
                      str(p["server_ms"])],
                metrics=[metric(cid, lab, "mops_per_cpu_s", "M steps/CPU-s",
                                "higher", "speed", "cpu", "%.2f"),
                         metric(cid + ":wall", lab + " (info)",
                                "mops_win_median", "M steps/s", "higher",
                                "info", "wall", "%.2f")]))
    cells.append(dict(
        id="large", group="large",
        args=["large", "--steps", str(p["large_steps"])],
        metrics=[metric("large", "large: 5-25 MiB blocks, CPU",
                        "cpu_ms_per_step", "ms/step", "lower", "speed",
                        "cpu", "%.2f"),
                 metric("large:sys", "large: system time (info)",
                        "sys_ms_per_step", "ms/step", "lower", "info",
                        "cpu", "%.2f"),
                 metric("large:user", "large: user time (info)",
                        "user_ms_per_step", "ms/step", "lower", "info",
                        "cpu", "%.2f"),
                 metric("large:faults", "large: minor faults (info)",
                        "minflt_per_step", "faults/step", "lower", "info",
                        "none", "%.0f"),
                 metric("large:wall", "large: wall time (info)",
                        "wall_ms_per_step", "ms/step", "lower", "info",
                        "wall", "%.2f"),
                 metric("large:peak", "large: peak RSS", "peak_kib", "MiB",
                        "lower", "memory", "none", "%.1f", 1 / 1024)]))
    for t in (2, 4):
        cid = "mix-%dt" % t
        lab = "mix %d thr%s" % (t, over(t))
        cells.append(dict(
            id=cid, group="mix",
            args=["mix", "--threads", str(t), "--ms", str(p["mix_ms"])],
            metrics=[metric(cid, lab, "mops_per_cpu_s", "M ops/CPU-s",
                            "higher", "speed", "cpu", "%.2f"),
                     metric(cid + ":wall", lab + " (info)", "mops_wall",
                            "M ops/s", "higher", "info", "wall", "%.2f")]))
    for n in (2, 4):
        cid = "prodcons-1x%d" % n
        cells.append(dict(
            id=cid, group="prodcons",
            args=["prodcons", "--threads", str(n), "--ms", str(p["pc_ms"])],
            metrics=[metric(cid, "prodcons 1 prod + %d cons%s"
                            % (n, over(n + 1)), "mops_win_median",
                            "M obj/s", "higher", "speed", "wall",
                            "%.2f")]))
    for t in (1, 2, 4):
        cid = "gthread-%dt" % t
        cells.append(dict(
            id=cid, group="gthread",
            args=["gthread", "--threads", str(t), "--ms", str(p["gt_ms"])],
            metrics=[metric(cid, "gthread %d thr%s" % (t, over(t)), "ns",
                            "ns/op", "lower", "speed", "cpu")]))
    for t in (1, 2):
        cid = "alloctest-%dt" % t
        cells.append(dict(
            id=cid, group="alloctest",
            args=["alloctest", "--threads", str(t), "--ms",
                  str(p["at_ms"])],
            metrics=[metric(cid, "alloctest %d thr%s" % (t, over(t)), "ns",
                            "ns/call", "lower", "speed", "cpu")]))
    for t, sz in ((2, 8), (2, 32), (4, 8)):
        cid = "cachescratch-%dt-%dB" % (t, sz)
        lab = "cachescratch %d thr, %d B%s" % (t, sz, over(t))
        cells.append(dict(
            id=cid, group="cachescratch",
            args=["cachescratch", "--threads", str(t), "--size", str(sz),
                  "--iters", str(p["cs_iters"])],
            metrics=[metric(cid, lab, "slowdown_cpu", "x apart", "lower",
                            "speed", "cpu", "%.2f"),
                     metric(cid + ":wall", lab + " (info)", "slowdown",
                            "x apart", "lower", "info", "wall", "%.2f")]))
    return cells


def selected(cell_id, group, only):
    return (not only or group in only or cell_id in only
            or any(group in ALIASES[a] for a in only if a in ALIASES))


# ---- running ----

def run_cell(binaries, cell, alloc):
    """(json dict, error)"""
    try:
        r = subprocess.run([binaries[cell.get("prog", "malloc")]]
                           + cell["args"],
                           env=child_env(alloc["lib"]), capture_output=True,
                           text=True, timeout=CELL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % CELL_TIMEOUT
    except OSError as e:
        return None, str(e)
    if r.returncode != 0:
        why = ("killed by signal %d" % -r.returncode if r.returncode < 0
               else "exit %d" % r.returncode)
        return None, "%s: %s" % (why, r.stderr.strip()[-300:])
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    try:
        d = json.loads(lines[-1])
    except (ValueError, IndexError):
        return None, "no result line in %r" % r.stdout[-200:]
    if not bound_to(d.get("malloc_from"), alloc["lib"]):
        return None, "malloc bound to %s" % d.get("malloc_from")
    return d, None


def bound_to(malloc_from, lib):
    """Whether a line's malloc_from is the allocator's (libc's if none)."""
    if lib is None:
        return from_libc(malloc_from)
    return (malloc_from is not None and os.path.realpath(malloc_from)
            == os.path.realpath(lib))


def run_measured(argv, env, cwd, timeout):
    """Run argv; (rc, wall s, ru_maxrss KiB, user+sys s, stderr tail)."""
    errf = tempfile.TemporaryFile(mode="w+")
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(argv, env=env, cwd=cwd,
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=errf,
                             start_new_session=True)
    except OSError as e:
        errf.close()
        return -1, 0.0, 0, 0.0, str(e)
    killed = []

    def kill():
        killed.append(1)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    _, status, ru = os.wait4(p.pid, 0)
    t1 = time.monotonic()
    timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    errf.seek(0)
    tail = errf.read()[-300:].strip()
    errf.close()
    if killed:
        tail = "timed out after %d s; %s" % (timeout, tail)
    return (p.returncode, t1 - t0, ru.ru_maxrss, ru.ru_utime + ru.ru_stime,
            tail)


def workload_sh(path, *a, check=True):
    r = subprocess.run(["sh", path] + list(a), cwd=ROOT,
                       capture_output=True, text=True, env=child_env(None))
    if check and r.returncode != 0:
        raise RuntimeError("%s %s: exit %d: %s" % (
            path, " ".join(a), r.returncode, r.stderr.strip()[-300:]))
    return r


def program_argv(line):
    """The words of one command line; through sh only if it has operators
    (workload.sh promises none: one process, no shell, no pipe)."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    if any(t and all(ch in "();<>|&" for ch in t) for t in lex):
        return ["sh", "-c", line]
    return shlex.split(line)


def setup_programs(args, outdir):
    """[(name, argv)], [notes]"""
    wl = os.path.abspath(args.workload)
    if not os.path.exists(wl):
        return [], ["%s does not exist: section skipped"
                    % os.path.relpath(wl, ROOT)]
    work = os.path.join(outdir, "programs")
    os.makedirs(work, exist_ok=True)
    notes, progs = [], []
    try:
        log("bench-malloc: %s prepare %s" % (wl, work))
        r = workload_sh(wl, "prepare", work, check=False)
        if r.returncode != 0:
            # Status 1: some workload's programs are missing (reported).
            log("bench-malloc: workload.sh prepare: exit %d: %s" % (
                r.returncode, r.stderr.strip()[-300:]))
        names = [n.strip() for n in workload_sh(wl, "list").stdout
                 .splitlines() if n.strip() and not n.startswith("#")]
        for n in names:
            miss = workload_sh(wl, "missing", n, check=False)
            if miss.returncode == 0 and miss.stdout.strip():
                notes.append("%s skipped: not installed: %s" % (
                    n, " ".join(miss.stdout.split())))
                continue
            c = workload_sh(wl, "cmd", n, work, check=False)
            line = c.stdout.strip().splitlines()
            if c.returncode != 0 or not line:
                notes.append("%s skipped: workload.sh cmd: %s" % (
                    n, c.stderr.strip()[-200:]))
                continue
            progs.append((n, program_argv(line[0])))
    except (RuntimeError, OSError) as e:
        return [], ["workload.sh failed (%s): section skipped" % e]
    return progs, notes


# ---- statistics ----

def med(v):
    return statistics.median(v) if v else None


def summarise(metrics, values, allocs):
    """Fill median, ratio, best, kmem_vs_peer, spread per metric."""
    names = [a["name"] for a in allocs]
    for m in metrics:
        vals = values[m["id"]]
        m["values"] = {a: vals.get(a, []) for a in names}
        m["median"] = {a: med(vals.get(a, [])) for a in names}
        have = {a: v for a, v in m["median"].items() if v is not None}
        m["ratio"], m["best"], m["kmem_vs_peer"], m["best_peer"] = (
            {}, None, None, None)
        sp = [(max(v) - min(v)) / med(v) for v in vals.values()
              if len(v) > 1 and med(v)]
        m["spread"] = max(sp) if sp else None
        if not have:
            continue

        def rat(x, ref):
            if m["better"] == "lower":
                return x / ref if ref > 0 else (1.0 if x == 0 else math.inf)
            return ref / x if x > 0 else math.inf

        pick = min if m["better"] == "lower" else max
        m["best"] = pick(have, key=lambda a: have[a])
        for a, v in have.items():
            m["ratio"][a] = rat(v, have[m["best"]])
        peers = {a: v for a, v in have.items() if a != "kmem"}
        if peers:
            bp = pick(peers, key=lambda a: peers[a])
            m["best_peer"] = bp
            if "kmem" in have:
                m["kmem_vs_peer"] = rat(have["kmem"], peers[bp])


def geomean(xs):
    xs = [x for x in xs if x is not None and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


# ---- machine ----

def machine():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpus_online"] = os.cpu_count()
    info["cpus_allowed"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            info["memory"] = "%.1f GiB" % (kib / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    info["kernel"] = platform.release()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    info["glibc"] = platform.libc_ver()[1]
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            info["thp"] = f.read().strip()
    except OSError:
        pass
    env = {k: v for k, v in os.environ.items() if k.startswith(TUNABLE_ENV)}
    if env:
        info["tuning_env"] = env
    return info


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return None


# ---- output ----

def fmt_val(m, v):
    if v is None:
        return "FAIL"
    return m["fmt"] % (v * m["scale"])


def table(metrics, names, title_col):
    lines = []
    hdr = ["| %s | unit | clock |" % title_col]
    for a in names:
        hdr.append(" %s |" % a)
    hdr.append(" best | kmem/best peer | spread |")
    lines.append("".join(hdr))
    lines.append("|" + "---|" * (3 + len(names) + 3))
    for m in metrics:
        row = ["| %s | %s | %s |" % (m["label"], m["unit"], m["clock"])]
        for a in names:
            v = m["median"].get(a)
            if v is None:
                row.append(" %s |" % ("FAIL" if m["values"].get(a) == []
                                      else "-"))
            else:
                r = m["ratio"][a]
                cell = "%s (%.2f)" % (fmt_val(m, v), r)
                if a == m["best"]:
                    cell = "**%s**" % cell
                row.append(" %s |" % cell)
        kv = m["kmem_vs_peer"]
        row.append(" %s | %s | %s |" % (
            m["best"] or "-",
            "%.2f" % kv if kv is not None else "-",
            "%.0f%%" % (100 * m["spread"]) if m["spread"] is not None
            else "-"))
        lines.append("".join(row))
    return lines


def write_md(res, outdir, plots):
    names = [a["name"] for a in res["allocators"]]
    mets = res["metrics"]
    mi = res["machine"]
    L = ["# malloc comparison by LD_PRELOAD", ""]
    L.append("`scripts/bench-malloc.py %s` (workloads: "
             "`bench/bench_malloc.c`; both files' header comments say what "
             "is measured). %s, %d repetitions%s, %.0f s." % (
                 " ".join(res["argv"]), res["date"], res["reps"],
                 " (--quick: short cells)" if res["quick"] else "",
                 res["duration_s"]))
    L.append("")
    L.append("Machine: %s, %s CPUs online, %s allowed to this process; %s "
             "memory; %s, kernel %s, glibc %s; THP %s. Load average at "
             "start %s, at end %s." % (
                 mi.get("cpu", "?"), mi.get("cpus_online"),
                 mi.get("cpus_allowed"), mi.get("memory", "?"),
                 mi.get("os", "?"), mi.get("kernel"), mi.get("glibc"),
                 mi.get("thp", "?"),
                 "/".join("%.2f" % x for x in res["load_start"] or []),
                 "/".join("%.2f" % x for x in res["load_end"] or [])))
    if mi.get("tuning_env"):
        L.append("")
        L.append("Allocator tuning in the environment: %s" % ", ".join(
            "`%s=%s`" % kv for kv in sorted(mi["tuning_env"].items())))
    L.append("")
    L.append("| allocator | LD_PRELOAD | version |")
    L.append("|---|---|---|")
    for a in res["allocators"]:
        L.append("| %s | %s | %s |" % (a["name"], a["lib"] or "(none)",
                                       a["version"] or "?"))
    for n, why in res["skipped"]:
        L.append("| %s | skipped | %s |" % (n, why))
    L.append("")
    L.append("Each cell: median over the repetitions, then (ratio to the "
             "best allocator of this run; 1.00 = best, in bold; for rates "
             "the inverse ratio, so above 1 is always worse). clock: cpu = "
             "CPU time of the process (user + system, all its threads), "
             "wall = wall time (the multi-threaded cells), none = memory. "
             "[N threads > M CPUs]: more threads than CPUs, so time-sharing "
             "and migration are measured too. (info): shown, not in the "
             "goals. kmem/best peer: kmem "
             "against the best of the other allocators (below 1: kmem is "
             "better). spread: largest (max-min)/median over repetitions "
             "in the row.")
    sections = [
        ("Single thread: malloc + write + free, one object (CPU time)",
         "size", lambda m: m["id"].startswith("pair-")),
        ("Single thread: 1000 mallocs, then 1000 frees (CPU time)",
         "size", lambda m: m["id"].startswith("batch-")),
        ("Random sizes and threads", "test",
         lambda m: m["kind"] != "memory" and not m["id"].startswith(
             ("pair-", "batch-", "prog:"))
         and m.get("group") not in SHAPES),
        ("Issue 12 shapes (outside-suite workloads, our own programs)",
         "test", lambda m: m["kind"] != "memory"
         and m.get("group") in SHAPES),
        ("Memory (RSS)", "test",
         lambda m: m["kind"] == "memory" and not m["id"].startswith("prog:")),
        ("Real programs: CPU time (user + system, the whole process tree)",
         "program",
         lambda m: m["id"].startswith("prog:") and m["id"].endswith(":cpu")),
        ("Real programs: wall time (info)", "program",
         lambda m: m["id"].startswith("prog:") and m["id"].endswith(":time")),
        ("Real programs: peak RSS", "program",
         lambda m: m["id"].startswith("prog:") and m["id"].endswith(":rss")),
    ]
    for title, col, pred in sections:
        sel = [m for m in mets if pred(m)]
        if not sel:
            continue
        L += ["", "## " + title, ""]
        L += table(sel, names, col)
    if res.get("programs_notes"):
        L += ["", "## Real programs: not run", ""]
        L += ["- " + n for n in res["programs_notes"]]
    L += ["", "## Goals", ""]
    L += res["goal_lines"]
    if plots:
        L += ["", "## Plots", ""]
        for p, what in plots:
            L.append("![%s](%s)" % (what, p))
            L.append("")
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    return "\n".join(L) + "\n"


def goals(res):
    mets = res["metrics"]
    L = []
    if "kmem" not in [a["name"] for a in res["allocators"]]:
        return ["kmem was not measured: goals not checked."]
    syn = [m for m in mets if not m["id"].startswith("prog:")
           and m["kind"] != "info"]
    speed = [m for m in syn if m["kind"] == "speed"]
    g = geomean([m["kmem_vs_peer"] for m in speed])
    res["geomean"] = g
    if g is not None:
        L.append("- geometric mean of kmem / best peer over %d synthetic "
                 "speed cells: **%.2f** (issue 5's goal <= 1.5: %s)" % (
                     len([m for m in speed if m["kmem_vs_peer"]]), g,
                     "met" if g <= 1.5 else "NOT MET"))
    sh = [m["kmem_vs_peer"] for m in speed if m.get("group") in SHAPES
          and m["kmem_vs_peer"]]
    gs = geomean(sh)
    res["geomean_shapes"] = gs
    go = geomean([m["kmem_vs_peer"] for m in speed
                  if m.get("group") not in SHAPES])
    if gs is not None:
        L.append("  - the %d issue 12 shape cells alone: %.2f%s" % (
            len(sh), gs, "; the others: %.2f" % go if go else ""))
    worst = [(m["kmem_vs_peer"], m["label"]) for m in syn
             if m["kmem_vs_peer"] is not None]
    bad = sorted([w for w in worst if w[0] > 3], reverse=True)
    if worst:
        w = max(worst)
        L.append("- worst synthetic cell: %s, %.2fx the best peer (issue 5's goal: "
                 "none above 3x: %s)" % (w[1], w[0],
                                          "met" if not bad else "NOT MET"))
        for r, lab in bad:
            L.append("  - above 3x: %s %.2fx" % (lab, r))
    failed = [m["label"] for m in syn
              if m["median"].get("kmem") is None and m["values"].get("kmem")
              == []]
    if failed:
        L.append("- kmem failed in: " + ", ".join(failed))
    # Time: CPU time, which other tenants' load on a shared machine
    # (steal) does not inflate as it does wall time; wall time is shown.
    progs = [m for m in mets if m["id"].startswith("prog:")
             and not m["id"].endswith(":time")]
    if progs:
        over = [("%s (%s)" % (m["label"], "CPU time" if m["id"].endswith(
            ":cpu") else "peak RSS"), m["kmem_vs_peer"]) for m in progs
                if m["kmem_vs_peer"] is None or m["kmem_vs_peer"] > 1.15]
        L.append("- real programs within 1.15x of the best peer's CPU time (issue 5) "
                 "and peak RSS: %s" % ("met" if not over else "NOT MET"))
        for lab, r in over:
            L.append("  - %s: %s" % (lab, "%.2fx" % r if r else "failed"))
    else:
        L.append("- real programs: not run")
    # Issue 12's goals, stricter: first place.
    L.append("- issue 12: geometric mean at or below 1.00: %s; no cell above "
             "1.25x: %s (%d above); real programs' CPU time at or below "
             "1.00x the best peer: %s" % (
                 "met" if g is not None and g <= 1.0 else "NOT MET",
                 "met" if not [w for w in worst if w[0] > 1.25]
                 else "NOT MET", len([w for w in worst if w[0] > 1.25]),
                 "met" if progs and not [
                     m for m in progs if m["id"].endswith(":cpu")
                     and (m["kmem_vs_peer"] is None
                          or m["kmem_vs_peer"] > 1.0)] else "NOT MET"))
    return L


# ---- plots ----

def gp_terminal():
    if not shutil.which("gnuplot"):
        return None
    for t in ("pngcairo", "png"):
        r = subprocess.run(["gnuplot", "-e", "set terminal %s" % t],
                           capture_output=True, text=True)
        if r.returncode == 0 and not r.stderr.strip():
            return t
    return None


def q(s):
    return '"%s"' % s.replace('"', "'")


# The same colour for an allocator in every plot, whichever ran.
COLOURS = {"glibc": "#9400d3", "jemalloc": "#009e73", "tcmalloc": "#56b4e9",
           "mimalloc": "#e69f00", "kmem": "#d55e00"}


def lc(name):
    return " lc rgb '%s'" % COLOURS[name] if name in COLOURS else ""


def plots(res, outdir):
    term = gp_terminal()
    if term is None:
        log("bench-malloc: no gnuplot (or no png terminal): no plots")
        return []
    names = [a["name"] for a in res["allocators"]]
    mets = {m["id"]: m for m in res["metrics"]}
    made = []
    hdr = ("set terminal %s size 1000,560 noenhanced\nset datafile missing "
           "'?'\nset key outside right top\nset grid\n" % term)

    def num(v):
        return "?" if v is None or not math.isfinite(v) else "%.6g" % v

    def run_gp(name, script, what):
        gp = os.path.join(outdir, name + ".gp")
        with open(gp, "w") as f:
            f.write(hdr + "set output %s\n" % q(name + ".png") + script)
        r = subprocess.run(["gnuplot", name + ".gp"], cwd=outdir,
                           capture_output=True, text=True)
        if r.returncode != 0:
            log("bench-malloc: gnuplot %s: %s" % (gp, r.stderr.strip()))
        else:
            made.append((name + ".png", what))

    # ns per pair / per batch op by size
    have_pair = [s for s in SIZES if "pair-%d" % s in mets
                 or "batch-%d" % s in mets]
    if have_pair:
        with open(os.path.join(outdir, "pair.dat"), "w") as f:
            f.write("# size " + " ".join("pair:" + a for a in names) + " " +
                    " ".join("batch:" + a for a in names) + "\n")
            for s in have_pair:
                row = [str(s)]
                for kind in ("pair", "batch"):
                    m = mets.get("%s-%d" % (kind, s))
                    row += [num(m["median"].get(a) if m else None)
                            for a in names]
                f.write(" ".join(row) + "\n")
        n = len(names)
        pl = []
        for kind, off, ttl in (
                ("pair", 2, "one object: malloc + write + free"),
                ("batch", 2 + n, "1000 mallocs, then 1000 frees")):
            if sum(1 for s in have_pair if "%s-%d" % (kind, s) in mets) < 2:
                continue  # a line needs two sizes
            pl.append("set title %s\nplot %s\n" % (
                q(ttl + " (CPU time)"), ", ".join(
                    "'pair.dat' using 1:%d with linespoints lw 2%s title %s"
                    % (off + i, lc(a), q(a)) for i, a in enumerate(names))))
        if pl:
            run_gp("pair", "set multiplot layout 1,%d\nset logscale x 2\n"
                   "set logscale y\nset xlabel 'size (bytes)'\n"
                   "set ylabel 'ns per malloc+free (median)'\n"
                   "set key inside left top\nset format x '%%g'\n"
                   % len(pl) + "".join(pl) + "unset multiplot\n",
                   "ns per malloc/free pair by size")
    # idle RSS over time
    ser = res.get("idle_series") or {}
    if ser:
        cols = [a for a in names if ser.get(a)]
        npts = max(len(ser[a]) for a in cols)
        with open(os.path.join(outdir, "idle.dat"), "w") as f:
            f.write("# seconds " + " ".join(cols) + " (RSS MiB)\n")
            for i in range(npts):
                t = next(ser[a][i][0] for a in cols if i < len(ser[a]))
                f.write("%.3f %s\n" % (t / 1000, " ".join(
                    num(ser[a][i][1] / 1024 if i < len(ser[a]) else None)
                    for a in cols)))
        run_gp("idle", "set title 'RSS after freeing a burst, no allocator "
               "calls (median of repetitions)'\nset xlabel 'seconds since "
               "the last free'\nset ylabel 'VmRSS (MiB)'\nset yrange [0:*]\n"
               "plot " + ", ".join(
                   "'idle.dat' using 1:%d with linespoints lw 2%s title %s"
                   % (i + 2, lc(a), q(a)) for i, a in enumerate(cols)) +
               "\n",
               "idle: RSS over time")
    # every non-pair synthetic cell, ratio to the best
    other = [m for m in res["metrics"] if not m["id"].startswith(
        ("pair-", "batch-", "prog:"))]
    if other:
        with open(os.path.join(outdir, "ratios.dat"), "w") as f:
            f.write("# cell " + " ".join(names) + " (ratio to best)\n")
            for m in other:
                f.write("%s %s\n" % (q(m["id"]), " ".join(
                    num(m["ratio"].get(a)) for a in names)))
        run_gp("ratios", "set title 'ratio to the best allocator (1 = best, "
               "higher is worse)'\nset style data histogram\nset style "
               "histogram cluster gap 1\nset style fill solid 0.8 border -1\n"
               "set logscale y\nset yrange [0.9:*]\nset xtics rotate by -35 "
               "scale 0\nset ylabel 'ratio to best (log)'\nplot " + ", ".join(
                   "'ratios.dat' using %d%s title %s%s" % (
                       i + 2, ":xtic(1)" if i == 0 else "", q(a), lc(a))
                   for i, a in enumerate(names)) + "\n",
               "ratio to the best, other cells")
    # real programs
    progs = [m for m in res["metrics"] if m["id"].startswith("prog:")]
    if progs:
        pn = sorted({m["id"].split(":")[1] for m in progs},
                    key=lambda n: [m["id"] for m in progs].index(
                        "prog:%s:cpu" % n))
        with open(os.path.join(outdir, "programs.dat"), "w") as f:
            f.write("# program " + " ".join("cpu:" + a for a in names) +
                    " " + " ".join("rss:" + a for a in names) + "\n")
            for n in pn:
                row = [q(n)]
                for k in ("cpu", "rss"):
                    m = mets.get("prog:%s:%s" % (n, k))
                    row += [num(m["ratio"].get(a) if m else None)
                            for a in names]
                f.write(" ".join(row) + "\n")
        n = len(names)
        pl = []
        for k, off in (("CPU time", 2), ("peak RSS", 2 + n)):
            pl.append("set title %s\nplot %s\n" % (
                q("real programs: %s / best" % k), ", ".join(
                    "'programs.dat' using %d%s title %s%s" % (
                        off + i, ":xtic(1)" if i == 0 else "", q(a), lc(a))
                    for i, a in enumerate(names))))
        run_gp("programs", "set multiplot layout 1,2\nset style data "
               "histogram\nset style histogram cluster gap 1\nset style fill "
               "solid 0.8 border -1\nset yrange [0.8:*]\nset xtics rotate by "
               "-35 scale 0\nset key outside top center horizontal\n" +
               "".join(pl) +
               "unset multiplot\n", "real programs normalised to the best")
    return made


# ---- main ----

def main():
    ap = argparse.ArgumentParser(
        description="Compare malloc implementations by LD_PRELOAD "
        "(see the docstring of this file).")
    ap.add_argument("--reps", type=int, help="repetitions (5; --quick: 3)")
    ap.add_argument("--quick", action="store_true", help="short cells")
    ap.add_argument("--only", help="tests or cells, comma-separated: " +
                    " ".join(GROUPS))
    ap.add_argument("--alloc", help="allocators, comma-separated: " +
                    " ".join(ALL_ALLOCS))
    ap.add_argument("--kmem", default=os.path.join(
        ROOT, "build", "release", "libkmem-malloc.so"),
        help="kmem's preloadable malloc (build/release/libkmem-malloc.so)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build",
                                                  "bench-malloc"),
                    help="output directory (build/bench-malloc)")
    ap.add_argument("--bin", help="bench_malloc binary to use")
    ap.add_argument("--workload", default=os.path.join(
        ROOT, "tests", "programs", "workload.sh"),
        help="real-program driver (tests/programs/workload.sh)")
    ap.add_argument("--prog-reps", type=int,
                    help="repetitions of the real programs (--reps; "
                    "--quick: 1)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()
    if os.environ.get("LD_PRELOAD"):
        log("bench-malloc: note: LD_PRELOAD=%s in my environment; children "
            "get their own" % os.environ["LD_PRELOAD"])
    p = params(args.quick)
    reps = args.reps or p["reps"]
    prog_reps = min(reps, args.prog_reps or (1 if args.quick else reps))
    only = set(args.only.split(",")) if args.only else set()
    outdir = os.path.abspath(args.out)
    os.makedirs(outdir, exist_ok=True)
    t_start = time.monotonic()
    load_start = loadavg()

    ncpu = len(os.sched_getaffinity(0))
    all_cells = make_cells(p, ncpu)
    unknown = (only - set(GROUPS) - set(ALIASES)
               - {c["id"] for c in all_cells})
    if unknown:
        sys.exit("bench-malloc: --only: unknown %s (tests: %s; %s; or a "
                 "cell name such as pair-64)" % (
                     ",".join(sorted(unknown)), " ".join(GROUPS),
                     "; ".join("%s = %s" % (a, " ".join(g))
                               for a, g in ALIASES.items())))
    cells = [c for c in all_cells if selected(c["id"], c["group"], only)]

    allocs, skipped = find_allocators(args)
    # The workload programs the selected cells need (bench_malloc always:
    # its probe checks every allocator's LD_PRELOAD).
    kinds = ["malloc"] + sorted({c["prog"] for c in cells if "prog" in c})
    binaries = {k: get_binary(args, outdir, k) for k in kinds}
    ok = []
    for a in allocs:
        for k in kinds:
            mf, err = probe(binaries[k], a["lib"])
            if err is not None or not bound_to(mf, a["lib"]):
                skipped.append((a["name"], "LD_PRELOAD did not take effect "
                                "in %s (malloc from %s%s)" % (
                                    WORKLOADS[k]["name"], mf,
                                    "; " + err if err else "")))
                break
        else:
            ok.append(a)
    allocs = ok
    for n, why in skipped:
        log("bench-malloc: %s: %s: skipped" % (n, why))
    if not allocs:
        sys.exit("bench-malloc: no allocator to measure")
    names = [a["name"] for a in allocs]
    binary = binaries["malloc"]
    log("bench-malloc: %s; %d reps; %s; %d CPUs" % (
        " ".join(names), reps, ", ".join(binaries.values()), ncpu))
    metrics = [m for c in cells for m in c["metrics"]]
    values = {m["id"]: {} for m in metrics}
    idle_raw = {}
    errors = []

    progs, prog_notes = [], []
    if selected("programs", "programs", only):
        progs, prog_notes = setup_programs(args, outdir)
        for note in prog_notes:
            log("bench-malloc: programs: " + note)
        for n, _ in progs:
            metrics.append(metric("prog:%s:time" % n, n, None, "s", "lower",
                                  "info", "wall", "%.3f"))
            metrics.append(metric("prog:%s:cpu" % n, n, None, "s", "lower",
                                  "speed", "cpu", "%.3f"))
            metrics.append(metric("prog:%s:rss" % n, n, None, "MiB", "lower",
                                  "memory", "none", "%.1f", 1 / 1024))
            values["prog:%s:time" % n] = {}
            values["prog:%s:cpu" % n] = {}
            values["prog:%s:rss" % n] = {}

    for rep in range(reps):
        k = rep % len(allocs)
        order = allocs[k:] + allocs[:k]
        for c in cells:
            shown = []
            for a in order:
                d, err = run_cell(binaries, c, a)
                for m in c["metrics"]:
                    vals = values[m["id"]].setdefault(a["name"], [])
                    if d is not None:
                        vals.append(m["extract"](d) if m["extract"]
                                    else d[m["key"]])
                if d is None:
                    errors.append("%s %s rep %d: %s" % (c["id"], a["name"],
                                                        rep + 1, err))
                    log("bench-malloc: %s under %s failed: %s" % (
                        c["id"], a["name"], err))
                    shown.append("%s FAIL" % a["name"])
                    continue
                if c["id"] == "idle":
                    idle_raw.setdefault(a["name"], []).append(d["samples"])
                m = c["metrics"][0]
                shown.append("%s %s" % (a["name"], fmt_val(m, values[m["id"]][
                    a["name"]][-1])))
            log("[rep %d/%d] %-20s %s" % (rep + 1, reps, c["id"],
                                           "  ".join(shown)))
        for n, argv in (progs if rep < prog_reps else []):
            shown = []
            for a in order:
                rc, wall, rss, cpu, tail = run_measured(
                    argv, child_env(a["lib"]), ROOT, CELL_TIMEOUT)
                tv = values["prog:%s:time" % n].setdefault(a["name"], [])
                cv = values["prog:%s:cpu" % n].setdefault(a["name"], [])
                rv = values["prog:%s:rss" % n].setdefault(a["name"], [])
                if rc != 0:
                    errors.append("program %s %s rep %d: rc %d: %s" % (
                        n, a["name"], rep + 1, rc, tail))
                    log("bench-malloc: program %s under %s failed (rc %d): "
                        "%s" % (n, a["name"], rc, tail))
                    shown.append("%s FAIL" % a["name"])
                    continue
                tv.append(wall)
                cv.append(cpu)
                rv.append(rss)
                shown.append("%s %.3fs (cpu %.3fs) %.0fMiB" % (
                    a["name"], wall, cpu, rss / 1024))
            log("[rep %d/%d] %-20s %s" % (rep + 1, reps, "prog " + n,
                                           "  ".join(shown)))

    summarise(metrics, values, allocs)
    idle_series = {}
    for a, runs in idle_raw.items():
        npts = min(len(r) for r in runs)
        idle_series[a] = [[runs[0][i][0], med([r[i][1] for r in runs])]
                          for i in range(npts)]
    res = dict(
        argv=sys.argv[1:], date=time.strftime("%Y-%m-%d %H:%M %Z"),
        reps=reps, quick=args.quick, params=p, binary=binary,
        binaries=binaries,
        machine=machine(), load_start=load_start, load_end=loadavg(),
        allocators=allocs, skipped=skipped, errors=errors,
        programs=[{"name": n, "argv": argv} for n, argv in progs],
        programs_notes=prog_notes, prog_reps=prog_reps,
        idle_series=idle_series)
    res["metrics"] = [{k: v for k, v in m.items() if k != "extract"}
                      for m in metrics]
    res["goal_lines"] = goals(res)
    res["duration_s"] = time.monotonic() - t_start
    made = [] if args.no_plots else plots(res, outdir)
    res["plots"] = [p for p, _ in made]
    md = write_md(res, outdir, made)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    print(md, end="")
    log("bench-malloc: results in %s (results.md, results.json%s)" % (
        outdir, ", " + ", ".join(p for p, _ in made) if made else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
