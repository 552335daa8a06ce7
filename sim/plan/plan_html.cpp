// The sweep's page (plan_html.hpp): inline CSS and SVG in one string, as `tpsim run --html` writes,
// so it opens anywhere offline. No clock or randomness goes in and every number is printed at a
// fixed precision, so the same results give the same bytes. Each chart's marks carry the layout id
// (data-layout) and a <title> tooltip; the closing script counts the marks the browser laid out,
// for the headless tests.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "report/atomic_file.hpp"
#include "report/html_escape.hpp"
#include "tpsim/attribution.hpp"
#include "tpsim/html.hpp"
#include "tpsim/plan_html.hpp"

namespace tpsim {

namespace {

constexpr double kWidth = 1100;   // px, as the run report's timeline
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

const char* kPlanStyle = R"(
.grid{stroke:#eee;stroke-width:1}.p-title{font-size:13px;font-weight:bold;fill:#222}
.p-axis-title{font-size:12px;fill:#333}.p-label{font-size:11px;fill:#222}.p-count{font-size:10px;fill:#fff}
.p-bar{fill:#9fb7d3}.p-best{fill:#2a7d2a}.p-meg{fill:#e45756}.p-lead{stroke:#555;stroke-width:1}
.p-pt{stroke:#fff;stroke-width:0.6;fill-opacity:0.85}.p-ring{fill:none;stroke:#222;stroke-width:1.6}
.p-front{fill:none;stroke:#222;stroke-width:1.5}
.warn{background:#fff4d6;border:1px solid #e0b84c;padding:6px 10px}
.facts th{text-align:left;font-weight:normal;color:#666}.facts td{text-align:left}td:first-child{white-space:nowrap}
table.p-nowrap td{white-space:nowrap}
)";

const char* kNodePalette[] = {"#4c78a8", "#f58518", "#54a24b", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d", "#ff9da6"};

// The rejection groups in the order the stacked bars draw them, "ran" first.
struct Group {
  const char* name;
  const char* colour;
};
const Group kGroups[] = {{"ran", "#54a24b"},
                         {"out of memory", "#e45756"},
                         {"does not divide", "#9d9d9d"},
                         {"unsupported combination", "#b279a2"},
                         {"past the deadline", "#f58518"},
                         {"over the latency bound", "#eeca3b"},
                         {"simulation failed", "#222222"},
                         {"invalid (other)", "#bab0ac"}};

std::string escape(const std::string& s) { return html_escape(s); }

// ---------------------------------------------------------------------------------------------
// Axes: round steps (1, 2 or 5 x 10^k), labels with k / M / G suffixes, a unit for time.

double nice_step(double span, int intervals) {
  if (!(span > 0)) return 1;
  const double raw = span / intervals;
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
}

int decimals(double step) { return std::clamp(int(std::ceil(-std::log10(step) - 1e-9)), 0, 9); }

std::string tick_text(double v, double step) {
  const double div = step >= 1e9 ? 1e9 : step >= 1e6 ? 1e6 : step >= 1e3 ? 1e3 : 1;
  const char* suffix = div == 1e9 ? "G" : div == 1e6 ? "M" : div == 1e3 ? "k" : "";
  const double x = v / div;
  if (std::fabs(x) < step / div * 1e-9) return "0";   // not "0k", nor "-0"
  return fmt::format("{:.{}f}{}", x, decimals(step / div), suffix);
}

struct Unit {
  double scale;   // seconds per unit
  const char* name;
};
Unit time_unit(double max_s) {
  if (max_s >= 2 * 86400) return {86400, "days"};
  if (max_s >= 2 * 3600) return {3600, "hours"};
  if (max_s >= 120) return {60, "minutes"};
  if (max_s >= 1) return {1, "s"};
  if (max_s >= 1e-3) return {1e-3, "ms"};
  return {1e-6, "us"};
}

// A linear axis in display units (data / scale), its ends on whole steps.
struct Axis {
  double lo = 0, hi = 1, step = 1, scale = 1;
  std::string title;
  double frac(double data) const { return (data / scale - lo) / (hi - lo); }
};

Axis make_axis(double min_data, double max_data, double scale, bool from_zero, std::string title, int intervals = 5) {
  Axis a;
  a.scale = scale;
  a.title = std::move(title);
  double lo = min_data / scale, hi = max_data / scale;
  if (from_zero) lo = std::min(0.0, lo);
  if (!(hi > lo)) {   // one value: a window around it
    const double pad = lo != 0 ? std::fabs(lo) * 0.1 : 1;
    hi = lo + pad;
    if (!from_zero) lo -= pad;
  }
  a.step = nice_step(hi - lo, intervals);
  a.lo = std::floor(lo / a.step + 1e-9) * a.step;
  a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
  if (a.hi <= a.lo) a.hi = a.lo + a.step;
  return a;
}

struct Frame {
  double left = 80, top = 34, width = kWidth - 80 - 30, height = 260;
  double bottom() const { return top + height; }
  double right() const { return left + width; }
};

std::string svg_open(const char* id, double height, const std::string& title) {
  return fmt::format(R"(<svg id="{}" xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" )"
                     R"(viewBox="0 0 {:.0f} {:.0f}" role="img"><title>{}</title>)"
                     "\n"
                     R"(<text class="p-title" x="10" y="18">{}</text>)"
                     "\n",
                     id, kWidth, height, kWidth, height, escape(title), escape(title));
}

std::string y_axis(const Frame& f, const Axis& a) {
  std::string svg;
  for (int k = 0; a.lo + k * a.step <= a.hi + a.step * 1e-9; ++k) {
    const double v = a.lo + k * a.step;
    const double y = f.bottom() - f.height * (v - a.lo) / (a.hi - a.lo);
    svg += fmt::format(R"(<line class="{}" x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}"/>)", k ? "grid" : "axis",
                       f.left, y, f.right(), y);
    svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="end">{}</text>)"
                       "\n",
                       f.left - 6, y + 3, tick_text(v, a.step));
  }
  svg += fmt::format(R"svg(<text class="p-axis-title" transform="translate({:.2f},{:.2f}) rotate(-90)" )svg"
                     R"(text-anchor="middle">{}</text>)"
                     "\n",
                     f.left - 58, f.top + f.height / 2, escape(a.title));
  return svg;
}

std::string x_axis(const Frame& f, const Axis& a) {
  std::string svg;
  for (int k = 0; a.lo + k * a.step <= a.hi + a.step * 1e-9; ++k) {
    const double v = a.lo + k * a.step;
    const double x = f.left + f.width * (v - a.lo) / (a.hi - a.lo);
    svg += fmt::format(R"(<line class="{}" x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}"/>)", k ? "grid" : "axis", x,
                       f.top, x, f.bottom());
    svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="middle">{}</text>)"
                       "\n",
                       x, f.bottom() + 14, tick_text(v, a.step));
  }
  svg += fmt::format(R"(<text class="p-axis-title" x="{:.2f}" y="{:.2f}" text-anchor="middle">{}</text>)"
                     "\n",
                     f.left + f.width / 2, f.bottom() + 32, escape(a.title));
  return svg;
}

// ---------------------------------------------------------------------------------------------
// What the results hold, and the words for it.

struct Facts {
  bool inference = false, has_time = false, has_cost = false;
  double price = 0;                         // per GPU-hour, read back from cost / GPU-hours
  std::vector<const LayoutResult*> ran;     // ranked order
  std::optional<LayoutResult> megatron;
  int megatron_rank = 0;                    // 1-based among `ran`; 0 = none
};

Facts facts_of(const PlanPage& page) {
  Facts f;
  f.inference = !page.ranked.empty() && page.ranked.front().layout.batch > 0;
  for (const LayoutResult& r : page.ranked) {
    f.has_time = f.has_time || r.time_to_train_s > 0;
    if (r.cost > 0 && r.gpu_hours > 0 && !f.has_cost) f.price = r.cost / r.gpu_hours;
    f.has_cost = f.has_cost || r.cost > 0;
    if (r.verdict == Verdict::ok) f.ran.push_back(&r);
  }
  if (!f.inference && page.megatron_tp > 0) f.megatron = megatron_choice(page.ranked, page.megatron_tp);
  for (std::size_t i = 0; f.megatron && i < f.ran.size(); ++i)
    if (f.ran[i]->layout == f.megatron->layout) f.megatron_rank = int(i) + 1;
  return f;
}

// GPU-hours and cost are counted to train the target, per step, or per million output tokens.
std::string per_what(const Facts& f) {
  return f.inference ? "per million output tokens" : f.has_time ? "to train" : "per step";
}

std::string cost_title(const Facts& f) {
  if (f.has_cost) return fmt::format("cost {} (currency units, at {:.4g} per GPU-hour)", per_what(f), f.price);
  return "GPU-hours " + per_what(f) + (f.inference ? "" : " (no price in the topology)");
}
double cost_of(const Facts& f, const LayoutResult& r) { return f.has_cost ? r.cost : r.gpu_hours; }

// The time the front trades against cost: time to train the target, else the step or request.
double time_of(const Facts& f, const LayoutResult& r) { return f.has_time ? r.time_to_train_s : r.step_time_s; }
std::string time_title(const Facts& f, const Unit& u) {
  const std::string what = f.inference ? "request latency (prefill + decode)" : f.has_time ? "time to train" : "step time";
  return fmt::format("{} ({})", what, u.name);
}

double metric_of(const Facts& f, Objective o, const LayoutResult& r) {
  switch (o) {
    case Objective::throughput: return r.tokens_per_s;
    case Objective::time_to_train: return r.time_to_train_s > 0 ? r.time_to_train_s : r.step_time_s;
    case Objective::cost: return cost_of(f, r);
    case Objective::latency: return r.step_time_s;
  }
  return 0;
}

// GPU-hours and costs: whole numbers once they are large, never an exponent a reader must decode.
std::string amount_text(double v) { return std::fabs(v) >= 1000 ? fmt::format("{:.0f}", v) : fmt::format("{:.4g}", v); }

std::string duration_text(double s) {
  if (s >= 86400) return fmt::format("{:.1f} days", s / 86400);
  if (s >= 3600) return fmt::format("{:.1f} h", s / 3600);
  return format_seconds(s);
}

// The numbers a tooltip gives for one layout.
std::string layout_numbers(const Facts& f, const LayoutResult& r) {
  std::string out = fmt::format("{} GPUs; {} {}; {:.0f} tokens/s", r.layout.gpus(), f.inference ? "request" : "step",
                                format_seconds(r.step_time_s), r.tokens_per_s);
  if (f.has_time) out += "; trains in " + duration_text(r.time_to_train_s);
  out += f.has_cost ? fmt::format("; cost {} {}", amount_text(r.cost), per_what(f))
                    : fmt::format("; {} GPU-hours {}", amount_text(r.gpu_hours), per_what(f));
  if (r.memory_bytes > 0) out += fmt::format("; {:.1f} GiB per GPU", r.memory_bytes / kGiB);
  return out;
}

std::string node_colour(const std::vector<int>& nodes, int n) {
  const auto at = std::find(nodes.begin(), nodes.end(), n) - nodes.begin();
  return kNodePalette[at % std::size(kNodePalette)];
}

std::vector<int> node_counts(const std::vector<LayoutResult>& ranked) {
  std::vector<int> out;
  for (const LayoutResult& r : ranked) out.push_back(r.layout.nodes);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---------------------------------------------------------------------------------------------
// 1. The ranking metric per layout that ran, best first.

std::string metric_chart(const PlanPage& page, const Facts& f) {
  const Objective o = page.objective;
  const std::size_t n = f.ran.size();
  std::string title;
  double scale = 1;
  double most = 0;
  for (const LayoutResult* r : f.ran) most = std::max(most, metric_of(f, o, *r));
  if (o == Objective::throughput) {
    title = f.inference ? "output tokens/s (all replicas)" : "training tokens/s";
  } else if (o == Objective::cost) {
    title = cost_title(f);
  } else {
    const Unit u = time_unit(most);
    scale = u.scale;
    title = o == Objective::latency ? fmt::format("request latency ({})", u.name)
            : f.has_time            ? fmt::format("time to train ({})", u.name)
                                    : fmt::format("step time ({})", u.name);
  }
  Frame fr;
  fr.top = 62;   // room above the plot for the names of the best layout and Megatron's
  const Axis y = make_axis(0, most, scale, true, title, 6);
  std::string svg = svg_open("plan-metric", fr.bottom() + 46,
                             fmt::format("{} per layout that ran, best first (ranked by {})", title, to_string(o)));
  svg += y_axis(fr, y);
  const double band = fr.width / double(std::max<std::size_t>(n, 1));
  const double bar = std::min(40.0, std::max(1.0, band * 0.8));
  // Ranks along the bottom: 1, then round steps.
  const double rank_step = std::max(1.0, nice_step(double(n), 10));
  for (double k = 0; k <= double(n); k += rank_step) {
    const int rank = std::max(1, int(k));
    const double x = fr.left + (rank - 0.5) * band;
    svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="middle">{}</text>)", x, fr.bottom() + 14,
                       rank);
  }
  svg += fmt::format(R"(<text class="p-axis-title" x="{:.2f}" y="{:.2f}" text-anchor="middle">)"
                     R"(rank among the {} layouts that ran (1 = best by {}))"
                     "</text>\n",
                     fr.left + fr.width / 2, fr.bottom() + 32, n, to_string(o));
  auto top_of = [&](double v) { return fr.bottom() - fr.height * y.frac(v); };
  std::string labels;
  for (std::size_t i = 0; i < n; ++i) {
    const LayoutResult& r = *f.ran[i];
    const bool best = i == 0, megatron = f.megatron_rank == int(i) + 1;
    const double v = metric_of(f, o, r);
    const double x = fr.left + double(i) * band + (band - bar) / 2;
    const double top = std::min(top_of(v), fr.bottom() - 1);   // at least a pixel tall
    const std::string id = layout_id(r.layout);
    const std::string tip = fmt::format("#{} {}{}: {}", i + 1, id, megatron ? " (Megatron's usual choice)" : "",
                                        layout_numbers(f, r));
    svg += fmt::format(R"(<rect class="{}" data-layout="{}" x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}">)"
                       "<title>{}</title></rect>\n",
                       best ? "p-best" : megatron ? "p-meg" : "p-bar", escape(id), x, top, bar, fr.bottom() - top,
                       escape(tip));
    // The best and Megatron's choice are named above the plot, with a leader line to their bar.
    if (best || megatron) {
      const double cx = x + bar / 2;
      const double ly = fr.top - (best ? 24 : 9);
      const bool right_half = cx > fr.left + fr.width * 0.6;
      const std::string text = best && megatron ? fmt::format("best, and Megatron's usual choice: {}", id)
                               : best           ? fmt::format("best: {}", id)
                                                : fmt::format("Megatron's usual choice (#{}): {}", i + 1, id);
      labels += fmt::format(R"(<line class="p-lead" x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}"/>)", cx, ly + 3, cx,
                            top - 1);
      labels += fmt::format(R"(<text class="p-label" x="{:.2f}" y="{:.2f}" text-anchor="{}">{}</text>)"
                            "\n",
                            right_half ? cx - 4 : cx + 4, ly, right_half ? "end" : "start", escape(text));
    }
  }
  svg += labels + "</svg>\n";
  std::string legend = "<p class=\"legend\"><span style=\"background:#2a7d2a\"></span>best";
  if (f.megatron_rank > 0) legend += "<span style=\"background:#e45756\"></span>Megatron's usual choice";
  legend += "<span style=\"background:#9fb7d3\"></span>other layouts (hover a bar for its id and numbers)</p>\n";
  return legend + svg;
}

