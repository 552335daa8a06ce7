// The HTML report of a serving run: inline CSS and SVG in one string, as `tpsim run --html` writes
// (sim/report/html.cpp), so the page opens anywhere offline. No clock or randomness goes in and
// every number is printed at a fixed precision, so the same run gives the same bytes.
#include "serve/serve_html.hpp"
#include "serve/serve_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <set>
#include <utility>
#include <vector>

#include "tpsim/report.hpp"
#include "report/html_escape.hpp"

namespace tpsim {
namespace {

constexpr size_t kMaxRequestRows = 200;   // beyond this the rows are thinner than a pixel
constexpr int kMaxReplicaLines = 8;       // one palette colour each; more lines would be a tangle
constexpr size_t kMaxStepPoints = 2000;   // per replica line: keeps a long run's page small
constexpr size_t kMaxCdfPoints = 500;
constexpr double kWidth = 1100;           // px, as the run report's timeline

const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}
td:first-child,th:first-child,.facts td{text-align:left}.facts th{font-weight:normal;color:#666}
.axis{stroke:#999;stroke-width:1}.grid{stroke:#eee;stroke-width:1}.tick{font-size:10px;fill:#555}
.row{font-size:9px;fill:#555}.queue{fill:#9d9d9d}.prefill{fill:#f58518}.decode{fill:#4c78a8}
.preempt-tick,.preempt-mark{fill:#e45756}.line{fill:none;stroke-width:1.2}
.cdf{fill:none;stroke:#4c78a8;stroke-width:1.5}.slo{stroke:#e45756;stroke-width:1.5;stroke-dasharray:5,4}
.met{color:#2a7d2a;font-weight:bold}.missed{color:#c0392b;font-weight:bold}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:middle}
.note{color:#666}.pair{display:flex;gap:20px;flex-wrap:wrap}
)";

const char* kPalette[] = {"#4c78a8", "#f58518", "#54a24b", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d", "#ff9da6"};

std::string escape(const std::string& s) { return html_escape(s); }

// ---------------------------------------------------------------------------------------------
// The header: what was simulated and what it achieved.

// Every value is escaped here, once: names and paths come from the user's files.
std::string facts_table(const Scenario& sc, const ServingSpec& spec, const ServeResult& r, const ServeSummary& s,
                        const std::string& timing) {
  std::string h = "<table class=\"facts\">\n";
  for (const auto& [label, text] : serve_facts(sc, spec, r, s, timing))
    h += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", escape(label), escape(text));
  return h + "</table>\n";
}

std::string latency_table(const ServingSpec& spec, const ServeSummary& s) {
  std::string h = "<table><tr><th>latency</th><th>p50</th><th>p90</th><th>p99</th><th>mean</th></tr>\n";
  // TPOT is a per-token time, read in ms; the others are whole-request times, read in s.
  auto row = [&h](const char* name, const Percentiles& p, double scale, int digits) {
    h += fmt::format("<tr><td>{}</td><td>{:.{}f}</td><td>{:.{}f}</td><td>{:.{}f}</td><td>{:.{}f}</td></tr>\n", name,
                     p.p50 * scale, digits, p.p90 * scale, digits, p.p99 * scale, digits, p.mean * scale, digits);
  };
  row("time to first token (s)", s.ttft, 1, 3);
  row("time per output token (ms)", s.tpot, 1e3, 1);
  row("end-to-end latency (s)", s.latency, 1, 3);
  row("queueing delay (s)", s.queueing, 1, 3);
  if (spec.prefill_replicas > 0) row("KV cache transfer (ms)", s.kv_transfer, 1e3, 1);
  return h + "</table>\n";
}

std::string outcome_table(const ServingSpec& spec, const ServeSummary& s) {
  std::string h = "<table class=\"facts\">\n";
  auto fact = [&h](const char* label, const std::string& html) {
    h += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", label, html);
  };
  fact("throughput", fmt::format("{:.2f} requests/s, {:.0f} output tokens/s ({:.1f} per GPU), {:.0f} prompt tokens/s",
                                 s.requests_per_s, s.output_tokens_per_s, s.output_tokens_per_s_per_gpu,
                                 s.input_tokens_per_s));
  fact("goodput", escape(fmt::format("{:.2f} requests/s with TTFT <= {} and TPOT <= {} ({:.1f}% of requests)", s.goodput,
                                     format_seconds(spec.slo.ttft), format_seconds(spec.slo.tpot),
                                     100 * s.good_fraction)));
  const std::string verdict = s.slo_met ? R"(<span class="met">met</span>)" : R"(<span class="missed">MISSED</span>)";
  fact("SLO", verdict + escape(fmt::format(": TTFT p{:g} {} {} {}, TPOT p{:g} {} {} {}", spec.slo.ttft_percentile,
                                           format_seconds(s.slo_ttft), s.slo_ttft <= spec.slo.ttft ? "<=" : ">",
                                           format_seconds(spec.slo.ttft), spec.slo.tpot_percentile,
                                           format_seconds(s.slo_tpot), s.slo_tpot <= spec.slo.tpot ? "<=" : ">",
                                           format_seconds(spec.slo.tpot))));
  fact("KV cache", fmt::format("peak {:.1f}%, mean {:.1f}% of capacity", 100 * s.kv_peak, 100 * s.kv_mean));
  fact("preemptions", fmt::format("{}", s.preemptions));
  return h + "</table>\n";
}

// ---------------------------------------------------------------------------------------------
// Chart pieces shared by the SVGs.

struct Point {
  double x, y;   // data coordinates
};

// A plot area in px and the data range it shows, both axes from 0.
struct Frame {
  double left = 70, top = 12, width = kWidth - 70 - 20, height = 200;
  double xmax = 1, ymax = 1;
  double x(double v) const { return left + width * v / xmax; }
  double y(double v) const { return top + height - height * v / ymax; }
  double bottom() const { return top + height; }
};

// A round tick step (1, 2 or 5 x 10^k) giving at most `intervals` intervals over [0, span]: tick
// labels a reader takes in at a glance.
double tick_step(double span, int intervals = 5) {
  if (!(span > 0)) return 1;
  const double raw = span / intervals;
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
}

// The axis end: `span` rounded up to a whole step, so the last tick sits on the plot's edge.
double axis_end(double span, double step) { return span > 0 ? std::ceil(span / step - 1e-9) * step : step; }

// Decimals that tell ticks `step` apart, and no more.
int decimals(double step) { return std::clamp(int(std::ceil(-std::log10(step) - 1e-9)), 0, 9); }

std::string svg_open(const char* id, double height, const std::string& extra = "", double width = kWidth) {
  return fmt::format(R"(<svg id="{}" xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" )"
                     R"(viewBox="0 0 {:.0f} {:.0f}"{}>)"
                     "\n",
                     id, width, height, width, height, extra);
}

// Vertical grid lines at every step, labelled below the plot, and the unit after the last label.
std::string x_axis(const Frame& f, double step, const std::string& unit) {
  std::string svg;
  const int digits = decimals(step);
  for (int k = 0; k * step <= f.xmax * (1 + 1e-9); ++k) {
    const double x = f.x(k * step);
    svg += fmt::format(R"(<line class="{}" x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}"/>)", k ? "grid" : "axis", x,
                       f.top, x, f.bottom());
    svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="middle">{:.{}f}</text>)", x,
                       f.bottom() + 13, k * step, digits);
    svg += "\n";
  }
  svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="end">{}</text>)", f.left + f.width,
                     f.bottom() + 26, escape(unit));
  return svg + "\n";
}

// Horizontal grid lines at every step, labelled left of the plot; `suffix` follows each label.
std::string y_axis(const Frame& f, double step, const char* suffix) {
  std::string svg;
  const int digits = decimals(step);
  for (int k = 0; k * step <= f.ymax * (1 + 1e-9); ++k) {
    const double y = f.y(k * step);
    svg += fmt::format(R"(<line class="{}" x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}"/>)", k ? "grid" : "axis",
                       f.left, y, f.left + f.width, y);
    svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="end">{:.{}f}{}</text>)", f.left - 6,
                       y + 3, k * step, digits, suffix);
    svg += "\n";
  }
  return svg;
}

