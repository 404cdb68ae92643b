#!/usr/bin/env python3
"""benchtool.py - result handling shared by the bench/bench-*.sh sections.

Subcommands (all read and write plain files, so the shell scripts stay
simple and python3 is the only parser needed: jq is not assumed):

  fio ROW-PREFIX FIO-JSON        print one raw-TSV row from a fio JSON result
  mp ROW-PREFIX MP-JSON          print one raw-TSV row from mp_bench --json
  mp-summary RAW-TSV             print the markdown table of medians/ratios
  mp-check RAW-TSV               exit 1 if any ratio is below the target
  update-doc DOC TITLE BODY      replace (or append) the "## TITLE" section
                                 of DOC with the contents of BODY
  fs-summary RAW-TSV             markdown table raw / library / FUSE
  fs-check RAW-TSV               exit 1 if a file system target is missed
  median V...                    print the median of the numbers
  size SIZE                      print the bytes of 2g, 512m, ... (powers of 1024)

A raw row is: engine pattern bs iodepth rep tool iops mib_s lat_us usr sys
(tab separated).  ROW-PREFIX carries the first six fields, tab separated.
"""
import json
import statistics
import sys

TARGET = 0.9
PATTERN_ORDER = ["randread", "randwrite", "write", "read"]


def fail(msg):
    sys.stderr.write("benchtool: %s\n" % msg)
    sys.exit(2)


def load_json(path):
    # fio may print warnings before the JSON object on stdout; skip them.
    with open(path) as f:
        text = f.read()
    start = text.find("{")
    if start < 0:
        fail("%s: no JSON object" % path)
    return json.loads(text[start:])


def row(prefix, iops, mibs, lat_us, usr, sys_):
    return "%s\t%.1f\t%.2f\t%.2f\t%.1f\t%.1f" % (prefix, iops, mibs, lat_us,
                                                 usr, sys_)


def cmd_fio(prefix, path):
    j = load_json(path)
    job = j["jobs"][0]
    if job.get("error"):
        fail("%s: fio job error %s" % (path, job["error"]))
    pattern = prefix.split("\t")[1]
    d = job["read"] if pattern in ("read", "randread") else job["write"]
    print(row(prefix, d["iops"], d["bw_bytes"] / 1048576.0,
              d["lat_ns"]["mean"] / 1000.0, job["usr_cpu"], job["sys_cpu"]))


def cmd_mp(prefix, path):
    j = load_json(path)
    if j.get("errors"):
        fail("%s: %d I/O errors (%s)" % (path, j["errors"], j["first_error"]))
    print(row(prefix, j["iops"], j["mib_s"], j["lat_mean_us"], j["usr_cpu"],
              j["sys_cpu"]))


def load_raw(path):
    """{(engine, pattern, bs, iodepth): {tool: [rows by rep]}}"""
    groups = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            engine, pattern, bs, qd, rep, tool, iops, mibs, lat, usr, sy = \
                line.rstrip("\n").split("\t")
            g = groups.setdefault((engine, pattern, bs, qd), {})
            g.setdefault(tool, {})[int(rep)] = {
                "iops": float(iops), "mibs": float(mibs), "lat": float(lat),
                "cpu": float(usr) + float(sy)}
    return groups


def ordered(groups):
    def key(k):
        engine, pattern, _, _ = k
        p = PATTERN_ORDER.index(pattern) if pattern in PATTERN_ORDER else 99
        return (engine, p)
    return sorted(groups, key=key)


def med(runs, field):
    return statistics.median(r[field] for r in runs.values())


def ratios(g):
    """Ratio of medians, and the range of per-repetition (paired) ratios."""
    fio, mp = g.get("fio", {}), g.get("mp", {})
    if not fio or not mp:
        return None, None, None
    r = med(mp, "iops") / med(fio, "iops") if med(fio, "iops") else 0.0
    pairs = [mp[k]["iops"] / fio[k]["iops"] for k in mp
             if k in fio and fio[k]["iops"]]
    return r, min(pairs), max(pairs)


def cmd_mp_summary(path):
    groups = load_raw(path)
    out = []
    out.append("| engine | pattern | bs | qd | fio IOPS | ours IOPS | "
               "fio MiB/s | ours MiB/s | fio lat us | ours lat us | "
               "fio CPU % | ours CPU % | ours/fio | per-rep ratios |")
    out.append("|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for k in ordered(groups):
        engine, pattern, bs, qd = k
        g = groups[k]
        fio, mp = g.get("fio", {}), g.get("mp", {})
        if not fio or not mp:
            continue
        r, lo, hi = ratios(g)
        bs_s = "%dk" % (int(bs) // 1024) if int(bs) < 1048576 else \
            "%dm" % (int(bs) // 1048576)
        flag = "" if r >= TARGET else " **below 0.9**"
        out.append("| %s | %s | %s | %s | %.0f | %.0f | %.1f | %.1f | "
                   "%.0f | %.0f | %.0f | %.0f | %.2f%s | %.2f-%.2f |" % (
                       engine, pattern, bs_s, qd,
                       med(fio, "iops"), med(mp, "iops"),
                       med(fio, "mibs"), med(mp, "mibs"),
                       med(fio, "lat"), med(mp, "lat"),
                       med(fio, "cpu"), med(mp, "cpu"),
                       r, flag, lo, hi))
    print("\n".join(out))


def cmd_mp_check(path):
    groups = load_raw(path)
    bad = []
    for k in ordered(groups):
        r, _, _ = ratios(groups[k])
        if r is None:
            bad.append("%s %s: missing runs" % (k[0], k[1]))
        elif r < TARGET:
            bad.append("%s %s: %.2f" % (k[0], k[1], r))
    if bad:
        print("below %.1fx fio: %s" % (TARGET, "; ".join(bad)))
        sys.exit(1)
    print("every pattern at or above %.1fx fio" % TARGET)


def cmd_update_doc(doc, title, body_path):
    with open(body_path) as f:
        body = f.read().rstrip("\n") + "\n"
    head = "## " + title
    try:
        with open(doc) as f:
            lines = f.read().splitlines(keepends=True)
    except FileNotFoundError:
        lines = ["# Benchmarks\n", "\n",
                 "Produced by `make bench` (bench/run-bench.sh, one "
                 "bench/bench-*.sh per section).\n",
                 "Each section below is rewritten by its script; put "
                 "hand-written notes in sections of their own.\n"]
    start = next((i for i, l in enumerate(lines) if l.rstrip("\n") == head),
                 None)
    section = [head + "\n", "\n", body]
    if start is None:
        if lines and lines[-1].strip():
            lines.append("\n")
        lines += section
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].startswith("## ")), len(lines))
        if end < len(lines):
            section.append("\n")
        lines[start:end] = section
    with open(doc, "w") as f:
        f.writelines(lines)


