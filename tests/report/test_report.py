#!/usr/bin/env python3
"""ctest report.html: `mamba-ft report` on a generated sweep folder and a single-run folder.

Renders each report in headless Chromium and checks the rendered DOM (--dump-dom): every required section
is there and its charts draw data (SVG marks carrying data-series / data-bar attributes, data-marks > 0);
takes a screenshot and checks that it is a non-blank PNG (decoded here with zlib). Also: the HTML is
self-contained (no URLs, scripts or external resources), a chart without data says "no data", and a folder
without results or a missing folder fails with exit 1 and one `mamba-ft: error:` line naming the folder.

Usage: test_report.py BUILD/mamba-ft        (exit 77, which ctest reports as skipped, without chromium)
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from html.parser import HTMLParser

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
failures = []


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}{': ' + str(detail) if detail else ''}")
        print(f"FAIL: {name} {detail}")


class Dom(HTMLParser):
    """Sections (by id) with their charts: each chart's data-marks, drawn series paths, bands, bars, text."""

    def __init__(self):
        super().__init__()
        self.sections = {}  # id -> {"charts": [...], "tables": rows, "text": str}
        self.stack = []     # open section/header ids
        self.chart = None
        self.in_title = False
        self.tags = set()

    def _current(self):
        return self.sections[self.stack[-1]] if self.stack else None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag in ("section", "header") and "id" in a:
            self.sections[a["id"]] = {"charts": [], "rows": 0, "text": ""}
            self.stack.append(a["id"])
        sec = self._current()
        if tag == "svg" and sec is not None:
            self.chart = {"kind": a.get("data-chart"), "marks": int(a.get("data-marks", "-1")), "series": 0,
                          "points": 0, "bands": 0, "bars": 0, "text": ""}
            sec["charts"].append(self.chart)
        elif self.chart is not None:
            if tag == "path" and "data-series" in a:
                self.chart["series"] += 1
                self.chart["points"] += int(a.get("data-points", "0"))
            elif tag == "polygon" and "data-band" in a:
                self.chart["bands"] += 1
            elif tag == "rect" and "data-bar" in a:
                self.chart["bars"] += 1
        if tag == "tr" and sec is not None:
            sec["rows"] += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self.chart = None
        if tag in ("section", "header") and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        sec = self._current()
        if sec is not None:
            sec["text"] += data
        if self.chart is not None:
            self.chart["text"] += data


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def chromium_cmd(tmp):
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        return None
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            f"--user-data-dir={tmp}/chromium-profile"]


def dump_dom(chromium, html_path):
    r = run(chromium + ["--dump-dom", "file://" + os.path.abspath(html_path)])
    check(f"chromium --dump-dom {html_path}", r.returncode == 0 and "<section" in r.stdout, r.stderr[-400:])
    dom = Dom()
    dom.feed(r.stdout)
    return dom