std::string polyline(const std::vector<Point>& points, const Frame& f, const std::string& attributes) {
  std::string svg = "<polyline " + attributes + " points=\"";
  for (size_t k = 0; k < points.size(); ++k)
    fmt::format_to(std::back_inserter(svg), "{}{:.2f},{:.2f}", k ? " " : "", f.x(points[k].x), f.y(points[k].y));
  return svg + "\"/>\n";
}

// ---------------------------------------------------------------------------------------------
// Request timeline.

// One request's row: queueing (thin grey), prefill until the first token (orange), decode until the
// last token (blue); an instant of -1 (never reached) ends the row where the request got to.
std::string request_row(const RequestOutcome& o, const Frame& f, double y, double pitch, bool label) {
  const double h = std::max(2.0, pitch - 1);
  std::string row = fmt::format(
      R"(<g class="req" data-id="{}"><title>request {}: arrived {:.3f} s, queued {:.3f} s, TTFT {:.3f} s, )"
      R"(finished {:.3f} s, {} preemption{}</title>)",
      o.id, o.id, o.arrival, o.queueing(), o.ttft(), o.finished, o.preemptions, o.preemptions == 1 ? "" : "s");
  auto bar = [&](const char* cls, double t0, double t1, double top, double height) {
    if (t0 < 0 || t1 < t0) return;
    row += fmt::format(R"(<rect class="{}" x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}"/>)", cls, f.x(t0), top,
                       std::max(0.5, f.x(t1) - f.x(t0)), height);
  };
  bar("queue", o.arrival, o.first_scheduled, y + h * 0.35, std::max(1.0, h * 0.3));
  bar("prefill", o.first_scheduled, o.first_token, y, h);
  bar("decode", o.first_token, o.finished, y, h);
  // Past the row's end, where it cannot hide a segment: when in the run it happened is not recorded.
  if (o.preemptions > 0) {
    const double end = std::max({o.arrival, o.first_scheduled, o.first_token, o.finished});
    row += fmt::format(R"(<rect class="preempt-tick" x="{:.2f}" y="{:.2f}" width="2" height="{:.2f}"/>)", f.x(end) + 2,
                       y - 1, h + 2);
  }
  if (label)
    row += fmt::format(R"(<text class="row" x="{:.2f}" y="{:.2f}" text-anchor="end">{}</text>)", f.left - 6, y + h,
                       o.id);
  return row + "</g>\n";
}