// ---------------------------------------------------------------------------------------------
// 2. Time against cost, with the Pareto front.

std::string pareto_chart(const Facts& f) {
  std::vector<TimeCost> points;
  double tmin = 0, tmax = 0, cmin = 0, cmax = 0;
  for (std::size_t i = 0; i < f.ran.size(); ++i) {
    const TimeCost p{time_of(f, *f.ran[i]), cost_of(f, *f.ran[i])};
    tmin = i ? std::min(tmin, p.time) : p.time;
    tmax = i ? std::max(tmax, p.time) : p.time;
    cmin = i ? std::min(cmin, p.cost) : p.cost;
    cmax = i ? std::max(cmax, p.cost) : p.cost;
    points.push_back(p);
  }
  const std::vector<std::size_t> front = pareto_front(points);
  const Unit u = time_unit(tmax);
  Frame fr;
  fr.height = 340;
  const Axis x = make_axis(tmin, tmax, u.scale, false, time_title(f, u), 8);
  const Axis y = make_axis(cmin, cmax, 1, false, cost_title(f), 6);
  const std::vector<int> nodes = [&] {
    std::vector<LayoutResult> ran;
    for (const LayoutResult* r : f.ran) ran.push_back(*r);
    return node_counts(ran);
  }();
  std::string svg = svg_open("plan-pareto", fr.bottom() + 46,
                             fmt::format("{} against {}: the Pareto front (no layout is both faster and cheaper)",
                                         f.has_time ? "time to train" : f.inference ? "request latency" : "step time",
                                         f.has_cost ? "cost" : "GPU-hours"));
  svg += y_axis(fr, y) + x_axis(fr, x);
  auto px = [&](double t) { return fr.left + fr.width * x.frac(t); };
  auto py = [&](double c) { return fr.bottom() - fr.height * y.frac(c); };
  for (std::size_t i = 0; i < f.ran.size(); ++i) {
    const LayoutResult& r = *f.ran[i];
    const std::string id = layout_id(r.layout);
    svg += fmt::format(R"(<circle class="p-pt" data-layout="{}" cx="{:.2f}" cy="{:.2f}" r="3.5" fill="{}">)"
                       "<title>#{} {}: {}</title></circle>\n",
                       escape(id), px(points[i].time), py(points[i].cost), node_colour(nodes, r.layout.nodes), i + 1,
                       escape(id), escape(layout_numbers(f, r)));
  }
  std::string line = "<polyline class=\"p-front\" points=\"";
  for (std::size_t k = 0; k < front.size(); ++k)
    line += fmt::format("{}{:.2f},{:.2f}", k ? " " : "", px(points[front[k]].time), py(points[front[k]].cost));
  svg += line + "\"/>\n";
  for (std::size_t i : front)
    svg += fmt::format(R"(<circle class="p-ring" cx="{:.2f}" cy="{:.2f}" r="6"/>)", px(points[i].time), py(points[i].cost));
  svg += "\n</svg>\n";

  std::string legend = "<p class=\"legend\">";
  for (int n : nodes)
    legend += fmt::format("<span style=\"background:{}\"></span>{} node{}", node_colour(nodes, n), n, n == 1 ? "" : "s");
  legend += " &nbsp; ringed and joined: the Pareto front</p>\n";

  std::string table = fmt::format("<table class=\"p-nowrap\"><tr><th>#</th><th>layout on the front</th><th>GPUs</th><th>{}</th><th>{}</th>"
                                  "<th>tokens/s</th></tr>\n",
                                  escape(time_title(f, u)), escape(cost_title(f)));
  for (std::size_t i : front) {
    const LayoutResult& r = *f.ran[i];
    table += fmt::format("<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{:.4g}</td><td>{}</td><td>{:.0f}</td>"
                         "</tr>\n",
                         i + 1, escape(layout_id(r.layout)), r.layout.gpus(), points[i].time / u.scale,
                         amount_text(points[i].cost), r.tokens_per_s);
  }
  return legend + svg + table + "</table>\n";
}