def png_pixels(path):
    """Decodes an 8-bit RGB/RGBA non-interlaced PNG: returns (width, height, channels, rows of bytes)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):  # undo the PNG row filter (None, Sub, Up, Average, Paeth)
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            ul = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + left) & 255
            elif f == 2:
                line[i] = (line[i] + up) & 255
            elif f == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif f == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else ul)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def check_screenshot(chromium, html_path, png_path, height):
    r = run(chromium + [f"--screenshot={png_path}", f"--window-size=1400,{height}", "file://" + os.path.abspath(html_path)])
    check(f"chromium --screenshot {png_path}", r.returncode == 0 and os.path.exists(png_path), r.stderr[-400:])
    if not os.path.exists(png_path):
        return
    width, h, channels, rows = png_pixels(png_path)
    colours, non_background, total = set(), 0, 0
    for row in rows[::7]:  # every 7th row, every 5th pixel: plenty to tell a report from a blank page
        for x in range(0, width, 5):
            px = row[x * channels:x * channels + 3]
            colours.add(px)
            total += 1
            non_background += px not in (b"\xfa\xfa\xfa", b"\xff\xff\xff")
    check(f"{png_path} is {1400}x{height}", (width, h) == (1400, height), (width, h))
    check(f"{png_path} has many colours (charts drawn)", len(colours) >= 50, len(colours))
    check(f"{png_path} is not blank", non_background / total > 0.03, non_background / total)


def check_self_contained(html_path):
    text = open(html_path, encoding="utf-8").read()
    for bad in ("http://", "https://", "<script", "<link", "<img", "@import", "url("):
        check(f"{html_path} has no {bad}", bad not in text.lower())


def charts_ok(dom, section, count, min_series=0, min_bars=0, kind=None):
    sec = dom.sections.get(section)
    check(f"section {section} exists", sec is not None)
    if sec is None:
        return
    charts = [c for c in sec["charts"] if kind is None or c["kind"] == kind]
    check(f"{section}: {count} charts", len(charts) == count, len(charts))
    for i, c in enumerate(charts):
        check(f"{section} chart {i}: data drawn", c["marks"] > 0 and "no data" not in c["text"], c)
        check(f"{section} chart {i}: >= {min_series} series", c["series"] >= min_series, c)
        check(f"{section} chart {i}: >= {min_bars} bars", c["bars"] >= min_bars, c)


def check_sweep(exe, chromium, fixture, tmp):
    sweep = os.path.join(fixture, "sweep")
    r = run([exe, "report", sweep])
    check("report sweep: exit 0", r.returncode == 0, r.stderr)
    html = os.path.join(sweep, "report.html")
    check("report sweep: default output DIR/report.html", os.path.exists(html))
    check_self_contained(html)
    dom = dump_dom(chromium, html)
    ov = dom.sections.get("overview", {"text": ""})
    check("overview: name", "report-fixture" in ov["text"])
    check("overview: counts", "23 ok" in ov["text"] and "1 failed" in ov["text"], ov["text"][:300])
    check("overview: failed point's error", "loss is not finite at step 21" in ov["text"])
    check("overview: elapsed", "20 min 35 s" in ov["text"])
    charts_ok(dom, "training", 3, min_series=4)  # one per family, a line per config (+ eval markers)
    charts_ok(dom, "divergence", 1, min_bars=9, kind="bar")  # 3 families x 3 non-reference configs
    check("divergence: config x task table", dom.sections["divergence"]["rows"] == 1 + 9)  # header + 9 non-reference configs
    check("divergence: spike counts", "spike" in dom.sections["divergence"]["text"])
    charts_ok(dom, "icl", 3, min_series=4)
    check("icl: CI bands", all(c["bands"] >= 4 for c in dom.sections["icl"]["charts"]))
    check("icl: improvement/ratio table", "pythia fp32 full" in dom.sections["icl"]["text"]
          and dom.sections["icl"]["rows"] == 1 + 48)
    check("lora-spread table", dom.sections.get("lora-spread", {"rows": 0})["rows"] == 1 + 3)
    charts_ok(dom, "throughput", 2, min_bars=12, kind="bar")
    charts_ok(dom, "stability-perturbation", 3, min_series=3)
    charts_ok(dom, "stability-lyapunov", 2, min_series=2)
    check("lyapunov: stability verdict", "yes (stable)" in dom.sections["stability-lyapunov"]["text"])
    charts_ok(dom, "stability-precision", 6, min_series=4)
    check("rendered page has no scripts", "script" not in dom.tags)
    check_screenshot(chromium, html, os.path.join(tmp, "sweep.png"), 5000)


def check_run(exe, chromium, fixture, tmp):
    out = os.path.join(tmp, "run-report.html")
    r = run([exe, "report", os.path.join(fixture, "run"), "--output", out])
    check("report run --output: exit 0", r.returncode == 0 and os.path.exists(out), r.stderr)
    check("report run --output: nothing written into the run folder",
          not os.path.exists(os.path.join(fixture, "run", "report.html")))
    check_self_contained(out)
    dom = dump_dom(chromium, out)
    check("run overview", "overview" in dom.sections)
    charts_ok(dom, "training", 4, min_series=1)
    check("run training: eval loss markers", "eval loss" in dom.sections["training"]["text"])
    charts_ok(dom, "icl", 1, min_series=3)
    charts_ok(dom, "stability-perturbation", 1, min_series=3)
    charts_ok(dom, "stability-lyapunov", 1, min_series=2)
    check("run without precision results says so", "No precision-divergence results" in
          dom.sections.get("stability-precision", {"text": ""})["text"])
    check_screenshot(chromium, out, os.path.join(tmp, "run.png"), 2400)

    # A log whose losses are all missing: the chart must say "no data", not break.
    nodata = os.path.join(tmp, "nodata")
    os.makedirs(nodata)
    with open(os.path.join(nodata, "metrics.jsonl"), "w") as f:
        f.write('{"step": 10, "loss": null, "lr": null}\n{"step": 20, "loss": null, "lr": null}\n')
    r = run([exe, "report", nodata])
    check("report on a log without values: exit 0", r.returncode == 0, r.stderr)
    dom = dump_dom(chromium, os.path.join(nodata, "report.html"))
    charts = dom.sections.get("training", {"charts": []})["charts"]
    check("charts without data say 'no data'", charts and all(c["marks"] == 0 and "no data" in c["text"] for c in charts),
          charts)


def check_errors(exe, fixture, tmp):
    for folder in (os.path.join(fixture, "empty"), os.path.join(tmp, "does-not-exist")):
        r = run([exe, "report", folder])
        lines = r.stderr.strip().splitlines()
        check(f"report {folder}: exit 1", r.returncode == 1, r.returncode)
        check(f"report {folder}: one error line naming the folder",
              len(lines) == 1 and lines[0].startswith("mamba-ft: error: ") and folder in lines[0], r.stderr)
    check("no report written into a folder without results",
          not any(n.startswith("report.html") for n in os.listdir(os.path.join(fixture, "empty"))))


def main():
    exe = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="mft-report-") as tmp:
        chromium = chromium_cmd(tmp)
        if chromium is None:
            print("SKIP: chromium not installed (scripts/setup installs it)")
            return SKIP
        fixture = os.path.join(tmp, "fixture")
        subprocess.run([sys.executable, os.path.join(HERE, "make_report_fixture.py"), exe, fixture], check=True)
        check_sweep(exe, chromium, fixture, tmp)
        check_run(exe, chromium, fixture, tmp)
        check_errors(exe, fixture, tmp)
        keep = os.environ.get("MFT_REPORT_KEEP")  # a folder to copy the reports and screenshots to, for a look
        if keep:
            os.makedirs(keep, exist_ok=True)
            for name in ("sweep.png", "run.png", "run-report.html"):
                if os.path.exists(os.path.join(tmp, name)):
                    shutil.copy(os.path.join(tmp, name), keep)
            shutil.copy(os.path.join(fixture, "sweep", "report.html"), os.path.join(keep, "sweep-report.html"))
    print(f"report.html: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
