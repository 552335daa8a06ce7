// The run timeline as SVG: a row per GPU (or per pipeline stage / node, with a drill-down), each a
// pixel-column picture of its step. A column shows which pass the compute stream worked on
// (forward, backward, recomputation, optimizer; prefill, decode), how much of it was busy, and in
// two thin lanes below, how much of it waited on communication and how busy the comm streams were.
// Compute is never drawn under a wait: waits have their own lane.
#include <algorithm>
#include <array>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <memory>

#include "report/html_escape.hpp"
#include "report/html_frame.hpp"
#include "report/svg_axis.hpp"
#include "tpsim/html.hpp"

namespace tpsim {

namespace {

using Frame = TimelineFrame;

enum Category { kForward, kBackward, kRecompute, kOptimizer, kPrefill, kDecode, kBubble, kStall, kComm, kCategories };
constexpr int kComputeCategories = kBubble;   // forward .. decode

const char* kClass[kCategories] = {"forward", "backward", "recompute", "optimizer", "prefill",
                                   "decode",  "bubble",   "stall",     "comm"};
const char* kWords[kCategories] = {"forward",
                                   "backward",
                                   "recomputation (backward pass)",
                                   "optimizer",
                                   "prefill",
                                   "decode",
                                   "pipeline bubble",
                                   "waiting on communication",
                                   "comm streams busy"};
// Legend swatches (CSS backgrounds); the SVG takes the same colours from html_style().
const char* kSwatch[kCategories] = {"#4c78a8", "#54a24b", "#9ecae9", "#b279a2", "#4c78a8",
                                    "#72b7b2", "#bdbdbd", "#e45756", "#f58518"};

enum Lane { kMain, kWaitLane, kCommLane };


Category category(const Span& s, const Frame& f) {
  if (s.kind == "stall") return kStall;
  if (s.kind == "bubble") return kBubble;
  if (s.stream != Stream::compute || s.kind == "collective" || s.kind == "send" || s.kind == "recv") return kComm;
  if (f.prefill_end >= 0) return s.start >= f.prefill_end ? kDecode : kPrefill;
  if (s.pass == Pass::optimizer) return kOptimizer;
  if (s.recompute) return kRecompute;
  return s.pass == Pass::backward ? kBackward : kForward;
}

// Per bin and category: seconds (summed over the row's GPUs), spans starting there, the longest
// span over it.
struct Bins {
  std::vector<std::array<double, kCategories>> time;
  std::vector<std::array<int, kCategories>> starts;
  std::vector<std::array<const Span*, kCategories>> longest;
  // Columns where a compute span of 8 columns or more starts: a white hairline there tells back to
  // back units apart (two micro-batches' forwards), which one colour would join.
  std::vector<int> cuts;
  int gpus = 0;