// ---------------------------------------------------------------------------------------------
// 3. Why layouts were rejected: per node count, one bar stacked by group.

std::string rejection_chart(const PlanPage& page) {
  const std::vector<int> nodes = node_counts(page.ranked);
  std::map<int, std::map<std::string, int>> counts;   // nodes -> group -> layouts
  std::map<std::string, std::pair<int, std::string>> totals;   // group -> (layouts, an example)
  std::map<std::string, int> overflowing;   // out of memory: the component that overflows -> layouts
  int gpus_per_node = 0;
  for (const LayoutResult& r : page.ranked) {
    const std::string cat = r.verdict == Verdict::ok ? "ran" : rejection_category(r);
    ++counts[r.layout.nodes][cat];
    auto& t = totals[cat];
    if (t.first++ == 0 && r.verdict != Verdict::ok) t.second = layout_id(r.layout) + ": " + r.reason;
    // "OOM: activations overflow HBM ...": the table says which part of memory ran out.
    const auto a = r.reason.find("OOM: "), b = r.reason.find(" overflow");
    if (r.verdict == Verdict::oom && a != std::string::npos && b != std::string::npos && b > a + 5)
      ++overflowing[r.reason.substr(a + 5, b - a - 5)];
    if (r.layout.nodes > 0) gpus_per_node = std::max(gpus_per_node, r.layout.gpus() / r.layout.nodes);
  }
  std::vector<Group> groups;
  for (const Group& g : kGroups)
    if (totals.count(g.name)) groups.push_back(g);
  for (const auto& [name, t] : totals)   // a group this file does not know still gets drawn
    if (std::none_of(groups.begin(), groups.end(), [&](const Group& g) { return name == g.name; }))
      groups.push_back({name.c_str(), "#bab0ac"});

  int widest = 1;
  for (const auto& [n, by] : counts) {
    int sum = 0;
    for (const auto& [cat, c] : by) sum += c;
    widest = std::max(widest, sum);
  }
  Frame fr;
  fr.left = 130;
  fr.width = kWidth - fr.left - 30;
  const double pitch = 28;
  fr.height = pitch * double(nodes.size());
  const Axis x = make_axis(0, widest, 1, true, "layouts (each bar is every layout of the sweep at that node count)", 8);
  std::string svg = svg_open("plan-rejections", fr.bottom() + 46, "Layouts that ran, and why the others were rejected");
  svg += x_axis(fr, x);
  for (std::size_t row = 0; row < nodes.size(); ++row) {
    const int n = nodes[row];
    const double y = fr.top + pitch * double(row) + 4;
    svg += fmt::format(R"(<text class="p-label" x="{:.2f}" y="{:.2f}" text-anchor="end">{} node{}{}</text>)", fr.left - 8,
                       y + pitch / 2, n, n == 1 ? "" : "s",
                       gpus_per_node > 0 ? fmt::format(" ({} GPUs)", n * gpus_per_node) : "");
    double at = 0;
    for (const Group& g : groups) {
      const auto it = counts[n].find(g.name);
      if (it == counts[n].end()) continue;
      const double x0 = fr.left + fr.width * x.frac(at), x1 = fr.left + fr.width * x.frac(at + it->second);
      svg += fmt::format(R"(<rect class="p-seg" data-group="{}" x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}" )"
                         R"(fill="{}"><title>{} node{}: {} layout{} {}</title></rect>)",
                         escape(g.name), x0, y, x1 - x0, pitch - 8, g.colour, n, n == 1 ? "" : "s", it->second,
                         it->second == 1 ? "" : "s", escape(g.name));
      if (x1 - x0 >= 26)
        svg += fmt::format(R"(<text class="p-count" x="{:.2f}" y="{:.2f}" text-anchor="middle">{}</text>)", (x0 + x1) / 2,
                           y + pitch / 2, it->second);
      svg += "\n";
      at += it->second;
    }
  }
  svg += "</svg>\n";
  std::string legend = "<p class=\"legend\">";
  std::string table = "<table><tr><th>group</th><th>layouts</th><th class=\"l\">for example</th></tr>\n";
  for (const Group& g : groups) {
    const auto& t = totals[g.name];
    legend += fmt::format("<span style=\"background:{}\"></span>{} ({})", g.colour, escape(g.name), t.first);
    if (std::string(g.name) == "ran") continue;
    std::string example = t.second;
    if (std::string(g.name) == "out of memory" && !overflowing.empty()) {
      std::string parts;
      for (const auto& [part, layouts] : overflowing) parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", part, layouts);
      example = "overflowing: " + parts + ". " + example;
    }
    table += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>\n", escape(g.name), t.first,
                         escape(example));
  }
  return legend + "</p>\n" + svg + table + "</table>\n";
}

