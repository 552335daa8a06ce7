// The HTML report: plain strings of inline CSS and SVG, so the page opens anywhere offline.
#include "tpsim/html.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>

#include "report/html_escape.hpp"
#include "report/atomic_file.hpp"

namespace tpsim {

namespace {

const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
pre{background:#f6f6f6;padding:10px;overflow-x:auto}
table{border-collapse:collapse}td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}
td:first-child,th:first-child,td.l,th.l{text-align:left}td{white-space:nowrap}td.wrap{white-space:normal}
.compute,.forward,.prefill{fill:#4c78a8}.backward{fill:#54a24b}.recompute{fill:#9ecae9}.optimizer{fill:#b279a2}
.cut{fill:#fff;fill-opacity:0.9}.decode{fill:#72b7b2}.comm{fill:#f58518}.stall{fill:#e45756}.bubble{fill:#bdbdbd}.idle{fill:#f0f0f0}
.phase{fill-opacity:0.25}.phase-label{font-size:11px;fill:#222}
.axis{stroke:#ccc;stroke-width:1}.tick{font-size:10px;fill:#555}.row{font-size:11px;fill:#333}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:middle}
.note{color:#666}details{margin:4px 0}summary{cursor:pointer}
)";

const char* kPalette[] = {"#4c78a8", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"};

std::string escape(const std::string& s) { return html_escape(s); }

std::string pct(double part, double whole) { return whole > 0 ? fmt::format("{:.1f}%", 100 * part / whole) : "-"; }

// A horizontal stacked bar of (class or colour, value) parts scaled so `full` spans `width` px.
std::string stacked_bar(const std::vector<std::pair<std::string, double>>& parts, double full, double width,
                        bool colours, double marker = 0) {
  std::string svg = fmt::format(R"(<svg width="{:.0f}" height="14">)", width);
  double x = 0;
  int k = 0;
  for (const auto& [what, v] : parts) {
    const double w = full > 0 ? width * v / full : 0;
    if (w > 0) {
      if (colours)
        svg += fmt::format(R"(<rect x="{:.2f}" y="0" width="{:.2f}" height="14" fill="{}"/>)", x, w, kPalette[k % 8]);
      else
        svg += fmt::format(R"(<rect class="{}" x="{:.2f}" y="0" width="{:.2f}" height="14"/>)", what, x, w);
    }
    x += w;
    ++k;
  }
  if (marker > 0 && full > 0)   // e.g. the HBM capacity
    svg += fmt::format(R"(<rect x="{:.2f}" y="0" width="2" height="14" fill="#222"/>)",
                       std::min(width - 2, width * marker / full));
  return svg + "</svg>";
}

std::string gpu_table(const Attribution& a) {
  std::string h = "<table><tr><th>GPU</th><th>node</th><th>compute</th><th>stalled on comm</th><th>bubble</th>"
                  "<th>idle</th><th>comm (overlapped or not)</th><th class=\"l\">compute stream over the step</th></tr>\n";
  for (const auto& g : a.gpus)
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>\n",
                     g.rank, g.node, format_seconds(g.compute), format_seconds(g.exposed_communication),
                     format_seconds(g.bubble), format_seconds(g.idle), format_seconds(g.communication),
                     stacked_bar({{"compute", g.compute}, {"stall", g.exposed_communication}, {"bubble", g.bubble},
                                  {"idle", g.idle}},
                                 a.makespan, 300, false));
  return h + "</table>\n";
}

std::string memory_section(const std::vector<MemoryBar>& memory) {
  if (memory.empty()) return "";
  double full = 0;
  for (const auto& m : memory) {
    double used = 0;
    for (const auto& p : m.parts) used += p.second;
    full = std::max({full, used, m.capacity});
  }
  std::string h = "<h2>Memory per GPU</h2>\n<p class=\"legend\">";
  for (size_t k = 0; k < memory.front().parts.size(); ++k)
    h += fmt::format(R"(<span style="background:{}"></span>{})", kPalette[k % 8], escape(memory.front().parts[k].first));
  h += "<span style=\"background:#222;width:3px\"></span>HBM capacity</p>\n"
       "<table><tr><th>GPU</th><th>used</th><th>capacity</th><th class=\"l\"></th></tr>\n";
  for (const auto& m : memory) {
    double used = 0;
    for (const auto& p : m.parts) used += p.second;
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>\n", m.rank, format_bytes(used),
                     m.capacity > 0 ? format_bytes(m.capacity) : "-", stacked_bar(m.parts, full, 400, true, m.capacity));
  }
  return h + "</table>\n";
}

std::string stall_section(const Attribution& a) {
  std::string h = "<h2>Where the compute streams stalled</h2>\n";
  if (a.stall_groups.empty()) return h + "<p>No stalls: every communication was hidden behind compute.</p>\n";
  h += "<p class=\"note\">One row per op over the layers it stalled in; total and times on the GPU that stalled "
       "longest there.</p>\n<table><tr><th class=\"l\">op held up</th><th class=\"l\">layers</th>"
       "<th class=\"l\">waiting for</th><th>total</th><th>times</th><th>GPUs</th></tr>\n";
  for (size_t i = 0; i < a.stall_groups.size() && i < 20; ++i) {
    const StallGroup& s = a.stall_groups[i];
    const std::string waited = s.what.empty() ? escape(s.waited_for)
                                              : fmt::format("{} <span class=\"note\">({})</span>", escape(s.what),
                                                            escape(s.waited_for));
    h += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l wrap\">{}</td><td>{}</td><td>{}</td>"
                     "<td>{}</td></tr>\n",
                     escape(s.op), escape(layers_text(s)), waited, format_seconds(s.total), s.count, s.gpus);
  }
  if (a.stall_groups.size() > 20)
    h += fmt::format("<tr><td class=\"l\" colspan=\"6\">and {} shorter sites</td></tr>\n", a.stall_groups.size() - 20);
  return h + "</table>\n";
}

std::string link_section(const Attribution& a) {
  std::string h = "<h2>Bottleneck links</h2>\n";
  std::string rows;
  size_t shown = 0;
  for (const LinkGroup& g : a.link_groups) {
    if (shown++ == 12) break;
    const LinkLoad& l = a.links[g.members.front()];
    rows += fmt::format("<tr><td>{}</td><td class=\"l wrap\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                        "<td class=\"l wrap\">{}</td></tr>\n",
                        g.members.size(), escape(g.names), format_bytes(l.bytes), pct(l.utilisation, 1),
                        pct(l.busy_fraction, 1), l.saturated ? "yes" : "no", escape(describe_link_group(a, g)));
  }
  if (rows.empty()) return h + "<p>No link traffic recorded.</p>\n";
  std::string more;
  if (a.link_groups.size() > 12) {
    size_t links = 0;
    for (size_t i = 12; i < a.link_groups.size(); ++i) links += a.link_groups[i].members.size();
    more = fmt::format("<p class=\"note\">{} less loaded links in {} more groups are not listed.</p>\n", links,
                       a.link_groups.size() - 12);
  }
  return h + "<p class=\"note\">Links loaded alike (utilisation and busy share within 1%) share a row.</p>\n"
             "<table><tr><th>links</th><th class=\"l\">which</th><th>bytes (most loaded)</th><th>utilisation while busy</th>"
             "<th>busy of step</th><th>saturated</th><th class=\"l\"></th></tr>\n" + rows + "</table>\n" + more;
}

// The pipeline stage of a rank: mesh_order lists the axes innermost (fastest-varying) first.
int stage_of(const PlanSpec& plan, int rank) {
  int stride = 1;
  for (const auto& axis : plan.mesh_order) {
    const int size = axis == "tp" ? plan.tp : axis == "dp" ? plan.dp : axis == "pp" ? plan.pp : 1;
    if (axis == "pp") return (rank / stride) % std::max(1, size);
    stride *= std::max(1, size);
  }
  return 0;
}

}  // namespace

std::vector<MemoryBar> memory_bars(const RunResult& run, int max_rows) {
  std::vector<MemoryBar> bars;
  if (!run.step || run.step->memory_per_stage.empty()) return bars;
  const int world = std::min(run.scenario.plan.world(), max_rows);
  for (int r = 0; r < world; ++r) {
    const int stage = stage_of(run.scenario.plan, r);
    if (stage >= static_cast<int>(run.step->memory_per_stage.size())) continue;
    const MemoryBreakdown& m = run.step->memory_per_stage[stage];
    MemoryBar bar;
    bar.rank = r;
    bar.capacity = m.capacity;
    for (const auto& c : m.components()) bar.parts.push_back({c.name, c.bytes});
    bars.push_back(bar);
  }
  return bars;
}

const char* html_style() { return kStyle; }

std::string html_report(const RunResult& run, const Attribution& a, const HtmlOptions& options) {
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  h += fmt::format("<title>tpsim: {}</title>\n<style>{}</style></head><body>\n", escape(run.scenario.name), kStyle);
  // Script errors land in the body's data-errors (headless tests assert it stays empty).
  h += "<script>window.addEventListener('error',function(e){var b=document.body||document.documentElement;"
       "b.setAttribute('data-errors',(b.getAttribute('data-errors')||'')+e.message+';');});</script>\n";
  h += fmt::format("<h1>tpsim: {}</h1>\n", escape(run.scenario.name));
  h += "<h2>Summary</h2>\n<pre>" + escape(summary_text(run)) + "</pre>\n";
  h += "<h2>Timeline</h2>\n" + timeline_figure(run, a, options);
  h += "<h2>Per GPU</h2>\n" + gpu_table(a);
  h += memory_section(options.memory);
  h += stall_section(a);
  h += link_section(a);
  // Records how many span rectangles the browser laid out with a size, in the main timeline and in
  // all of them (drill-downs too), the link utilisation paths drawn, and any script error: checks
  // for headless tests.
  h += "<script>(function(){function drawn(q){var n=0;document.querySelectorAll(q).forEach(function(r){"
       "var b=r.getBBox();if(b.width>0&&b.height>0)n++;});return String(n);}"
       "var t=document.getElementById('timeline');if(t){t.setAttribute('data-drawn',drawn('#timeline rect.span'));"
       "t.setAttribute('data-drawn-all',drawn('svg.timeline rect.span'));}"
       "var l=document.getElementById('link-timeline');if(l)l.setAttribute('data-drawn-links',drawn('#link-timeline path.linkutil'));"
       "})();</script>\n";
  h += "</body></html>\n";
  return h;
}

void write_html(const std::string& path, const RunResult& run, const Attribution& a, const HtmlOptions& options) {
  write_file_atomically("--html", path, html_report(run, a, options));
}

}  // namespace tpsim