std::string timeline_section(const ServeResult& r) {
  std::string h = "<h2>Request timeline</h2>\n<p class=\"legend\"><span style=\"background:#9d9d9d\"></span>queueing"
                  "<span style=\"background:#f58518\"></span>prefill (to the first token)"
                  "<span style=\"background:#4c78a8\"></span>decode (to the last token)"
                  "<span style=\"background:#e45756;width:3px\"></span>preempted at least once</p>\n";
  const size_t rows = std::min(r.requests.size(), kMaxRequestRows);
  if (rows == 0) return h + "<p>No requests.</p>\n";
  // The axis spans the rows drawn, not the whole run: the first 200 of a long run stay readable.
  double span = 0;
  for (size_t i = 0; i < rows; ++i) {
    const RequestOutcome& o = r.requests[i];
    span = std::max({span, o.arrival, o.first_scheduled, o.first_token, o.finished});
  }
  const double step = tick_step(span);
  const double pitch = std::clamp(std::floor(640.0 / double(rows)), 3.0, 14.0);
  Frame f;
  f.xmax = axis_end(span, step);
  f.height = pitch * double(rows);
  // Label every row when there is room, else every 2nd, 5th, 10th...: about 12 px between labels.
  size_t every = 1;
  for (size_t e : {2, 5, 10, 20, 50})
    if (double(every) * pitch < 12) every = e;
  std::string svg = svg_open("request-timeline", f.bottom() + 32);
  svg += x_axis(f, step, "s since the stream's start");
  for (size_t i = 0; i < rows; ++i)
    svg += request_row(r.requests[i], f, f.top + double(i) * pitch, pitch, i % every == 0);
  h += svg + "</svg>\n";
  if (r.requests.size() > rows)
    h += fmt::format("<p class=\"note\" id=\"timeline-caption\">Showing the first {} requests (by id) of {}.</p>\n", rows,
                     r.requests.size());
  return h;
}

