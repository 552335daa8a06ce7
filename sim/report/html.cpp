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
td:first-child,th:first-child,td.l,th.l{text-align:left}
.compute{fill:#4c78a8}.comm{fill:#f58518}.stall{fill:#e45756}.bubble{fill:#9d9d9d}.idle{fill:#eeeeee}
.axis{stroke:#999;stroke-width:1}.tick{font-size:10px;fill:#555}.row{font-size:11px;fill:#333}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:middle}
.note{color:#666}
)";

const char* kPalette[] = {"#4c78a8", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"};

std::string escape(const std::string& s) { return html_escape(s); }

std::string pct(double part, double whole) { return whole > 0 ? fmt::format("{:.1f}%", 100 * part / whole) : "-"; }

// Which band and colour a span takes: compute-stream work on the wide band, comm streams below it.
const char* span_class(const Span& s) {
  if (s.kind == "stall") return "stall";
  if (s.kind == "bubble") return "bubble";
  if (s.kind == "collective" || s.kind == "send" || s.kind == "recv") return "comm";
  return "compute";
}

// A rectangle in the picture; spans closer than half a pixel merge, so a step of millions of ops
// stays a page of a few thousand rectangles.
struct Rect {
  double x0, x1;
  int count;
  double seconds;
  std::string name;
};

std::vector<Rect> coalesce(std::vector<const Span*> spans, double px_per_s, double x_origin) {
  std::sort(spans.begin(), spans.end(), [](const Span* a, const Span* b) {
    return std::tie(a->start, a->end, a->name) < std::tie(b->start, b->end, b->name);
  });
  std::vector<Rect> out;
  for (const Span* s : spans) {
    const double x0 = x_origin + s->start * px_per_s, x1 = x_origin + s->end * px_per_s;
    if (!out.empty() && x0 - out.back().x1 < 0.5) {
      out.back().x1 = std::max(out.back().x1, x1);
      out.back().count += 1;
      out.back().seconds += s->end - s->start;
    } else {
      out.push_back({x0, x1, 1, s->end - s->start, s->kind == "stall" ? "waiting for " + s->waited_for : s->name});
    }
  }
  return out;
}

std::string timeline_svg(const Timeline& t, int max_rows) {
  int ranks = static_cast<int>(t.ranks.size());
  for (const auto& s : t.spans) ranks = std::max(ranks, s.rank + 1);
  const int rows = std::min(ranks, max_rows);
  const double label = 70, width = 1100, plot = width - label - 20, pitch = 26, top = 24;
  const double height = top + rows * pitch + 10;
  const double px_per_s = t.makespan > 0 ? plot / t.makespan : 0;

  std::string svg = fmt::format(
      R"(<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" viewBox="0 0 {:.0f} {:.0f}">)"
      "\n",
      width, height, width, height);
  // Time axis with six ticks.
  for (int k = 0; k <= 5; ++k) {
    const double x = label + plot * k / 5;
    svg += fmt::format(R"(<line class="axis" x1="{:.1f}" y1="{:.0f}" x2="{:.1f}" y2="{:.0f}"/>)", x, top - 6, x,
                       height - 6);
    svg += fmt::format(R"(<text class="tick" x="{:.1f}" y="{:.0f}" text-anchor="{}">{}</text>)", x, top - 10,
                       k == 0 ? "start" : k == 5 ? "end" : "middle", escape(format_seconds(t.makespan * k / 5)));
    svg += "\n";
  }
  // Rows: per GPU, a compute band (compute, stall, bubble) and a thinner communication band.
  std::map<std::pair<int, std::string>, std::vector<const Span*>> bands;
  for (const auto& s : t.spans)
    if (s.rank < rows && s.end > s.start) bands[{s.rank, span_class(s)}].push_back(&s);
  for (int r = 0; r < rows; ++r) {
    const double y = top + r * pitch;
    svg += fmt::format(R"(<text class="row" x="4" y="{:.0f}">GPU {}</text>)", y + 13, r);
    svg += fmt::format(R"(<rect class="idle" x="{:.1f}" y="{:.0f}" width="{:.1f}" height="14"/>)", label, y, plot);
    svg += "\n";
    for (const char* cls : {"compute", "bubble", "stall", "comm"}) {
      auto it = bands.find({r, cls});
      if (it == bands.end()) continue;
      const bool comm = std::string(cls) == "comm";
      for (const Rect& q : coalesce(it->second, px_per_s, label)) {
        const std::string tip = q.count == 1 ? fmt::format("{} ({})", q.name, format_seconds(q.seconds))
                                             : fmt::format("{} ops, {} busy", q.count, format_seconds(q.seconds));
        svg += fmt::format(
            R"(<rect class="span {}" x="{:.2f}" y="{:.0f}" width="{:.2f}" height="{}"><title>GPU {}: {}</title></rect>)",
            cls, q.x0, comm ? y + 16 : y, std::max(0.5, q.x1 - q.x0), comm ? 6 : 14, r, escape(tip));
        svg += "\n";
      }
    }
  }
  svg += "</svg>\n";
  if (rows < ranks) svg += fmt::format(R"(<p class="note">Showing GPUs 0-{} of {}.</p>)", rows - 1, ranks);
  return svg;
}

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
  if (a.stalls.empty()) return h + "<p>No stalls: every communication was hidden behind compute.</p>\n";
  h += "<table><tr><th>op held up</th><th>layer</th><th class=\"l\">waited for</th><th>total</th><th>times</th>"
       "<th>GPUs</th></tr>\n";
  for (size_t i = 0; i < a.stalls.size() && i < 20; ++i) {
    const StallSite& s = a.stalls[i];
    h += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                     escape(s.op), s.layer < 0 ? "-" : std::to_string(s.layer), escape(s.waited_for),
                     format_seconds(s.total), s.count, s.gpus);
  }
  return h + "</table>\n";
}