FS_TARGETS = {"lib": 0.9, "fuse": 0.6}


def fs_rows(path):
    """[(pattern, bs, depth, {tool: {rep: row}})] in table order."""
    groups = load_raw(path)
    return [(k[1], k[2], k[3], groups[k]) for k in ordered(groups)]


def fs_ratio(g, tool):
    """Median of the per-repetition ratios tool/fio: each repetition runs
    the two beside each other, so a drift of the storage over the run
    (this machine's virtual disk speeds up for a minute or more after a
    quiet spell) does not land on one side only."""
    raw, t = g.get("fio", {}), g.get(tool, {})
    pairs = [t[r]["iops"] / raw[r]["iops"] for r in t
             if r in raw and raw[r]["iops"]]
    if not pairs:
        return None
    return statistics.median(pairs)


def fs_target(tool, pattern):
    # the library everywhere; FUSE for 1 MiB sequential (the rule);
    # the io_uring engine's library rows are a comparison, not a target
    if tool == "uring":
        return None
    if tool == "lib" or pattern in ("read", "write"):
        return FS_TARGETS[tool]
    return None


def cmd_fs_summary(path):
    out = ["| pattern | bs | depth | raw (fio) IOPS | library IOPS | FUSE IOPS "
           "| raw MiB/s | library MiB/s | FUSE MiB/s | library/raw | FUSE/raw "
           "| library (io_uring)/raw |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for pattern, bs, depth, g in fs_rows(path):
        cells = []
        for tool in ("lib", "fuse", "uring"):
            r = fs_ratio(g, tool)
            t = fs_target(tool, pattern)
            if r is None:
                cells.append("-")
            else:
                cells.append("%.2f%s" % (r, " **below %.1f**" % t
                                         if t is not None and r < t else ""))
        bs_s = "%dk" % (int(bs) // 1024) if int(bs) < 1048576 else \
            "%dm" % (int(bs) // 1048576)

        def m(tool, field):
            runs = g.get(tool, {})
            return med(runs, field) if runs else 0.0
        out.append("| %s | %s | %s | %.0f | %.0f | %.0f | %.1f | %.1f | %.1f "
                   "| %s | %s | %s |" % (pattern, bs_s, depth, m("fio", "iops"),
                                         m("lib", "iops"), m("fuse", "iops"),
                                         m("fio", "mibs"), m("lib", "mibs"),
                                         m("fuse", "mibs"), cells[0], cells[1],
                                         cells[2]))
    print("\n".join(out))


def cmd_fs_check(path):
    bad = []
    for pattern, bs, depth, g in fs_rows(path):
        for tool in ("lib", "fuse"):
            r, t = fs_ratio(g, tool), fs_target(tool, pattern)
            if t is None:
                continue
            if r is None:
                bad.append("%s %s %s: missing runs" % (tool, pattern, bs))
            elif r < t:
                bad.append("%s %s bs %s depth %s: %.2f (target %.1f)" % (
                    tool, pattern, bs, depth, r, t))
    if bad:
        print("below target: %s" % "; ".join(bad))
        sys.exit(1)
    print("every row meets its target (library >= 0.9x raw, FUSE >= 0.6x "
          "raw for 1 MiB sequential)")


def cmd_size(text):
    """Bytes of a size like 2g, 512m, 4096 (k/m/g/t: powers of 1024)."""
    s = text.lower().rstrip("b").rstrip("i")
    m = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    try:
        print(int(s[:-1]) * m[s[-1]] if s and s[-1] in m else int(s))
    except ValueError:
        fail("size '%s'? (a number with k, m, g or t)" % text)


def cmd_median(*vals):
    print("%.3f" % statistics.median(float(v) for v in vals))


def main(argv):
    cmds = {
        "fio": (cmd_fio, 2), "mp": (cmd_mp, 2),
        "mp-summary": (cmd_mp_summary, 1), "mp-check": (cmd_mp_check, 1),
        "update-doc": (cmd_update_doc, 3),
        "fs-summary": (cmd_fs_summary, 1), "fs-check": (cmd_fs_check, 1),
        "median": (cmd_median, -1), "size": (cmd_size, 1),
    }
    if len(argv) < 2 or argv[1] not in cmds or \
            (cmds[argv[1]][1] >= 0 and len(argv) - 2 != cmds[argv[1]][1]):
        fail("usage: benchtool.py fio|mp|mp-summary|mp-check|update-doc ...")
    cmds[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