// ---------------------------------------------------------------------------------------------
// 4. The best layout's step, as `tpsim run` simulates it.

std::string timeline_section(const PlanPage& page, const Facts& f) {
  std::string h = "<div id=\"plan-timeline\">\n";
  if (!page.best_run || f.ran.empty()) {
    const std::string why = !page.best_run_note.empty() ? page.best_run_note
                            : f.ran.empty()              ? "no layout ran, so there is no best layout to show"
                                                         : "the best layout was not simulated again for this page";
    return h + "<p class=\"note\">No timeline: " + escape(why) + ".</p>\n</div>\n";
  }
  const RunResult& run = *page.best_run;
  const LayoutResult& best = *f.ran.front();
  std::string what = fmt::format("The best layout, {}, simulated again as <code>tpsim run</code> simulates a scenario: "
                                 "SimGrid at flow fidelity",
                                 escape(layout_id(best.layout)));
  if (run.step) {
    const StepMetrics& m = *run.step;
    what += m.tp_collectives == "folded" ? ", TP collectives folded into the compute ops at their uncontended time"
                                         : ", TP collectives simulated as ops";
    if (m.training) {
      what += m.dp_replicas == "one" ? ", one DP replica simulated (its DP collectives timed alone on the full topology)"
                                     : ", every DP replica simulated";
      what += fmt::format(". The timeline is one optimizer step{}: {} of its {} micro-batches per replica. This run's "
                          "step: {}; the sweep's estimate: {} (the sweep folds TP collectives and extends a slice of "
                          "the micro-batches to the whole step, see sim/plan/evaluate.cpp).",
                          m.partial ? " (PARTIAL: only the simulated part)" : "", m.micro_batches,
                          m.micro_batches_per_step, escape(format_seconds(m.step_time_s)),
                          escape(format_seconds(best.step_time_s)));
    } else {
      what += fmt::format(". The timeline is the request's prefill and one decode step at the mean context; the "
                          "request (the prefill and {} decode steps) takes {}; the sweep's estimate: {} (the sweep "
                          "folds TP collectives into the compute ops).",
                          run.scenario.workload.generate, escape(format_seconds(m.step_time_s)),
                          escape(format_seconds(best.step_time_s)));
    }
  } else {
    what += ".";
  }
  h += "<p>" + what + "</p>\n";
  const Attribution a = attribute(run.timeline, {.gpus_per_node = run.scenario.topology.gpus_per_node});
  return h + timeline_figure(run, a, HtmlOptions{}) + "</div>\n";
}

