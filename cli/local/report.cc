#include "cli/local/report.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"

namespace tandem::local {
namespace {

using nlohmann::json;

// The page's styles and script. The script reads the JSON in #tandem-data and draws every chart
// as SVG; it sets data-drawn on each chart it drew (the browser test reads that back).
constexpr char kHead[] = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>)HTML";

constexpr char kStyle[] = R"HTML(</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d232a; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
.sub { color: #5b6570; margin-bottom: 16px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
.panel { border: 1px solid #d7dde3; border-radius: 6px; padding: 12px; }
.panel h2 { font-size: 15px; margin: 0 0 8px; }
.summary td { padding: 2px 12px 2px 0; }
.summary td:first-child { color: #5b6570; }
.legend span { display: inline-block; margin-right: 12px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
.empty { color: #8a949e; font-style: italic; }
svg text { font-size: 11px; fill: #5b6570; }
table.events { border-collapse: collapse; font-size: 12px; width: 100%; }
table.events td { border-top: 1px solid #eef1f4; padding: 2px 6px; vertical-align: top; }
</style></head><body>
)HTML";

constexpr char kScript[] = R"HTML(
<script>
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("tandem-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  const PHASES = [["compute", "#1f77b4"], ["data", "#bcbd22"], ["allreduce", "#ff7f0e"], ["pserver", "#9467bd"]];
  const W = 520, H = 240, L = 56, R = 12, T = 10, B = 34;

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) {
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2);
    if (a >= 1e-3) return v.toFixed(3);
    return v.toExponential(1);
  }
  function ticks(lo, hi, n) {
    if (hi <= lo) hi = lo + 1;
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(v);
    return out;
  }
  function empty(host, text) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = text;
    host.appendChild(p);
  }
  function legend(host, items) {
    const d = document.createElement("div");
    d.className = "legend";
    for (const [name, color] of items) {
      const s = document.createElement("span"), i = document.createElement("i");
      i.style.background = color;
      s.appendChild(i);
      s.appendChild(document.createTextNode(name));
      d.appendChild(s);
    }
    host.appendChild(d);
  }
  // series: [{name, color, points: [[x, y], ...]}]; marks: x positions drawn as dashed lines.
  function lineChart(id, series, xlabel, marks) {
    const host = document.getElementById(id);
    series = series.filter(s => s.points.length > 0);
    if (series.length === 0) { empty(host, "no data in metrics.jsonl"); return; }
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of series) for (const [x, y] of s.points) {
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
    if (y0 > 0 && y0 < (y1 - y0)) y0 = 0;
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y1 = y0 + Math.max(1e-9, Math.abs(y0) * 0.1); }
    const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
    const sy = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img"}, host);
    for (const v of ticks(y0, y1, 5)) {
      el("line", {x1: L, x2: W - R, y1: sy(v), y2: sy(v), stroke: "#eef1f4"}, svg);
      el("text", {x: L - 6, y: sy(v) + 4, "text-anchor": "end"}, svg).textContent = fmt(v);
    }
    for (const v of ticks(x0, x1, 6)) {
      el("text", {x: sx(v), y: H - B + 16, "text-anchor": "middle"}, svg).textContent = fmt(v);
    }
    el("text", {x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle"}, svg).textContent = xlabel;
    el("rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#d7dde3"}, svg);
    for (const m of marks || []) {
      if (m < x0 || m > x1) continue;
      el("line", {x1: sx(m), x2: sx(m), y1: T, y2: H - B, stroke: "#d62728", "stroke-dasharray": "4 3"}, svg);
    }
    for (const s of series) {
      const pts = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
      el("polyline", {points: pts, fill: "none", stroke: s.color, "stroke-width": 1.6, class: "series"}, svg);
    }
    legend(host, series.map(s => [s.name, s.color]).concat((marks || []).length ? [["restart", "#d62728"]] : []));
    host.dataset.drawn = String(series.length);
  }
  // rows: [{name, parts: {compute, data, allreduce, pserver}}] in seconds per step.
  function splitChart(id, rows) {
    const host = document.getElementById(id);
    rows = rows.filter(r => PHASES.some(([p]) => r.parts[p] > 0));
    if (rows.length === 0) { empty(host, "no step-time split in metrics.jsonl"); return; }
    const rowH = 26, h = T + rows.length * rowH + B;
    const max = Math.max(...rows.map(r => PHASES.reduce((a, [p]) => a + r.parts[p], 0)));
    const sx = v => L + v / max * (W - L - R);
    const svg = el("svg", {viewBox: `0 0 ${W} ${h}`, width: "100%", role: "img"}, host);
    rows.forEach((r, i) => {
      const y = T + i * rowH;
      el("text", {x: L - 6, y: y + rowH / 2 + 4, "text-anchor": "end"}, svg).textContent = r.name;
      let acc = 0;
      for (const [p, color] of PHASES) {
        const v = r.parts[p];
        if (!(v > 0)) continue;
        const bar = el("rect", {x: sx(acc), y: y + 3, width: Math.max(0.5, sx(acc + v) - sx(acc)),
                                height: rowH - 6, fill: color, class: "series"}, svg);
        el("title", {}, bar).textContent = `${r.name} ${p}: ${(v * 1000).toFixed(2)} ms/step`;
        acc += v;
      }
    });
    for (const v of ticks(0, max, 5)) {
      el("text", {x: sx(v), y: h - B + 16, "text-anchor": "middle"}, svg).textContent = (v * 1000).toFixed(1);
    }
    el("text", {x: (L + W - R) / 2, y: h - 4, "text-anchor": "middle"}, svg).textContent = "ms per step (mean over the run)";
    legend(host, PHASES);
    host.dataset.drawn = String(rows.length);
  }

  const progress = data.events.filter(e => e.event === "progress" && typeof e.worker === "number");
  const workers = [...new Set(progress.map(e => e.worker))].sort((a, b) => a - b);
  const t0 = data.events.reduce((m, e) => typeof e.time === "number" ? Math.min(m, e.time) : m, Infinity);
  const restarts = data.events.filter(e => e.event === "supervisor" && /^restarted /.test(e.message || ""));
  const color = w => COLORS[w % COLORS.length];
  const globalStep = e => ((e.pass || 1) - 1) * (e.stepsPerPass || 0) + (e.step || 0);
  const per = (key, xOf) => workers.map(w => ({
    name: "worker " + w, color: color(w),
    points: progress.filter(e => e.worker === w && typeof e[key] === "number" && isFinite(e[key]))
                    .map(e => [xOf(e), e[key]])}));
  lineChart("chart-loss", per("loss", globalStep), "step");
  lineChart("chart-accuracy", per("accuracy", globalStep), "step");
  lineChart("chart-throughput", per("examplesPerSec", e => e.time - t0), "seconds since start",
            restarts.map(e => e.time - t0));
  splitChart("chart-split", workers.map(w => {
    const evs = progress.filter(e => e.worker === w && typeof e.stepSeconds === "number");
    const mean = k => evs.length ? evs.reduce((a, e) => a + (e[k] || 0), 0) / evs.length : 0;
    const step = mean("stepSeconds"), d = mean("dataSeconds"), a = mean("allreduceSeconds"), p = mean("pserverSeconds");
    return {name: "rank " + w, parts: {compute: Math.max(0, step - d - a - p), data: d, allreduce: a, pserver: p}};
  }));

  const tbody = document.getElementById("restart-rows");
  const shown = data.events.filter(e => e.event === "supervisor" && /exited with code|^restarted |resumed/.test(e.message || ""))
    .concat(data.events.filter(e => e.event === "resumed"));
  shown.sort((a, b) => (a.time || 0) - (b.time || 0));
  for (const e of shown) {
    const tr = document.createElement("tr");
    const cells = [isFinite(e.time - t0) ? (e.time - t0).toFixed(1) + " s" : "",
                   e.event === "resumed" ? `worker ${e.worker} resumed at step ${e.step} (${e.lostSteps || 0} steps lost)` : e.message];
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    tbody.appendChild(tr);
  }
  document.getElementById("restart-count").textContent = String(restarts.length);
  if (shown.length === 0) empty(document.getElementById("restarts"), "no process exited or restarted");
  document.body.dataset.ready = "1";
})();
</script></body></html>
)HTML";

std::string Escape(const std::string& s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

std::string ReadOrEmpty(const std::filesystem::path& p, bool* found) {
  std::ifstream in(p);
  *found = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string RenderRunReport(const std::string& metrics_jsonl, const std::string& summary,
                            const std::string& title) {
  json events = json::array();
  std::istringstream lines(metrics_jsonl);
  for (std::string line; std::getline(lines, line);) {
    json e = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (e.is_object()) events.push_back(std::move(e));
  }
  json sum = json::parse(summary, nullptr, false);
  if (!sum.is_object()) sum = json::object();

  std::string out = absl::StrCat(kHead, Escape(title), kStyle);
  absl::StrAppend(&out, "<h1>", Escape(title), "</h1>\n<div class=\"sub\">tandem run report, drawn from "
                  "metrics.jsonl (", events.size(), " events); restarts: <b id=\"restart-count\">0</b></div>\n");
  absl::StrAppend(&out, "<div class=\"panel\"><h2>Summary</h2><table class=\"summary\">");
  for (const char* key : {"test_accuracy", "test_loss", "examples_per_sec", "wall_s", "workers",
                          "restarts", "lost_steps", "succeeded"}) {
    if (!sum.contains(key)) continue;
    const json& v = sum[key];
    std::string text = v.is_number_float() ? absl::StrFormat("%.6g", v.get<double>()) : v.dump();
    absl::StrAppend(&out, "<tr><td>", key, "</td><td>", Escape(text), "</td></tr>");
  }
  absl::StrAppend(&out, "</table></div>\n<div class=\"grid\">\n");
  const std::pair<const char*, const char*> panels[] = {
      {"chart-loss", "Training loss"},
      {"chart-accuracy", "Training accuracy"},
      {"chart-throughput", "Examples per second, per worker"},
      {"chart-split", "Step time per rank: compute, data, all-reduce, pserver"}};
  for (const auto& [id, name] : panels) {
    absl::StrAppend(&out, "<div class=\"panel\"><h2>", name, "</h2><div class=\"chart\" id=\"", id,
                    "\"></div></div>\n");
  }
  absl::StrAppend(&out, "<div class=\"panel\" id=\"restarts\"><h2>Exits, restarts and resumes</h2>"
                        "<table class=\"events\"><tbody id=\"restart-rows\"></tbody></table></div>\n</div>\n");
  // "</" inside a script element would end it early; JSON allows "<\/" for the same text.
  std::string payload = json({{"events", events}, {"summary", sum}})
                            .dump(-1, ' ', false, json::error_handler_t::replace);
  absl::StrAppend(&out, "<script type=\"application/json\" id=\"tandem-data\">",
                  absl::StrReplaceAll(payload, {{"</", "<\\/"}}), "</script>", kScript);
  return out;
}

absl::Status WriteRunReport(const std::string& run_dir) {
  namespace fs = std::filesystem;
  bool found = false;
  const std::string metrics = ReadOrEmpty(fs::path(run_dir) / "metrics.jsonl", &found);
  if (!found) return absl::NotFoundError(absl::StrCat("cannot read ", run_dir, "/metrics.jsonl"));
  bool have_summary = false;
  const std::string summary = ReadOrEmpty(fs::path(run_dir) / "summary.json", &have_summary);
  const std::string title = fs::path(run_dir).lexically_normal().filename().string();
  const fs::path out = fs::path(run_dir) / "report.html";
  std::ofstream f(out, std::ios::trunc);
  f << RenderRunReport(metrics, summary, title.empty() ? "tandem run" : title);
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", out.string()));
  return absl::OkStatus();
}

}  // namespace tandem::local
