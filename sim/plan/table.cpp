// Reading a sweep's result: the ranked terminal table, Megatron's usual choice and why the best
// layout beats it, the rejections by reason, and the progress line while the sweep runs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <map>

#include "tpsim/planner.hpp"
#include "tpsim/report.hpp"

namespace tpsim {

namespace {

std::string percent(double part, double whole) { return whole > 0 ? fmt::format("{:.1f}%", 100 * part / whole) : "-"; }

std::string duration(double s) {
  if (s >= 86400) return fmt::format("{:.1f} d", s / 86400);
  if (s >= 3600) return fmt::format("{:.1f} h", s / 3600);
  return format_seconds(s);
}

std::string describe_layout(const Layout& l) {
  if (l.batch > 0) return fmt::format("TP{} PP{} x{} replicas, batch {}", l.tp, l.pp, l.dp, l.batch);
  return fmt::format("TP{}{} PP{} DP{}{}, micro-batch {}, {}, {} recompute{}{}{}", l.tp,
                     l.cp > 1 ? fmt::format(" CP{}", l.cp) : "", l.pp, l.dp,
                     l.ep > 1 ? fmt::format(" (EP{} within it)", l.ep) : "", l.micro_batch,
                     l.sp ? "SP" : "no SP", recompute_name(l.recompute),
                     l.virtual_stages > 1 ? fmt::format(", {} virtual stages", l.virtual_stages) : "",
                     l.distributed_optimizer ? ", distributed optimizer" : "",
                     l.first_stage_layers > 0 || l.last_stage_layers > 0
                         ? fmt::format(", uneven stages (first {} and last {} layers: plan.first_stage_layers, "
                                       "last_stage_layers)", l.first_stage_layers, l.last_stage_layers)
                         : "");
}

// "OOM: activations overflow ..." -> "activations"; other reasons are grouped whole.
std::string reason_group(const LayoutResult& r) {
  if (r.verdict == Verdict::oom) {
    const auto a = r.reason.find("OOM: "), b = r.reason.find(" overflow");
    if (a != std::string::npos && b != std::string::npos && b > a + 5) return r.reason.substr(a + 5, b - a - 5);
  }
  return "";
}

// One sentence on where the step time differs, largest difference first.
std::string why_faster(const LayoutResult& best, const LayoutResult& other) {
  struct StepPart {
    const char* what;
    double best, other;
  };
  std::vector<StepPart> parts = {{"compute", best.compute_s, other.compute_s},
                             {"TP communication", best.tp_comm_s, other.tp_comm_s},
                             {"stalled on communication", best.exposed_comm_s, other.exposed_comm_s},
                             {"pipeline bubble", best.bubble_s, other.bubble_s}};
  std::stable_sort(parts.begin(), parts.end(), [](const StepPart& a, const StepPart& b) {
    return std::fabs(a.other - a.best) > std::fabs(b.other - b.best);
  });
  std::string out;
  for (const auto& p : parts)
    out += fmt::format("{}{} {} vs {}", out.empty() ? "" : "; ", p.what, format_seconds(p.best), format_seconds(p.other));
  return out;
}

}  // namespace

int megatron_tp(const Topology& t) { return std::max(1, std::min(8, t.gpus_per_node)); }

std::optional<LayoutResult> megatron_choice(const std::vector<LayoutResult>& ranked, int tp) {
  int nodes = 0;
  for (const auto& r : ranked) nodes = std::max(nodes, r.layout.nodes);
  std::optional<LayoutResult> choice;
  for (const auto& r : ranked) {
    const Layout& l = r.layout;
    if (l.batch != 0 || l.nodes != nodes || l.tp != tp || l.micro_batch != 1 || l.virtual_stages != 1) continue;
    if (l.sp != (tp > 1) || l.recompute != Recompute::selective) continue;
    if (r.verdict != Verdict::ok) continue;   // PP by memory: the smallest PP that fits and runs
    if (!choice || l.pp < choice->layout.pp) choice = r;
  }
  return choice;
}

std::string plan_table(const std::vector<LayoutResult>& ranked, Objective objective, int tp, int top) {
  const bool inference = !ranked.empty() && ranked.front().layout.batch > 0;
  bool has_time = false, has_cost = false;
  for (const auto& r : ranked) {
    has_time = has_time || r.time_to_train_s > 0;
    has_cost = has_cost || r.cost > 0;
  }
  const std::optional<LayoutResult> megatron = inference ? std::nullopt : megatron_choice(ranked, tp);

  // The layout column fits the longest id shown (uneven pipelines add "-first7-last7").
  size_t width = 32;
  for (const auto& r : ranked)
    if (r.verdict == Verdict::ok) width = std::max(width, layout_id(r.layout).size());
  std::string out = fmt::format("{:>4}  {:<{}}{:>11}{:>11}{:>11}{:>9}{:>9}{:>8}{:>9}", "rank", "layout", width,
                                inference ? "request" : "step time", "tokens/s", inference ? "TTFT" : "TFLOP/s",
                                "mem GiB", "TP comm", "bubble", "stalled");
  if (has_time) out += fmt::format("{:>10}", "train");
  out += fmt::format("{:>10}", has_cost ? "cost" : (inference ? "GPU-h/Mt" : "GPU-h"));
  out += "\n";
  auto row = [&](const LayoutResult& r, int rank) {
    std::string line = fmt::format("{:>4}  {:<{}}{:>11}{:>11.0f}{:>11}{:>9.1f}{:>9}{:>8}{:>9}", rank, layout_id(r.layout), width,
                                   format_seconds(r.step_time_s), r.tokens_per_s,
                                   inference ? format_seconds(r.ttft_s) : fmt::format("{:.0f}", r.tflops_per_gpu),
                                   r.memory_bytes / kGiB, percent(r.tp_comm_s, r.step_time_s),
                                   percent(r.bubble_s, r.step_time_s), percent(r.exposed_comm_s, r.step_time_s));
    if (has_time) line += fmt::format("{:>10}", duration(r.time_to_train_s));
    line += fmt::format("{:>10.4g}", has_cost ? r.cost : r.gpu_hours);
    if (megatron && r.layout == megatron->layout) line += "  <- Megatron's usual choice";
    return line + "\n";
  };
  int rank = 0, megatron_rank = 0, ok = 0;
  for (const auto& r : ranked) {
    if (r.verdict != Verdict::ok) continue;
    ++rank;
    ++ok;
    if (megatron && r.layout == megatron->layout) megatron_rank = rank;
    if (rank <= top) out += row(r, rank);
  }
  if (megatron_rank > top) out += fmt::format("{:>4}\n", "...") + row(*megatron, megatron_rank);
  if (ok == 0) out += "  (no layout runs: every one was rejected, see below)\n";

  if (ok > 0) {
    const LayoutResult& best = ranked.front();
    out += fmt::format("\nbest ({}): {}\n", to_string(objective), describe_layout(best.layout));
    if (megatron) {
      const LayoutResult& m = *megatron;
      if (m.layout == best.layout) {
        out += fmt::format("Megatron's usual choice (TP{}, smallest PP that fits, SP, selective recompute, micro-batch 1) "
                           "is the best layout.\n", tp);
      } else {
        out += fmt::format("Megatron's usual choice ({}; PP{} is the smallest that fits) ranks {} of {}: "
                           "{:.1f}% fewer tokens/s than the best.\n", describe_layout(m.layout), m.layout.pp,
                           megatron_rank, ok, 100 * (1 - m.tokens_per_s / best.tokens_per_s));
        out += "why (best vs Megatron's, per step, largest difference first): " + why_faster(best, m) + ".\n";
      }
    } else if (!inference) {
      out += fmt::format("Megatron's usual choice (TP{}, SP, selective recompute, micro-batch 1) does not run at any PP "
                         "here.\n", tp);
    }
  }

  // Rejections: how many for which reason, one example each.
  std::map<std::string, std::pair<int, std::string>> rejected;   // "oom: activations" -> (count, example)
  int rejected_total = 0;
  for (const auto& r : ranked) {
    if (r.verdict == Verdict::ok) continue;
    ++rejected_total;
    std::string group = to_string(r.verdict);
    const std::string component = reason_group(r);
    if (!component.empty()) group += " (" + component + ")";
    auto& entry = rejected[group];
    if (entry.first++ == 0) entry.second = layout_id(r.layout) + ": " + r.reason;
  }
  out += fmt::format("\n{} layouts: {} ran, {} rejected\n", ranked.size(), ok, rejected_total);
  for (const auto& [group, entry] : rejected)
    out += fmt::format("  {:>5} {:<28} e.g. {}\n", entry.first, group, entry.second);
  return out;
}

ProgressFn progress_printer(bool terminal) {
  if (!terminal) return {};
  auto line = std::make_shared<ProgressLine>("tpsim plan", true);
  ProgressFn simulating = line->phase("simulating layouts", "layouts");
  // The callback owns the line, so it is erased when the sweep drops its last copy.
  return [line, simulating](int64_t done, int64_t total) { simulating(done, total); };
}

}  // namespace tpsim