// ---------------------------------------------------------------------------------------------
// The header and the ranked table.

std::string top_table(const PlanPage& page, const Facts& f) {
  std::string h = fmt::format("<table class=\"p-nowrap\"><tr><th>rank</th><th class=\"l\">layout</th><th>GPUs</th><th>{}</th>"
                              "<th>tokens/s</th><th>{}</th><th>mem GiB</th><th>TP comm</th><th>bubble</th>",
                              f.inference ? "request" : "step time", f.inference ? "TTFT" : "TFLOP/s per GPU");
  if (f.has_time) h += "<th>time to train</th>";
  h += fmt::format("<th>{}</th><th class=\"l\"></th></tr>\n", f.has_cost ? "cost" : "GPU-hours");
  auto pct = [](double part, double whole) { return whole > 0 ? fmt::format("{:.1f}%", 100 * part / whole) : "-"; };
  auto row = [&](std::size_t i) {
    const LayoutResult& r = *f.ran[i];
    h += fmt::format("<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.0f}</td><td>{}</td>"
                     "<td>{:.1f}</td><td>{}</td><td>{}</td>",
                     i + 1, escape(layout_id(r.layout)), r.layout.gpus(), escape(format_seconds(r.step_time_s)),
                     r.tokens_per_s,
                     f.inference ? escape(format_seconds(r.ttft_s)) : fmt::format("{:.0f}", r.tflops_per_gpu),
                     r.memory_bytes / kGiB, pct(r.tp_comm_s, r.step_time_s), pct(r.bubble_s, r.step_time_s));
    if (f.has_time) h += "<td>" + duration_text(r.time_to_train_s) + "</td>";
    h += fmt::format("<td>{}</td><td class=\"l\">{}</td></tr>\n", amount_text(cost_of(f, r)),
                     int(i) + 1 == f.megatron_rank ? "&larr; Megatron's usual choice" : "");
  };
  const std::size_t shown = std::min<std::size_t>(f.ran.size(), std::size_t(std::max(page.top, 1)));
  for (std::size_t i = 0; i < shown; ++i) row(i);
  if (f.megatron_rank > int(shown)) {
    h += "<tr><td>...</td></tr>\n";
    row(std::size_t(f.megatron_rank - 1));
  }
  return h + "</table>\n";
}

