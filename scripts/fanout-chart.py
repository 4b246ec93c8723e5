#!/usr/bin/env python3
"""Draws last-delivery p99 against subscribers from `rehearsal bench fanout --floor --json` reports.

Usage: fanout-chart.py --out chart.svg REPORT.json...

One point per report for Rehearsal (`last_delivery_latency_ms.p99`) and one for the floor measured
in the same invocation (`floor.last_delivery_latency_ms.p99`); both axes logarithmic. Plain SVG,
written by hand, so that the chart needs nothing beyond Python's standard library.
"""
import argparse
import json
import math
import sys

W, H = 720, 440
LEFT, RIGHT, TOP, BOTTOM = 80, 170, 50, 60


def log_ticks(lo, hi):
    """1-2-5 ticks covering [lo, hi]."""
    ticks = []
    e = math.floor(math.log10(lo))
    while True:
        for m in (1, 2, 5):
            v = m * 10**e
            if v > hi * 1.0001:
                return ticks
            if v >= lo * 0.9999:
                ticks.append(v)
        e += 1


def fmt(v):
    if v >= 1000:
        return f"{v / 1000:g}k" if v < 1_000_000 else f"{v / 1_000_000:g}M"
    return f"{v:g}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("reports", nargs="+")
    args = ap.parse_args()

    rows = []
    for path in args.reports:
        with open(path) as f:
            r = json.load(f)
        floor = r.get("floor") or {}
        rows.append(
            {
                "n": r["subscribers"],
                "rate": r["rate"],
                "rehearsal": r["last_delivery_latency_ms"]["p99"],
                "floor": (floor.get("last_delivery_latency_ms") or {}).get("p99"),
                "ok": r.get("ok", False),
            }
        )
    rows.sort(key=lambda x: x["n"])
    if not rows:
        sys.exit("no report")

    xs = [r["n"] for r in rows]
    ys = [v for r in rows for v in (r["rehearsal"], r["floor"]) if v]
    x0, x1 = 10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(math.log10(max(xs)))
    y0, y1 = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
    if x0 == x1:
        x1 *= 10
    if y0 == y1:
        y1 *= 10
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x):
        return LEFT + pw * (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))

    def py(y):
        return TOP + ph - ph * (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0))

    rates = sorted({r["rate"] for r in rows})
    rate = ", ".join(f"{x:g}" for x in rates)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="24" font-size="15">Fan-out: last-delivery p99 against subscribers ({rate} msg/s)</text>',
    ]
    for t in log_ticks(x0, x1):
        x = px(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 18}" text-anchor="middle">{fmt(t)}</text>')
    for t in log_ticks(y0, y1):
        y = py(t)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 18}" text-anchor="middle">subscribers</text>')
    out.append(
        f'<text x="20" y="{TOP + ph / 2}" text-anchor="middle" transform="rotate(-90 20 {TOP + ph / 2})">'
        "last-delivery p99 (ms)</text>"
    )
    series = [("rehearsal", "Rehearsal", "#c0392b"), ("floor", "floor (same run)", "#2471a3")]
    for i, (key, label, colour) in enumerate(series):
        pts = [(px(r["n"]), py(r[key])) for r in rows if r[key]]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y), r in zip(pts, [r for r in rows if r[key]]):
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"><title>{r["n"]}: {r[key]:.1f} ms</title></circle>')
        ly = TOP + 10 + 22 * i
        out.append(f'<line x1="{LEFT + pw + 14}" y1="{ly}" x2="{LEFT + pw + 38}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{LEFT + pw + 44}" y="{ly + 4}">{label}</text>')
    if not all(r["ok"] for r in rows):
        out.append(f'<text x="{LEFT + pw + 14}" y="{TOP + 70}" fill="#c0392b">a run failed its checks</text>')
    out.append("</svg>")
    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