std::string link_section(const Attribution& a) {
  std::string h = "<h2>Bottleneck links</h2>\n";
  std::string rows;
  for (size_t i = 0; i < a.links.size() && i < 12; ++i) {
    const LinkLoad& l = a.links[i];
    if (l.bytes <= 0) break;
    rows += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>\n",
                        escape(l.label), format_bytes(l.bytes), pct(l.utilisation, 1), pct(l.busy_fraction, 1),
                        l.saturated ? "yes" : "no", escape(describe_link(l)));
  }
  if (rows.empty()) return h + "<p>No link traffic recorded.</p>\n";
  return h + "<table><tr><th>link</th><th>bytes</th><th>utilisation while busy</th><th>busy of step</th>"
             "<th>saturated</th><th class=\"l\"></th></tr>\n" + rows + "</table>\n";
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

std::string timeline_figure(const RunResult& run, const Attribution&, const HtmlOptions& options) {
  return "<p class=\"legend\"><span style=\"background:#4c78a8\"></span>compute"
         "<span style=\"background:#f58518\"></span>communication (comm streams)"
         "<span style=\"background:#e45756\"></span>stalled on communication"
         "<span style=\"background:#9d9d9d\"></span>pipeline bubble"
         "<span style=\"background:#eeeeee\"></span>idle</p>\n" +
         timeline_svg(run.timeline, options.max_rows);
}

std::string html_report(const RunResult& run, const Attribution& a, const HtmlOptions& options) {
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  h += fmt::format("<title>tpsim: {}</title>\n<style>{}</style></head><body>\n", escape(run.scenario.name), kStyle);
  h += fmt::format("<h1>tpsim: {}</h1>\n", escape(run.scenario.name));
  h += "<h2>Summary</h2>\n<pre>" + escape(summary_text(run)) + "</pre>\n";
  h += "<h2>Timeline</h2>\n" + timeline_figure(run, a, options);
  h += "<h2>Per GPU</h2>\n" + gpu_table(a);
  h += memory_section(options.memory);
  h += stall_section(a);
  h += link_section(a);
  // Records how many span rectangles the browser actually laid out (a check for headless tests).
  h += "<script>(function(){var n=0;document.querySelectorAll('#timeline rect.span').forEach(function(r){"
       "var b=r.getBBox();if(b.width>0&&b.height>0)n++;});"
       "document.getElementById('timeline').setAttribute('data-drawn',String(n));})();</script>\n";
  h += "</body></html>\n";
  return h;
}

void write_html(const std::string& path, const RunResult& run, const Attribution& a, const HtmlOptions& options) {
  write_file_atomically("--html", path, html_report(run, a, options));
}

}  // namespace tpsim