// ---------------------------------------------------------------------------------------------
// KV-cache occupancy and running sequences per replica.

struct Interval {
  double start, end, value;
};

// A replica's iterations as (start, end, value), in start order; `value` picks what is plotted.
template <class Value>
std::vector<Interval> intervals_of(const ServeResult& r, int replica, Value value) {
  std::vector<Interval> out;
  for (const IterationRecord& it : r.iterations)
    if (it.replica == replica) out.push_back({it.start, it.end, value(it)});
  return out;
}

// Removes the middle point of every three on one horizontal run: a step line needs only its corners.
std::vector<Point> corners(const std::vector<Point>& p) {
  std::vector<Point> out;
  for (size_t i = 0; i < p.size(); ++i)
    if (i == 0 || i + 1 == p.size() || p[i - 1].y != p[i].y || p[i].y != p[i + 1].y) out.push_back(p[i]);
  return out;
}

// The step line of the intervals over [0, xmax], 0 between iterations (an idle replica holds no
// sequences). Longer than `max_points`, it becomes the maximum over equal time buckets instead, so
// a peak of one short iteration still shows.
std::vector<Point> step_line(const std::vector<Interval>& intervals, double xmax, size_t max_points) {
  std::vector<Point> exact{{0, 0}};
  double at = 0, level = 0;
  for (const Interval& iv : intervals) {
    if (iv.start > at) {   // idle since `at`
      if (level != 0) exact.push_back({at, 0});
      exact.push_back({iv.start, 0});
    }
    exact.push_back({iv.start, iv.value});
    exact.push_back({iv.end, iv.value});
    at = iv.end;
    level = iv.value;
  }
  if (level != 0) exact.push_back({at, 0});
  exact = corners(exact);
  if (exact.size() <= max_points) return exact;

  const size_t buckets = max_points / 2;   // two corners per bucket
  const double width = xmax / double(buckets);
  std::vector<double> peak(buckets, 0);
  for (const Interval& iv : intervals) {
    const size_t first = std::min(buckets - 1, size_t(iv.start / width));
    const double last_edge = std::ceil(iv.end / width) - 1;   // an end on a boundary stays out of the next
    const size_t last = last_edge <= double(first) ? first : std::min(buckets - 1, size_t(last_edge));
    for (size_t b = first; b <= last; ++b) peak[b] = std::max(peak[b], iv.value);
  }
  std::vector<Point> bucketed;
  for (size_t b = 0; b < buckets; ++b) {
    bucketed.push_back({double(b) * width, peak[b]});
    bucketed.push_back({double(b + 1) * width, peak[b]});
  }
  return corners(bucketed);
}