  explicit Bins(int n) : time(size_t(n)), starts(size_t(n)), longest(size_t(n)) { clear(); }
  void clear() {
    for (auto& t : time) t.fill(0);
    for (auto& c : starts) c.fill(0);
    for (auto& l : longest) l.fill(nullptr);
    cuts.clear();
    gpus = 0;
  }
  void add(const Span& s, const Frame& f) {
    const double start = s.start - f.origin, end = s.end - f.origin;   // in the plot's time
    if (!(end > start) || f.dt <= 0 || end <= 0 || start >= f.makespan) return;
    const Category c = category(s, f);
    const int last = f.bins - 1;
    const int b0 = std::clamp(static_cast<int>(start / f.dt), 0, last);
    const int b1 = std::clamp(static_cast<int>(end / f.dt), 0, last);
    for (int b = b0; b <= b1; ++b) {
      time[size_t(b)][c] += std::max(0.0, std::min(end, (b + 1) * f.dt) - std::max(start, b * f.dt));
      const Span*& l = longest[size_t(b)][c];
      if (!l || s.end - s.start > l->end - l->start) l = &s;
    }
    starts[size_t(b0)][c] += 1;
    if (c < kBubble && b0 > 0 && s.end - s.start >= 8 * f.dt) cuts.push_back(b0);
  }
  void add(const Bins& o) {
    for (size_t b = 0; b < time.size(); ++b)
      for (int c = 0; c < kCategories; ++c) {
        time[b][c] += o.time[b][c];
        starts[b][c] += o.starts[b][c];
      }
    gpus += o.gpus;
  }
};

// A stretch of bins drawn as one rectangle: same category, same busy level (quarters).
struct Run {
  Lane lane;
  Category cat;
  int level;      // 1..4: busy share of the stretch, rounded up to quarters (opacity)
  int b0, b1;     // bins [b0, b1)
  bool operator==(const Run& o) const {
    return lane == o.lane && cat == o.cat && level == o.level && b0 == o.b0 && b1 == o.b1;
  }
};

// Which category a bin shows in a lane, and how busy (0..1) that lane was there. The main lane
// shows the pass with the most compute; a bubble only where the GPU computed nothing.
std::pair<Category, double> pick(const Bins& bins, size_t b, Lane lane, double capacity) {
  const auto& t = bins.time[b];
  if (lane == kWaitLane) return {kStall, t[kStall] / capacity};
  if (lane == kCommLane) return {kComm, t[kComm] / capacity};
  double compute = 0;
  int best = -1;
  for (int c = 0; c < kComputeCategories; ++c) {
    compute += t[c];
    if (t[c] > 0 && (best < 0 || t[c] > t[best])) best = c;
  }
  if (best >= 0) return {Category(best), compute / capacity};
  return {kBubble, t[kBubble] / capacity};
}

std::vector<Run> runs(const Bins& bins, const Frame& f) {
  std::vector<Run> out;
  const double capacity = f.dt * std::max(1, bins.gpus);
  for (Lane lane : {kMain, kWaitLane, kCommLane}) {
    for (int b = 0; b < f.bins; ++b) {
      const auto [cat, busy] = pick(bins, size_t(b), lane, capacity);
      if (!(busy > 1e-9)) continue;
      const int level = std::clamp(static_cast<int>(std::ceil(busy * 4 - 1e-9)), 1, 4);
      if (!out.empty() && out.back().lane == lane && out.back().cat == cat && out.back().level == level &&
          out.back().b1 == b)
        out.back().b1 = b + 1;
      else
        out.push_back({lane, cat, level, b, b + 1});
    }
  }
  return out;
}

std::string span_label(const Span& s) { return s.kind == "stall" || s.kind == "bubble" ? "waiting for " + s.waited_for : s.name; }

// What a rectangle's tooltip says: the one span it stands for, or what the stretch held.
std::string tooltip(const std::string& who, const Run& r, const Bins& bins, const Frame& f) {
  double seconds = 0;
  int count = 0;
  const Span* longest = nullptr;
  for (int b = r.b0; b < r.b1; ++b) {
    seconds += bins.time[size_t(b)][r.cat];
    count += bins.starts[size_t(b)][r.cat];
    const Span* l = bins.longest[size_t(b)][r.cat];
    if (l && (!longest || l->end - l->start > longest->end - longest->start)) longest = l;
  }
  const double t0 = f.origin + r.b0 * f.dt, t1 = f.origin + r.b1 * f.dt;
  if (bins.gpus > 1)
    return fmt::format("{}: {}, {} to {}: {:.0f}% of the GPUs' time", who, kWords[r.cat], format_seconds(t0),
                       format_seconds(t1), 100 * seconds / ((t1 - t0) * bins.gpus));
  if (count == 1 && longest && longest->end - longest->start >= 0.5 * seconds)
    return fmt::format("{}: {} ({}, {} to {})", who, span_label(*longest), format_seconds(longest->end - longest->start),
                       format_seconds(longest->start), format_seconds(longest->end));
  std::string tip = fmt::format("{}: {}, {} to {}: {}", who, kWords[r.cat], format_seconds(t0), format_seconds(t1),
                                format_seconds(seconds));
  if (count > 0) tip += fmt::format(" in {} span{} starting here", count, count == 1 ? "" : "s");
  if (longest) tip += fmt::format("; longest {} ({})", span_label(*longest), format_seconds(longest->end - longest->start));
  return tip;
}

// The marker a row's tooltips carry for "who" until the row knows every GPU that draws it.
constexpr const char* kWho = "\x01";

// A row's rectangles at y = 0 (placed with a transform), tooltips naming kWho.
std::string row_rects(const std::vector<Run>& rs, const Bins& bins, const Frame& f) {
  std::string svg = fmt::format(R"(<rect class="idle" x="{:.0f}" y="0" width="{:.0f}" height="12"/>)", f.label, f.plot);
  svg += "\n";
  std::vector<int> cuts = bins.gpus == 1 ? bins.cuts : std::vector<int>{};
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::string hairlines;
  for (int b : cuts) hairlines += fmt::format(R"(<rect class="cut" x="{:.0f}" y="0" width="1" height="12"/>)", f.label + b);
  for (const Run& r : rs) {
    const int lane_y = r.lane == kMain ? 0 : r.lane == kWaitLane ? 13 : 18;
    const int height = r.lane == kMain ? 12 : 4;
    const std::string opacity = r.level == 4 ? "" : fmt::format(R"( fill-opacity="{:.2f}")", r.level / 4.0);
    svg += fmt::format(R"(<rect class="span {}" x="{:.0f}" y="{}" width="{}" height="{}"{}><title>{}</title></rect>)",
                       kClass[r.cat], f.label + r.b0, lane_y, r.b1 - r.b0, height, opacity,
                       html_escape(tooltip(kWho, r, bins, f)));
    svg += "\n";
  }
  return svg + (hairlines.empty() ? "" : hairlines + "\n");
}

std::string place_row(const std::string& label, const std::string& who, double y, std::string rects) {
  const std::string escaped = html_escape(who);
  for (size_t p = rects.find(kWho); p != std::string::npos; p = rects.find(kWho, p + escaped.size()))
    rects.replace(p, 1, escaped);
  return fmt::format(R"svg(<text class="row" x="4" y="{:.0f}">{}</text><g transform="translate(0,{:.0f})">)svg", y + 11,
                     html_escape(label), y) +
         "\n" + rects + "</g>\n";
}

constexpr double kPitch = 28;

std::string svg_open(const std::string& id_or_class, const Frame& f, int rows, bool phases) {
  const double height = f.top + (phases ? 18 : 0) + rows * kPitch + 6;
  return fmt::format(R"(<svg {} xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" viewBox="0 0 {:.0f} {:.0f}">)"
                     "\n",
                     id_or_class, f.width, height, f.width, height);
}

std::string axis_svg(const Frame& f, int rows, bool phases) {
  std::string svg;
  const double bottom = f.top + (phases ? 18 : 0) + rows * kPitch;
  for (const Tick& t : time_ticks(f.makespan, 10)) {
    const double x = f.label + f.plot * t.at / f.makespan;
    svg += fmt::format(R"(<line class="axis" x1="{:.1f}" y1="{:.0f}" x2="{:.1f}" y2="{:.0f}"/>)", x, f.top - 6, x, bottom);
    svg += fmt::format(R"(<text class="tick" x="{:.1f}" y="{:.0f}" text-anchor="{}">{}</text>)", x, f.top - 10,
                       t.at == 0 ? "start" : "middle", html_escape(t.label));
    svg += "\n";
  }
  return svg;
}

// Inference: the prefill and the decode step as labelled bands over the rows.
std::string phases_svg(const RunResult& run, const Frame& f) {
  if (f.prefill_end < 0 || !run.step) return "";
  const StepMetrics& m = *run.step;
  const double x1 = f.label + f.plot * f.prefill_end / f.makespan, x2 = f.label + f.plot;
  const int64_t decode_steps = std::max<int64_t>(0, run.scenario.workload.generate - 1);
  std::string svg = fmt::format(
      R"(<rect class="phase prefill" x="{:.1f}" y="{:.0f}" width="{:.1f}" height="14"><title>prefill: {}</title></rect>)"
      R"(<text class="phase-label" x="{:.1f}" y="{:.0f}">prefill: {}</text>)"
      "\n",
      f.label, f.top, x1 - f.label, format_seconds(f.prefill_end), f.label + 4, f.top + 11, format_seconds(f.prefill_end));
  const std::string decode_words =
      fmt::format("one decode step of {}, at the mean context of {} tokens: {}", decode_steps, m.decode_context,
                  format_seconds(f.makespan - f.prefill_end));
  svg += fmt::format(
      R"(<rect class="phase decode" x="{:.1f}" y="{:.0f}" width="{:.1f}" height="14"><title>{}</title></rect>)"
      R"(<text class="phase-label" x="{:.1f}" y="{:.0f}" text-anchor="end">one decode step (of {}): {}</text>)"
      "\n",
      x1, f.top, x2 - x1, html_escape(decode_words), x2 - 2, f.top + 11, decode_steps,
      format_seconds(f.makespan - f.prefill_end));
  return svg;
}

// "0-7", "0-3,8-11".
std::string rank_ranges(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + (i == j ? std::to_string(ranks[i]) : fmt::format("{}-{}", ranks[i], ranks[j]));
    i = j + 1;
  }
  return out;
}