std::string header(const PlanPage& page, const Facts& f) {
  std::string h = "<table class=\"facts\">\n";
  auto fact = [&h](const char* label, const std::string& html) {
    h += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", label, html);
  };
  fact("sweep", escape(page.context));
  fact("layouts", fmt::format("{} on this page: {} ran, {} rejected", page.ranked.size(), f.ran.size(),
                              page.ranked.size() - f.ran.size()));
  fact("ranked by", to_string(page.objective));
  if (!f.ran.empty())
    fact("best", escape(layout_id(f.ran.front()->layout) + " (" + layout_numbers(f, *f.ran.front()) + ")"));
  if (!f.inference && page.megatron_tp > 0)
    fact("Megatron's usual choice",
         f.megatron ? escape(fmt::format("{}: rank {} of {} (TP{}, SP, selective recompute, micro-batch 1, the smallest "
                                         "PP that fits, on the most nodes)",
                                         layout_id(f.megatron->layout), f.megatron_rank, f.ran.size(), page.megatron_tp))
                    : escape(fmt::format("does not run at any PP here (TP{})", page.megatron_tp)));
  fact("data", page.csv.empty() ? "no result file written (add <code>--csv PATH</code> for every row as CSV)"
                                : "every row is in <code>" + escape(page.csv) + "</code> (the CSV is the data; this page "
                                  "draws it)");
  return h + "</table>\n";
}

}  // namespace