// Red marks on the KV line where iterations preempted sequences, at most one per replica and pixel.
std::string preemption_marks(const ServeResult& r, const Frame& f, int drawn, double capacity) {
  std::string svg;
  std::set<std::pair<int, long>> marked;
  for (const IterationRecord& it : r.iterations) {
    if (it.preempted <= 0 || it.replica >= drawn) continue;
    const double x = f.x(it.start), y = f.y(100 * double(it.kv_tokens_used) / capacity);
    if (!marked.insert({it.replica, std::lround(x)}).second) continue;
    svg += fmt::format(R"(<path class="preempt-mark" d="M{:.2f},{:.2f} l-3,-6 h6 z"><title>replica {}: {} )"
                       R"(preempted at {:.3f} s</title></path>)"
                       "\n",
                       x, y - 1, it.replica, it.preempted, it.start);
  }
  return svg;
}

std::string occupancy_section(const ServeResult& r) {
  std::string h = "<h2>KV-cache occupancy over time</h2>\n";
  if (r.iterations.empty()) return h + "<p>No iterations recorded.</p>\n";
  int replicas = 0;
  double span = r.makespan;
  int64_t most_running = 0;
  for (const IterationRecord& it : r.iterations) {
    replicas = std::max(replicas, it.replica + 1);
    span = std::max(span, it.end);
    most_running = std::max(most_running, it.running);
  }
  const int drawn = std::min(replicas, kMaxReplicaLines);
  h += "<p class=\"legend\">";
  for (int k = 0; k < drawn; ++k) h += fmt::format(R"(<span style="background:{}"></span>replica {})", kPalette[k], k);
  h += "<span style=\"background:#e45756;width:3px\"></span>iteration that preempted</p>\n";

  const double step = tick_step(span);
  Frame kv;
  kv.xmax = axis_end(span, step);
  kv.height = 220;
  kv.ymax = 100;
  const double capacity = double(std::max<int64_t>(1, r.capacity.kv_tokens));
  // data-y0 / data-y100: where 0% and 100% lie, so a reader (or a test) can turn points back into %.
  h += svg_open("kv-chart", kv.bottom() + 32, fmt::format(R"( data-y0="{:.2f}" data-y100="{:.2f}")", kv.y(0), kv.y(100)));
  h += x_axis(kv, step, "s since the stream's start") + y_axis(kv, 25, "%");
  for (int k = 0; k < drawn; ++k) {
    const auto line = step_line(
        intervals_of(r, k, [&](const IterationRecord& it) { return 100 * double(it.kv_tokens_used) / capacity; }),
        kv.xmax, kMaxStepPoints);
    h += polyline(line, kv, fmt::format(R"(class="line kv" data-replica="{}" stroke="{}")", k, kPalette[k]));
  }
  h += preemption_marks(r, kv, drawn, capacity) + "</svg>\n";

  h += "<h2>Running sequences over time</h2>\n";
  Frame run = kv;
  run.height = 140;
  const double run_step = std::max(1.0, tick_step(double(most_running), 4));   // whole sequences
  run.ymax = axis_end(double(most_running), run_step);
  h += svg_open("running-chart", run.bottom() + 32);
  h += x_axis(run, step, "s since the stream's start") + y_axis(run, run_step, "");
  for (int k = 0; k < drawn; ++k) {
    const auto line = step_line(intervals_of(r, k, [](const IterationRecord& it) { return double(it.running); }),
                                run.xmax, kMaxStepPoints);
    h += polyline(line, run, fmt::format(R"(class="line running" data-replica="{}" stroke="{}")", k, kPalette[k]));
  }
  h += "</svg>\n";
  if (replicas > drawn)
    h += fmt::format("<p class=\"note\">Showing replicas 0-{} of {}.</p>\n", drawn - 1, replicas);
  return h;
}

// ---------------------------------------------------------------------------------------------
// Latency CDFs.