std::string gpus_words(const std::vector<int>& ranks) {
  return ranks.size() == 1 ? fmt::format("GPU {}", ranks[0]) : "GPUs " + rank_ranges(ranks);
}

// One GPU's row, ready to draw: its runs (to find identical rows), its rectangles, the GPUs that
// drew the same.
struct GpuRow {
  std::vector<int> ranks;
  std::vector<Run> runs;
  std::vector<int> cuts;
  std::string rects;
};

struct Group {
  std::string name;          // "stage 0", "node 3"
  std::vector<int> ranks;
  std::vector<GpuRow> rows;  // distinct rows, first seen first
  size_t rows_left_out = 0;  // GPUs whose distinct rows went past the drill-down's limit
  std::unique_ptr<Bins> sum; // every GPU's bins, summed
};

constexpr size_t kDistinctRowsPerGroup = 64;

// The rows of one frame: a row per GPU, or per stage / node with drill-downs. `main`: the figure
// the page's checks find (id "timeline"), with the inference phase bands.
std::string rows_figure(const RunResult& run, const Attribution& attribution, const HtmlOptions& options, const Frame& f,
                        const std::vector<std::vector<const Span*>>& by_rank, const std::vector<int>& stage, bool main) {
  const int ranks = static_cast<int>(by_rank.size());
  const bool grouped = ranks > options.max_rows;
  // Grouped: one row per pipeline stage when the plan has stages, else per node.
  const bool by_stage = run.scenario.plan.pp > 1;
  std::map<int, Group> groups;
  std::vector<GpuRow> gpu_rows;   // ungrouped: every GPU
  Bins bins(f.bins);
  for (int r = 0; r < ranks; ++r) {
    bins.clear();
    bins.gpus = 1;
    for (const Span* s : by_rank[size_t(r)]) bins.add(*s, f);
    std::vector<Run> rs = runs(bins, f);
    if (!grouped) {
      gpu_rows.push_back({{r}, rs, bins.cuts, row_rects(rs, bins, f)});
      continue;
    }
    const int node = r < static_cast<int>(attribution.gpus.size()) ? attribution.gpus[size_t(r)].node : 0;
    const int key = by_stage ? std::max(0, stage[size_t(r)]) : node;
    Group& g = groups[key];
    if (g.ranks.empty()) {
      g.name = fmt::format("{} {}", by_stage ? "stage" : "node", key);
      g.sum = std::make_unique<Bins>(f.bins);
    }
    g.ranks.push_back(r);
    g.sum->add(bins);
    auto same = std::find_if(g.rows.begin(), g.rows.end(),
                             [&](const GpuRow& row) { return row.runs == rs && row.cuts == bins.cuts; });
    if (same != g.rows.end()) same->ranks.push_back(r);
    else if (g.rows.size() < kDistinctRowsPerGroup) g.rows.push_back({{r}, rs, bins.cuts, row_rects(rs, bins, f)});
    else ++g.rows_left_out;
  }

  const bool phases = main && f.prefill_end >= 0;
  const std::string id = main ? R"(id="timeline" class="timeline")" : R"(class="timeline")";
  const double y0 = f.top + (phases ? 18 : 0);
  if (!grouped) {
    const int rows = static_cast<int>(gpu_rows.size());
    std::string svg = svg_open(id, f, rows, phases) + axis_svg(f, rows, phases) +
                      (phases ? phases_svg(run, f) : "");
    for (int i = 0; i < rows; ++i) {
      const std::string who = gpus_words(gpu_rows[size_t(i)].ranks);
      svg += place_row(who, who, y0 + i * kPitch, gpu_rows[size_t(i)].rects);
    }
    return svg + "</svg>\n";
  }

  // Grouped: each group's mean over its GPUs, then a drill-down per group with its distinct rows.
  const int rows = static_cast<int>(groups.size());
  std::string svg = svg_open(id, f, rows, phases) + axis_svg(f, rows, phases) +
                    (phases ? phases_svg(run, f) : "");
  int i = 0;
  std::string details;
  for (const auto& [key, g] : groups) {
    const std::string who = fmt::format("{} ({}, {} GPUs)", g.name, gpus_words(g.ranks), g.ranks.size());
    svg += place_row(g.name, who, y0 + i++ * kPitch, row_rects(runs(*g.sum, f), *g.sum, f));
    const int n = static_cast<int>(g.rows.size());
    details += fmt::format("<details><summary>{}: {} ({} GPUs), {} distinct row{}</summary>\n", html_escape(g.name),
                           html_escape(gpus_words(g.ranks)), g.ranks.size(), n, n == 1 ? "" : "s");
    details += svg_open(R"(class="timeline")", f, n, false) + axis_svg(f, n, false);
    for (int k = 0; k < n; ++k) {
      const GpuRow& row = g.rows[size_t(k)];
      const std::string label = gpus_words(row.ranks);
      details += place_row(label.size() > 18 ? fmt::format("{} GPUs alike", row.ranks.size()) : label, label,
                           f.top + k * kPitch, row.rects);
    }
    details += "</svg>\n";
    if (g.rows_left_out > 0)
      details += fmt::format("<p class=\"note\">{} more GPUs of {} are not drawn: their rows differ from the {} above.</p>\n",
                             g.rows_left_out, html_escape(g.name), kDistinctRowsPerGroup);
    details += "</details>\n";
  }
  svg += "</svg>\n";
  const std::string note = fmt::format(
      "<p class=\"note\">{} GPUs: one row per {}, the mean of its GPUs' time in each column. Open a {} below for its "
      "GPUs' own rows (GPUs whose rows are identical share one).</p>\n",
      ranks, by_stage ? "pipeline stage" : "node", by_stage ? "stage" : "node");
  return svg + note + details;
}

}  // namespace

