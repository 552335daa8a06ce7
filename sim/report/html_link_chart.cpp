// Link utilisation over the step, drawn under the timeline on its time axis.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>

#include "report/html_escape.hpp"
#include "report/html_frame.hpp"
#include "report/svg_axis.hpp"

namespace tpsim {

namespace {

// Link utilisation over the step, under the timeline on its time axis: the busiest link groups
// (Attribution::link_groups, in the order of the bottleneck table), a strip each, filled 0-100%.
constexpr size_t kLinkChartGroups = 4;
constexpr double kLinkStrip = 36, kLinkPitch = 60;
const char* kLinkColour[kLinkChartGroups] = {"#4c78a8", "#f58518", "#54a24b", "#b279a2"};

// Piecewise-constant mean utilisation of `links` over `edges` (sorted): segment k is
// [edges[k], edges[k+1]), its value the time-weighted mean over the links and the segment.
std::vector<double> mean_utilisation(const std::vector<const LinkUse*>& links, const std::vector<double>& edges) {
  std::vector<double> v(edges.size() > 1 ? edges.size() - 1 : 0, 0.0);
  for (const LinkUse* l : links) {
    size_t k = 0;
    for (const LinkInterval& i : l->intervals) {
      while (k < v.size() && edges[k + 1] <= i.start) ++k;
      for (size_t j = k; j < v.size() && edges[j] < i.end; ++j)
        v[j] += i.utilisation * std::max(0.0, std::min(i.end, edges[j + 1]) - std::max(i.start, edges[j]));
    }
  }
  for (size_t k = 0; k < v.size(); ++k) v[k] /= double(links.size()) * (edges[k + 1] - edges[k]);
  return v;
}

}  // namespace

std::string link_chart(const RunResult& run, const Attribution& a, const TimelineFrame& f) {
  const Timeline& t = run.timeline;
  std::map<std::string, const LinkUse*> by_name;
  bool any = false;
  for (const LinkUse& l : t.links) {
    by_name[l.link] = &l;
    any = any || !l.intervals.empty();
  }
  std::string h = "<h3>Link utilisation over the step</h3>\n";
  if (t.links.empty() || a.link_groups.empty()) return h + "<p class=\"note\">No link traffic recorded.</p>\n";
  if (!any || !(f.makespan > 0))
    return h + "<p class=\"note\">Not recorded for this run: the engine gave each link's totals only (see Bottleneck "
               "links).</p>\n";
  const size_t shown = std::min(kLinkChartGroups, a.link_groups.size());
  const double top = f.top, height = top + double(shown) * kLinkPitch;
  std::string svg = fmt::format(R"(<svg id="link-timeline" class="link-timeline" xmlns="http://www.w3.org/2000/svg" )"
                                R"(width="{:.0f}" height="{:.0f}" viewBox="0 0 {:.0f} {:.0f}">)"
                                "\n",
                                f.width, height, f.width, height);
  for (const Tick& tick : time_ticks(f.makespan, 10)) {
    const double x = f.label + f.plot * tick.at / f.makespan;
    svg += fmt::format(R"(<line class="axis" x1="{:.1f}" y1="{:.0f}" x2="{:.1f}" y2="{:.0f}"/>)", x, top - 6, x, height - 6);
    svg += fmt::format(R"(<text class="tick" x="{:.1f}" y="{:.0f}" text-anchor="{}">{}</text>)", x, top - 10,
                       tick.at == 0 ? "start" : "middle", html_escape(tick.label));
    svg += "\n";
  }
  auto x_of = [&](double s) { return f.label + f.plot * std::clamp(s, 0.0, f.makespan) / f.makespan; };
  for (size_t g = 0; g < shown; ++g) {
    const LinkGroup& group = a.link_groups[g];
    std::vector<const LinkUse*> links;
    std::vector<double> edges{0, f.makespan};
    for (size_t m : group.members) {
      const auto it = by_name.find(a.links[m].link);
      if (it == by_name.end()) continue;
      links.push_back(it->second);
      for (const LinkInterval& i : it->second->intervals) edges.insert(edges.end(), {i.start, i.end});
    }
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
    while (!edges.empty() && edges.back() > f.makespan) edges.pop_back();
    // Exact stretches of many links could give more edges than pixels: then one segment a column.
    if (edges.size() > size_t(2 * f.bins) + 1) {
      edges.clear();
      for (int b = 0; b <= f.bins; ++b) edges.push_back(b == f.bins ? f.makespan : b * f.dt);
    }
    const std::vector<double> v = links.empty() ? std::vector<double>{} : mean_utilisation(links, edges);
    const double y0 = top + double(g) * kLinkPitch + 16, base = y0 + kLinkStrip;
    auto y_of = [&](double u) { return base - kLinkStrip * std::clamp(u, 0.0, 1.0); };
    double peak = 0, weighted = 0, hot = 0;
    for (size_t k = 0; k < v.size(); ++k) {
      peak = std::max(peak, v[k]);
      weighted += v[k] * (edges[k + 1] - edges[k]);
      if (v[k] >= 0.9) hot += edges[k + 1] - edges[k];
    }
    const std::string who = group.members.size() == 1 ? group.names
                                                       : fmt::format("{} ({} links, their mean)", group.names, group.members.size());
    const std::string summary = fmt::format("{}: peak {:.0f}%, step mean {:.1f}%, at 90% or more for {}", who, 100 * peak,
                                            100 * weighted / f.makespan, format_seconds(hot));
    svg += fmt::format(R"(<text class="row" x="{:.0f}" y="{:.0f}"><tspan fill="{}">&#9632;</tspan> {}</text>)", f.label,
                       y0 - 3, kLinkColour[g], html_escape(summary));
    svg += fmt::format(R"(<text class="tick" x="{:.0f}" y="{:.0f}" text-anchor="end">100%</text>)"
                       R"(<text class="tick" x="{:.0f}" y="{:.0f}" text-anchor="end">0</text>)"
                       R"(<line class="axis" x1="{:.0f}" y1="{:.1f}" x2="{:.0f}" y2="{:.1f}"/>)"
                       R"(<line class="axis" x1="{:.0f}" y1="{:.1f}" x2="{:.0f}" y2="{:.1f}"/>)"
                       "\n",
                       f.label - 4, y0 + 8, f.label - 4, base, f.label, y0, f.label + f.plot, y0, f.label, base,
                       f.label + f.plot, base);
    // The filled step line: up and across each segment, down to the axis at the end.
    std::string d = fmt::format("M{:.2f},{:.2f}", x_of(0), base);
    double last_y = base;
    for (size_t k = 0; k < v.size(); ++k) {
      const double y = y_of(v[k]);
      if (y != last_y) d += fmt::format("V{:.2f}", y);
      d += fmt::format("H{:.2f}", x_of(edges[k + 1]));
      last_y = y;
    }
    d += fmt::format("V{:.2f}Z", base);
    svg += fmt::format(R"(<path class="linkutil" d="{}" fill="{}" fill-opacity="0.35" stroke="{}" stroke-width="1">)"
                       "<title>{}</title></path>\n",
                       d, kLinkColour[g], kLinkColour[g], html_escape(summary));
    // Hover boxes: one per stretch at the same whole percent, with the figures.
    for (size_t k = 0; k < v.size();) {
      const long pct = std::lround(100 * v[k]);
      size_t e = k + 1;
      while (e < v.size() && std::lround(100 * v[e]) == pct) ++e;
      if (v[k] > 0 || pct > 0) {
        double sum = 0;
        for (size_t j = k; j < e; ++j) sum += v[j] * (edges[j + 1] - edges[j]);
        svg += fmt::format(R"(<rect class="linkbin" x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.0f}" fill="transparent">)"
                           "<title>{}: {:.0f}% from {} to {}</title></rect>\n",
                           x_of(edges[k]), y0, std::max(0.5, x_of(edges[e]) - x_of(edges[k])), kLinkStrip,
                           html_escape(group.names), 100 * sum / (edges[e] - edges[k]), format_seconds(edges[k]),
                           format_seconds(edges[e]));
      }
      k = e;
    }
  }
  svg += "</svg>\n";
  std::string note = "<p class=\"note\">";
  if (t.link_bin > 0)
    note += fmt::format("One bin is {} of the step: a link's utilisation in a bin is the bytes it carried there over its "
                        "capacity x the bin, each transfer's bytes spread evenly over its start to finish (its mean rate; "
                        "SimGrid shares a link max-min, so a rate may change within a transfer). ",
                        html_escape(format_seconds(t.link_bin)));
  else
    note += "Each stretch is the utilisation the engine recorded for it. ";
  note += fmt::format("The {} busiest link group{} of {} (as in Bottleneck links); a group of links alike in total draws "
                      "their mean. Hover for the figures.",
                      shown, shown == 1 ? "" : "s", a.link_groups.size());
  if (f.prefill_end >= 0) note += " The links' figures are the prefill's.";
  return h + svg + note + "</p>\n";
}

}  // namespace tpsim