// The empirical CDF of sorted `values` (s, not empty), y in %. Up to kMaxCdfPoints values it is
// drawn exactly, as a staircase; beyond, kMaxCdfPoints values evenly spaced in rank (so the tails
// keep their share) joined by straight lines, closer to the hidden steps than a staircase would be.
std::vector<Point> cdf_points(const std::vector<double>& values) {
  const size_t n = values.size();
  std::vector<Point> points;
  if (n <= kMaxCdfPoints) {
    for (size_t k = 0; k < n; ++k) {
      points.push_back({values[k], 100 * double(k) / double(n)});
      points.push_back({values[k], 100 * double(k + 1) / double(n)});
    }
    return corners(points);
  }
  points.push_back({values.front(), 0});
  for (size_t k = 0; k < kMaxCdfPoints; ++k) {
    const size_t i = (k * (n - 1) + (kMaxCdfPoints - 1) / 2) / (kMaxCdfPoints - 1);
    points.push_back({values[i], 100 * double(i + 1) / double(n)});
  }
  return points;
}

// One CDF chart; `slo` > 0 draws that objective as a dashed vertical line.
std::string cdf_chart(const char* id, const char* what, std::vector<double> values, double slo) {
  if (values.empty()) return fmt::format("<p>No finished requests for the {} CDF.</p>\n", what);
  std::sort(values.begin(), values.end());
  const std::vector<Point> points = cdf_points(values);
  // The SLO widens the axis only when that leaves the curve at least half the width.
  const bool slo_inside = slo > 0 && slo <= 2 * values.back();
  const double span = slo_inside ? std::max(values.back(), slo) : values.back();
  const double step = tick_step(span);
  Frame f;
  f.left = 50;
  f.width = 460;
  f.height = 200;
  f.top = 24;
  f.xmax = axis_end(span, step);
  f.ymax = 100;
  std::string svg = svg_open(id, f.bottom() + 32, "", f.left + f.width + 20);
  svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="12">{}</text>)", f.left, escape(what)) + "\n";
  svg += x_axis(f, step, "s") + y_axis(f, 25, "%");
  svg += polyline(points, f, R"(class="cdf")");
  if (slo_inside) {
    const bool near_right = f.x(slo) > f.left + 0.8 * f.width;   // label on the line's left, inside the chart
    svg += fmt::format(R"(<line class="slo" x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}"/>)"
                       R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="{}">SLO {}</text>)"
                       "\n",
                       f.x(slo), f.top, f.x(slo), f.bottom(), f.x(slo) + (near_right ? -4 : 4), f.top + 10,
                       near_right ? "end" : "start", escape(format_seconds(slo)));
  }
  else if (slo > 0)
    svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="end">SLO {} is off the right edge</text>)"
                       "\n",
                       f.left + f.width, f.top + 10, escape(format_seconds(slo)));
  return svg + "</svg>\n";
}

std::string cdf_section(const ServingSpec& spec, const ServeResult& r) {
  std::vector<double> ttft, latency;
  for (const RequestOutcome& o : r.requests) {
    if (o.first_token >= 0) ttft.push_back(o.ttft());
    if (o.finished >= 0) latency.push_back(o.latency());
  }
  return "<h2>Latency CDFs</h2>\n<div class=\"pair\">\n" +
         cdf_chart("ttft-cdf", "time to first token", std::move(ttft), spec.slo.ttft) +
         cdf_chart("latency-cdf", "end-to-end latency", std::move(latency), 0) + "</div>\n";
}

}  // namespace

std::string serve_html(const Scenario& scenario, const ServingSpec& spec, const ServeResult& result,
                       const ServeSummary& summary, const std::string& timing) {
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  h += fmt::format("<title>tpsim serve: {}</title>\n<style>{}</style></head><body>\n", escape(scenario.name), kStyle);
  h += fmt::format("<h1>tpsim serve: {}</h1>\n", escape(scenario.name));
  h += facts_table(scenario, spec, result, summary, timing);
  h += "<h2>Summary</h2>\n" + latency_table(spec, summary) + outcome_table(spec, summary);
  h += timeline_section(result);
  h += occupancy_section(result);
  h += cdf_section(spec, result);
  return h + "</body></html>\n";
}

}  // namespace tpsim
