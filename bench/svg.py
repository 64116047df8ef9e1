"""Hand-written SVG charts for bench/run (no matplotlib): grouped bars and log-x lines."""

import math
from xml.sax.saxutils import escape

COLORS = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb",
          "#000000"]


def _nice_max(v):
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def _fmt(v):
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:g}G"
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e3:
        return f"{v / 1e3:g}k"
    if a >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


class _Svg:
    def __init__(self, w, h):
        self.w, self.h, self.parts = w, h, []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=11, anchor="start", rotate=None, weight="normal"):
        tr = f' transform="rotate({rotate} {x} {y})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" font-family="sans-serif"{tr}>{escape(str(s))}</text>')

    def line(self, x1, y1, x2, y2, color="#999", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{color}" stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, color):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" '
                 f'height="{max(h, 0):.1f}" fill="{color}"/>')

    def dump(self, path):
        with open(path, "w") as f:
            f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" '
                    f'height="{self.h}" viewBox="0 0 {self.w} {self.h}">\n')
            f.write(f'<rect width="{self.w}" height="{self.h}" fill="white"/>\n')
            f.write("\n".join(self.parts))
            f.write("\n</svg>\n")


def bars(path, title, groups, series, values, ylabel, errors=None, hlines=()):
    """groups: x labels; series: legend names; values[s][g] (None = missing);
    errors[s][g] = (lo, hi) whiskers; hlines: [(y, label)] reference lines."""
    w, h = max(640, 90 + len(groups) * (len(series) * 16 + 24)), 420
    left, right, top, bottom = 70, 20, 40, 110
    svg = _Svg(w, h)
    svg.text(w / 2, 22, title, 14, "middle", weight="bold")
    vmax = 0.0
    for s in range(len(series)):
        for g in range(len(groups)):
            v = values[s][g]
            if v is not None:
                vmax = max(vmax, v, errors[s][g][1] if errors and errors[s][g] else 0)
    for y, _ in hlines:
        vmax = max(vmax, y)
    ymax = _nice_max(vmax * 1.05)
    ph = h - top - bottom
    pw = w - left - right

    def Y(v):
        return top + ph - v / ymax * ph

    for i in range(6):
        v = ymax * i / 5
        svg.line(left, Y(v), w - right, Y(v), "#e5e5e5")
        svg.text(left - 6, Y(v) + 4, _fmt(v), 10, "end")
    svg.text(16, top + ph / 2, ylabel, 11, "middle", rotate=-90)
    gw = pw / max(len(groups), 1)
    bw = min(16, (gw - 12) / max(len(series), 1))
    for g, label in enumerate(groups):
        x0 = left + g * gw + (gw - bw * len(series)) / 2
        for s in range(len(series)):
            v = values[s][g]
            if v is None:
                continue
            x = x0 + s * bw
            svg.rect(x, Y(v), bw - 1, Y(0) - Y(v), COLORS[s % len(COLORS)])
            if errors and errors[s][g]:
                lo, hi = errors[s][g]
                xm = x + (bw - 1) / 2
                svg.line(xm, Y(lo), xm, Y(hi), "#333")
                svg.line(xm - 3, Y(lo), xm + 3, Y(lo), "#333")
                svg.line(xm - 3, Y(hi), xm + 3, Y(hi), "#333")
        svg.text(left + g * gw + gw / 2, h - bottom + 14, label, 10, "end",
                 rotate=-35)
    for y, label in hlines:
        svg.line(left, Y(y), w - right, Y(y), "#c00", 1, "4 3")
        svg.text(w - right - 2, Y(y) - 3, label, 10, "end")
    svg.line(left, Y(0), w - right, Y(0), "#333")
    lx = left
    for s, name in enumerate(series):
        svg.rect(lx, h - 22, 10, 10, COLORS[s % len(COLORS)])
        svg.text(lx + 14, h - 13, name, 10)
        lx += 24 + 7 * len(name)
    svg.dump(path)


def lines(path, title, xlabel, ylabel, series, logx=True, logy=False):
    """series: [(name, [(x, y), ...])]."""
    w, h = 640, 400
    left, right, top, bottom = 75, 20, 40, 75
    svg = _Svg(w, h)
    svg.text(w / 2, 22, title, 14, "middle", weight="bold")
    pts = [p for _, ps in series for p in ps if p[1] is not None]
    if not pts:
        svg.text(w / 2, h / 2, "no data", 12, "middle")
        svg.dump(path)
        return
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    fx = (lambda v: math.log10(v)) if logx else (lambda v: v)
    fy = (lambda v: math.log10(max(v, 1e-12))) if logy else (lambda v: v)
    x0, x1 = fx(min(xs)), fx(max(xs))
    if x1 == x0:
        x1 = x0 + 1
    if logy:
        y0 = math.floor(fy(min(ys)))
        y1 = math.ceil(fy(max(ys)))
        if y1 == y0:
            y1 = y0 + 1
    else:
        y0, y1 = 0.0, _nice_max(max(ys) * 1.05)
    pw, ph = w - left - right, h - top - bottom

    def X(v):
        return left + (fx(v) - x0) / (x1 - x0) * pw

    def Y(v):
        return top + ph - (fy(v) - y0) / (y1 - y0) * ph

    if logy:
        for e in range(int(y0), int(y1) + 1):
            svg.line(left, Y(10 ** e), w - right, Y(10 ** e), "#e5e5e5")
            svg.text(left - 6, Y(10 ** e) + 4, _fmt(10 ** e), 10, "end")
    else:
        for i in range(6):
            v = y0 + (y1 - y0) * i / 5
            svg.line(left, Y(v), w - right, Y(v), "#e5e5e5")
            svg.text(left - 6, Y(v) + 4, _fmt(v), 10, "end")
    for xv in sorted(set(xs)):
        svg.line(X(xv), top + ph, X(xv), top + ph + 4, "#333")
        svg.text(X(xv), top + ph + 16, _fmt(xv), 10, "middle")
    svg.line(left, top + ph, w - right, top + ph, "#333")
    svg.line(left, top, left, top + ph, "#333")
    svg.text(left + pw / 2, h - 38, xlabel, 11, "middle")
    svg.text(16, top + ph / 2, ylabel, 11, "middle", rotate=-90)
    for i, (name, ps) in enumerate(series):
        ps = [p for p in ps if p[1] is not None]
        c = COLORS[i % len(COLORS)]
        if len(ps) > 1:
            d = " ".join(f"{'M' if k == 0 else 'L'}{X(x):.1f},{Y(y):.1f}"
                         for k, (x, y) in enumerate(ps))
            svg.add(f'<path d="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in ps:
            svg.add(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{c}"/>')
    lx = left
    for i, (name, _) in enumerate(series):
        svg.rect(lx, h - 20, 10, 10, COLORS[i % len(COLORS)])
        svg.text(lx + 14, h - 11, name, 10)
        lx += 24 + 6.5 * len(name)
    svg.dump(path)
