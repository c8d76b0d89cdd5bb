"""The chaos report: the summary table, availability and the throughput SVG.

Pure functions over the history (and the checker's violations); the runner
writes what they return. Availability counts successful commands (result
ok, HELLO excluded) per second of the run, lists each fault window, and
finds the longest stretch of the workload with no ENQUEUE answered `OK`
(committed; a `QUEUED` answer does not count, since nothing is committed
yet). The SVG is drawn by hand: one line of successful commands per second,
one of ENQUEUE OKs, and each fault window as a shaded band coloured by kind.
"""

from collections import Counter, defaultdict
from xml.sax.saxutils import escape

COLOURS = {"partition": "#f4a6a6", "oneway": "#f9d29d", "linkcut": "#f7e38f",
           "flap": "#c9e6a3", "kill": "#a8d0f0", "pause": "#c8b8ec", "disk": "#d9d9d9",
           "restart": "#f0b3de"}


def windows(events):
    """[(start, stop, kind, detail)] from the nemesis events."""
    open_, out = {}, []
    for e in events:
        if e.get("phase") != "nemesis":
            continue
        if e["event"] == "start":
            open_[e["fault"]] = e
        elif e["fault"] in open_:
            s = open_.pop(e["fault"])
            out.append((s["t"], e["t"], e["fault"], e.get("detail", "")))
    return out


def workload_span(events):
    start = next((e["t"] for e in events if e.get("phase") == "meta" and "workload" in e
                  and e["workload"] == "start"), 0.0)
    end = next((e["t"] for e in events if e.get("phase") == "meta" and "workload" in e
                and e["workload"] == "stop"), max((e["t"] for e in events), default=0.0))
    return start, end


def availability(events):
    start, end = workload_span(events)
    per_sec = defaultdict(int)
    enq_sec = defaultdict(int)
    enq_ok_times = []
    for e in events:
        if e.get("phase") != "complete" or e["result"] != "ok" or e["f"] == "hello":
            continue
        if not (start <= e["t"] <= end):
            continue
        per_sec[int(e["t"] - start)] += 1
        if e["f"] == "enqueue" and (e["reply"] or "").startswith("OK "):
            enq_sec[int(e["t"] - start)] += 1
            enq_ok_times.append(e["t"])
    marks = [start] + sorted(enq_ok_times) + [end]
    gap, at = 0.0, start
    for a, b in zip(marks, marks[1:]):
        if b - a > gap:
            gap, at = b - a, a
    seconds = int(end - start) + 1
    return {"start": start, "end": end,
            "ops_per_sec": [per_sec[s] for s in range(seconds)],
            "enq_ok_per_sec": [enq_sec[s] for s in range(seconds)],
            "longest_no_enqueue_ok": (round(gap, 2), round(at, 2))}


def counts(events):
    c = Counter()
    for e in events:
        if e.get("phase") == "complete":
            kind = e["f"]
            if kind in ("enqueue", "put") and (e["reply"] or "").startswith("QUEUED"):
                c[(kind, "queued")] += 1
            elif kind in ("dequeue", "take") and e["reply"] == "EMPTY":
                c[(kind, "empty")] += 1
            else:
                c[(kind, e["result"])] += 1
        elif e.get("phase") == "invoke":
            c[(e["f"], "invoked")] += 1
    return c


