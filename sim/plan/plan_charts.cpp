// The plan page's charts (plan_charts.hpp). Each mark carries its layout id (data-layout) and a
// <title> tooltip.
#include "plan/plan_charts.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>

#include "report/svg_axis.hpp"
#include "tpsim/report.hpp"

namespace tpsim::plan_page {

namespace {

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

}  // namespace

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

}  // namespace tpsim::plan_page
