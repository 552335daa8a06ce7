// Terminal summary and JSON of a run: step time and where it went, then the numerical verdict.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "tpsim/report.hpp"

namespace tpsim {

std::string format_seconds(double s) {
  const double a = std::fabs(s);
  if (a == 0) return "0 s";
  if (a < 1e-6) return fmt::format("{:.1f} ns", s * 1e9);
  if (a < 1e-3) return fmt::format("{:.1f} us", s * 1e6);
  if (a < 1) return fmt::format("{:.3f} ms", s * 1e3);
  return fmt::format("{:.3f} s", s);
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(b) >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.1f} {}", b, units[u]);
}

RunTotals totals(const Timeline& t) {
  RunTotals r;
  r.step_time = t.makespan;
  for (const auto& k : t.ranks) {
    r.compute = std::max(r.compute, k.compute);
    r.communication = std::max(r.communication, k.communication);
    r.exposed_communication = std::max(r.exposed_communication, k.exposed_communication);
    r.bubble = std::max(r.bubble, k.bubble);
    r.idle = std::max(r.idle, k.idle);
  }
  return r;
}

namespace {

std::string percent_of(double part, double whole) {
  return whole > 0 ? fmt::format("{:5.1f}%", 100 * part / whole) : "   - ";
}

}  // namespace

std::string summary_text(const RunResult& r) {
  const Scenario& s = r.scenario;
  const RunTotals t = totals(r.timeline);
  std::string out;
  out += fmt::format("scenario   {}\n", s.name);
  out += fmt::format("cluster    {} ({} node{} x {} {}, {} GPUs)\n", s.topology.name, s.topology.nodes,
                     s.topology.nodes == 1 ? "" : "s", s.topology.gpus_per_node, s.topology.gpu.name,
                     s.topology.total_gpus());
  out += fmt::format("model      {} (hidden {}, {} layers, {} heads)\n", s.model.name, s.model.hidden,
                     s.model.layers, s.model.heads);
  out += fmt::format("plan       {}: tp {} x pp {} x dp {}{}\n", s.plan.name, s.plan.tp, s.plan.pp,
                     s.plan.dp, s.plan.sp ? ", sequence parallel" : "");
  out += fmt::format("simulated  {} ({} tokens per micro-batch)\n\n", r.scope,
                     s.workload.micro_batch * s.workload.seq);
  out += fmt::format("{:<34}{:>12}{:>9}\n", "time (slowest GPU)", "", "of step");
  out += fmt::format("{:<34}{:>12}{:>9}\n", "  step time", format_seconds(t.step_time), "100.0%");
  out += fmt::format("{:<34}{:>12}{:>9}\n", "  compute", format_seconds(t.compute),
                     percent_of(t.compute, t.step_time));
  out += fmt::format("{:<34}{:>12}{:>9}\n", "  communication (on comm streams)", format_seconds(t.communication),
                     percent_of(t.communication, t.step_time));
  out += fmt::format("{:<34}{:>12}{:>9}\n", "  stalled on communication", format_seconds(t.exposed_communication),
                     percent_of(t.exposed_communication, t.step_time));
  if (t.bubble > 0)
    out += fmt::format("{:<34}{:>12}{:>9}\n", "  pipeline bubble", format_seconds(t.bubble),
                       percent_of(t.bubble, t.step_time));
  if (r.numerics) {
    const NumericsReport& n = *r.numerics;
    out += fmt::format("\nnumerics   {} scale, {}: {} tensors compared, max abs error {:.3g}, max rel error {:.3g}\n",
                       r.numerics_scale, to_string(n.dtype), n.checks.size(), n.max_abs, n.max_rel);
    if (n.ok) {
      out += "verdict    PASS: the sharded plan computes the same function as the unsharded model\n";
    } else if (const TensorCheck* f = n.first_failure()) {
      out += fmt::format("verdict    FAIL at {} (tensor {}, rank {}): rel error {:.3g} > tolerance {:.3g}\n", f->op,
                         f->tensor, f->rank, f->max_rel, f->tolerance);
    }
  } else {
    out += "\nnumerics   off\n";
  }
  return out;
}

nlohmann::json to_json(const RunResult& r) {
  const RunTotals t = totals(r.timeline);
  nlohmann::json j;
  const Scenario& s = r.scenario;
  j["scenario"] = s.name;
  j["topology"] = s.topology.name;
  j["model"] = s.model.name;
  j["plan"] = {{"name", s.plan.name}, {"tp", s.plan.tp}, {"pp", s.plan.pp}, {"dp", s.plan.dp}, {"sp", s.plan.sp}};
  j["scope"] = r.scope;
  j["step_time_s"] = t.step_time;
  j["compute_s"] = t.compute;
  j["communication_s"] = t.communication;
  j["exposed_communication_s"] = t.exposed_communication;
  j["pipeline_bubble_s"] = t.bubble;
  nlohmann::json ranks = nlohmann::json::array();
  for (size_t i = 0; i < r.timeline.ranks.size(); ++i) {
    const auto& k = r.timeline.ranks[i];
    ranks.push_back({{"rank", i}, {"compute_s", k.compute}, {"communication_s", k.communication},
                     {"exposed_communication_s", k.exposed_communication}, {"pipeline_bubble_s", k.bubble},
                     {"idle_s", k.idle}});
  }
  j["ranks"] = ranks;
  if (r.numerics) {
    const NumericsReport& n = *r.numerics;
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& c : n.checks)
      checks.push_back({{"op", c.op}, {"tensor", c.tensor}, {"rank", c.rank}, {"max_abs_error", c.max_abs},
                        {"max_rel_error", c.max_rel}, {"tolerance", c.tolerance}, {"rule", c.rule}, {"ok", c.ok}});
    j["numerics"] = {{"scale", r.numerics_scale}, {"dtype", to_string(n.dtype)}, {"ok", n.ok},
                     {"max_abs_error", n.max_abs}, {"max_rel_error", n.max_rel}, {"checks", checks}};
  } else {
    j["numerics"] = nullptr;
  }
  return j;
}

}  // namespace tpsim