def summary(events, violations, meta):
    c = counts(events)
    av = availability(events)
    wins = windows(events)
    lines = [f"meshq chaos  seed={meta['seed']} nodes={meta['nodes']} duration={meta['duration']}s "
             f"rate={meta['rate']}/s", ""]
    lines.append(f"{'command':<10}{'invoked':>9}{'ok':>8}{'queued':>8}{'empty':>8}"
                 f"{'err':>7}{'unknown':>9}")
    for f in ("enqueue", "put", "dequeue", "take", "ack", "nack", "hello"):
        lines.append(f"{f:<10}{c[(f, 'invoked')]:>9}{c[(f, 'ok')]:>8}{c[(f, 'queued')]:>8}"
                     f"{c[(f, 'empty')]:>8}{c[(f, 'err')]:>7}"
                     f"{c[(f, 'invoked')] - c[(f, 'ok')] - c[(f, 'queued')] - c[(f, 'empty')] - c[(f, 'err')]:>9}")
    lines.append("")
    by_kind = Counter(w[2] for w in wins)
    lines.append("faults: " + (", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())) or "none"))
    for s, t, kind, detail in wins:
        lines.append(f"  {s:8.2f} - {t:8.2f}  {kind:<10}{detail}")
    ops = av["ops_per_sec"]
    span = max(av["end"] - av["start"], 1e-9)
    lines.append("")
    lines.append(f"availability: {sum(ops)} successful commands in {span:.0f}s "
                 f"({sum(ops) / span:.1f}/s); seconds with none: {sum(1 for x in ops if x == 0)}")
    gap, at = av["longest_no_enqueue_ok"]
    lines.append(f"longest stretch with no ENQUEUE answered OK: {gap:.2f}s from t={at:.2f}")
    for note in meta.get("notes", []):
        lines.append(f"note: {note}")
    lines.append("")
    by_prop = Counter(v["property"] for v in violations)
    lines.append(f"violations: {len(violations)}" + (
        " (" + ", ".join(f"property {p}: {n}" for p, n in sorted(by_prop.items(), key=str)) + ")"
        if violations else ""))
    done_at = {e["op"]: e["t"] for e in events if e.get("phase") == "complete"}
    seen = [max(done_at.get(o, 0.0) for o in v["ops"]) for v in violations if v["ops"]]
    if seen:
        lines.append(f"  first observable at t={min(seen):.2f}s (its last operation completed)")
    for v in violations[:20]:
        lines.append(f"  [{v['property']}] {v['message']} (ops {v['ops']})")
    if len(violations) > 20:
        lines.append(f"  ... {len(violations) - 20} more in violations.json")
    return "\n".join(lines)


def svg(events, width=900, height=300):
    av = availability(events)
    ops, enq = av["ops_per_sec"], av["enq_ok_per_sec"]
    n = max(len(ops), 1)
    top = max(max(ops, default=1), 1)
    left, right, up, down = 50, 10, 30, 40
    pw, ph = width - left - right, height - up - down

    def x(sec):
        return left + pw * sec / n

    def y(v):
        return up + ph - ph * v / top

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height + 20}" fill="white"/>']
    for s, t, kind, detail in windows(events):
        xs, xt = x(s - av["start"]), x(t - av["start"])
        out.append(f'<rect x="{xs:.1f}" y="{up}" width="{max(xt - xs, 1):.1f}" height="{ph}" '
                   f'fill="{COLOURS.get(kind, "#ddd")}" opacity="0.7"><title>{kind}: '
                   f'{escape(detail)}</title></rect>')
    for series, colour in ((ops, "#1f4e9c"), (enq, "#2e8b57")):
        pts = " ".join(f"{x(i + 0.5):.1f},{y(v):.1f}" for i, v in enumerate(series))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    out.append(f'<line x1="{left}" y1="{up + ph}" x2="{left + pw}" y2="{up + ph}" stroke="black"/>')
    out.append(f'<line x1="{left}" y1="{up}" x2="{left}" y2="{up + ph}" stroke="black"/>')
    for k in range(0, 6):
        sec = n * k / 5
        out.append(f'<text x="{x(sec):.1f}" y="{up + ph + 14}" text-anchor="middle">{sec:.0f}s</text>')
        out.append(f'<text x="{left - 4}" y="{y(top * k / 5) + 4:.1f}" text-anchor="end">'
                   f'{top * k / 5:.0f}</text>')
    out.append(f'<text x="{left}" y="12">successful commands/s (blue), ENQUEUE OK/s (green); '
               f'shaded: fault windows</text>')
    lx = left
    for kind, colour in COLOURS.items():
        out.append(f'<rect x="{lx}" y="{height + 2}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{lx + 13}" y="{height + 11}">{kind}</text>')
        lx += 75
    out.append("</svg>")
    return "\n".join(out)