std::string plan_html(const PlanPage& page) {
  const Facts f = facts_of(page);
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  h += fmt::format("<title>tpsim plan: {}</title>\n<style>{}{}</style>\n", escape(page.context), html_style(), kPlanStyle);
  // Counts script errors for the headless tests (data-errors on <body>).
  h += "<script>window.tpsimErrors=0;window.addEventListener('error',function(){window.tpsimErrors++;});</script>\n";
  h += "</head><body>\n";
  h += "<h1>tpsim plan: " + escape(page.context.substr(0, page.context.find(';'))) + "</h1>\n";
  if (!page.part.empty()) h += "<p class=\"warn\">" + escape(page.part) + "</p>\n";
  h += header(page, f);
  if (!f.ran.empty()) {
    h += "<h2>Ranking</h2>\n" + metric_chart(page, f);
    h += "<h2>Time and cost</h2>\n" + pareto_chart(f);
  } else {
    h += "<p class=\"note\">No layout ran: there is no ranking and no Pareto front. See why below.</p>\n";
  }
  h += "<h2>Rejections</h2>\n" + rejection_chart(page);
  h += "<h2>The best layout's step</h2>\n" + timeline_section(page, f);
  if (!f.ran.empty()) h += "<h2>Top layouts</h2>\n" + top_table(page, f);
  // Records how many marks the browser laid out with a size, per chart (a check for headless tests).
  h += "<script>(function(){function drawn(s){var n=0;document.querySelectorAll(s).forEach(function(e){"
       "var b=e.getBoundingClientRect();if(b.width>0&&b.height>0)n++;});return String(n);}"
       "var b=document.body;b.setAttribute('data-metric-drawn',drawn('#plan-metric [data-layout]'));"
       "b.setAttribute('data-pareto-drawn',drawn('#plan-pareto [data-layout]'));"
       "b.setAttribute('data-rejection-drawn',drawn('#plan-rejections rect.p-seg'));"
       "b.setAttribute('data-timeline-drawn',drawn('#plan-timeline rect.span'));"
       "b.setAttribute('data-errors',String(window.tpsimErrors));})();</script>\n";
  return h + "</body></html>\n";
}

void write_plan_html(const std::string& path, const PlanPage& page) {
  write_file_atomically("--html", path, plan_html(page));
}

}  // namespace tpsim