std::string timeline_figure(const RunResult& run, const Attribution& attribution, const HtmlOptions& options) {
  const Timeline& t = run.timeline;
  Frame f;
  f.makespan = t.makespan;
  f.dt = f.makespan > 0 ? f.makespan / f.bins : 0;
  if (run.step && !run.step->training && run.step->prefill_s > 0 && run.step->prefill_s < t.makespan)
    f.prefill_end = run.step->prefill_s;
  const bool phases = f.prefill_end >= 0;

  int ranks = static_cast<int>(t.ranks.size());
  for (const auto& s : t.spans) ranks = std::max(ranks, s.rank + 1);
  std::vector<std::vector<const Span*>> by_rank(size_t(std::max(0, ranks)));
  std::array<double, kCategories> present{};
  std::vector<int> stage(size_t(std::max(0, ranks)), -1);
  for (const auto& s : t.spans) {
    by_rank[size_t(s.rank)].push_back(&s);
    if (s.end > s.start) present[category(s, f)] += s.end - s.start;
    if (stage[size_t(s.rank)] < 0 && s.stream == Stream::compute) stage[size_t(s.rank)] = s.stage;
  }

  // Legend: the categories this run has, then the two lanes.
  std::string h = "<p class=\"legend\">";
  for (int c = 0; c < kComputeCategories; ++c)
    if (present[c] > 0) h += fmt::format(R"(<span style="background:{}"></span>{})", kSwatch[c], kWords[c]);
  if (present[kBubble] > 0) h += fmt::format(R"(<span style="background:{}"></span>{})", kSwatch[kBubble], kWords[kBubble]);
  h += fmt::format(R"(<span style="background:{}"></span>idle)", "#f0f0f0");
  h += fmt::format(R"(<br>under each row: <span style="background:{}"></span>{} (compute stream)<span style="background:{}"></span>{})",
                   kSwatch[kStall], kWords[kStall], kSwatch[kComm], kWords[kComm]);
  h += "</p>\n<p class=\"note\">Each pixel column is " + html_escape(format_seconds(f.dt)) +
       " of the step; a paler colour is busy for a smaller share of that column. Hover for what ran.</p>\n";

  std::string figure = rows_figure(run, attribution, options, f, by_rank, stage, true) + link_chart(run, attribution, f);
  if (!phases) return h + figure;
  // The decode step is a sliver of the request: drawn again on its own time axis.
  Frame zoom = f;
  zoom.origin = f.prefill_end;
  zoom.makespan = t.makespan - f.prefill_end;
  zoom.dt = zoom.makespan / zoom.bins;
  return h + figure +
         fmt::format("<p class=\"note\">The decode step alone, {} from the prefill's end ({} per pixel column):</p>\n",
                     html_escape(format_seconds(zoom.makespan)), html_escape(format_seconds(zoom.dt))) +
         rows_figure(run, attribution, options, zoom, by_rank, stage, false);
}

}  // namespace tpsim
