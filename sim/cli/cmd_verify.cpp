// `tpsim verify [SCENARIO]`: lower the scenario sharded and unsharded, run both on the CPU and
// print, per compared tensor, the error beside the tolerance and the rule it came from.
#include <fmt/core.h>

#include <map>
#include <memory>

#include "cli/commands.hpp"
#include "tpsim/progress.hpp"
#include "tpsim/lower.hpp"
#include "tpsim/run.hpp"
#include "tpsim/numerics.hpp"

namespace tpsim::cli {

namespace {

struct VerifyArgs {
  ScenarioOptions scenario;
  std::string dtype = "fp32";
  std::string scale;   // "" = the scenario's numerics setting (proxy unless it says full)
  std::string scope = "layers";
  bool forward_only = false;
  std::string dump;   // "" = no dump
};

// The worst check of each (op, tensor) over the ranks, in first-seen order.
std::vector<TensorCheck> per_tensor(const NumericsReport& r) {
  std::vector<TensorCheck> rows;
  std::map<std::pair<std::string, std::string>, size_t> index;
  for (const TensorCheck& c : r.checks) {
    auto [it, fresh] = index.emplace(std::make_pair(c.op, c.tensor), rows.size());
    if (fresh) {
      rows.push_back(c);
      continue;
    }
    TensorCheck& row = rows[it->second];
    const bool worse = (!c.ok && row.ok) || (c.ok == row.ok && c.max_rel > row.max_rel);
    if (worse) row = c;
  }
  return rows;
}

std::string dims(const ModelSpec& m, const WorkloadSpec& w) {
  return fmt::format("hidden {}, ffn {}, heads {}/{} kv, vocab {}, layers {}, seq {} x micro-batch {}", m.hidden, m.ffn,
                     m.heads, m.kv_heads, m.vocab, m.layers, w.seq, w.micro_batch);
}

// The model and workload as the oracle rebuilds them (manifest.json's "model").
nlohmann::json model_json(const Scenario& s, const std::string& scope) {
  const ModelSpec& m = s.model;
  return {{"name", m.name},
          {"hidden", m.hidden},
          {"heads", m.heads},
          {"kv_heads", m.kv_heads},
          {"head_dim", m.head_dim()},
          {"ffn", m.ffn},
          {"vocab", m.vocab},
          {"layers", m.layers},
          {"activation", m.activation == Activation::swiglu ? "swiglu" : "gelu"},
          {"norm", m.norm == Norm::rmsnorm ? "rmsnorm" : "layernorm"},
          {"seq", s.workload.seq},
          {"micro_batch", s.workload.micro_batch},
          {"scope", scope}};
}

}  // namespace

void register_verify(CLI::App& app) {
  auto args = std::make_shared<VerifyArgs>();
  auto* cmd = app.add_subcommand(
      "verify", "Check numerically that the sharded plan computes the unsharded model (forward and backward)");
  add_scenario_options(*cmd, args->scenario);
  cmd->add_option("--dtype", args->dtype, "fp32, or bf16 storage with fp32 accumulation")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--scale", args->scale, "proxy (shrunk dimensions, exact divisions) or full (true sizes)")
      ->check(CLI::IsMember({"proxy", "full"}));
  cmd->add_option("--scope", args->scope,
                  "layers (model.layers layers), stack (+ embedding, output, cross-entropy), block (one attention + MLP block)")
      ->check(CLI::IsMember({"layers", "stack", "block"}));
  cmd->add_flag("--forward-only", args->forward_only, "Skip the backward pass");
  cmd->add_option("--dump", args->dump,
                  "Also write the unsharded run's inputs, weights, outputs and gradients to DIR as .npy files with a "
                  "manifest.json (for tests/oracle/torch_oracle.py); always fp32, whatever --dtype says");
  cmd->callback([args] {
    const Scenario as_loaded = load_scenario(args->scenario.request());
    const bool full = args->scale.empty() ? as_loaded.numerics == "full" : args->scale == "full";
    const Scenario scenario = full ? as_loaded : proxy_scale(as_loaded);
    LowerOptions lo;
    lo.scope = args->scope == "block" ? LowerScope::block : LowerScope::stack;
    lo.embedding_and_loss = args->scope == "stack";
    lo.backward = !args->forward_only;
    NumericsOptions no;
    no.dtype = args->dtype == "bf16" ? DType::bf16 : DType::fp32;
    const PlanSpec& p = scenario.plan;
    fmt::print("verify {}: {} {} ({})\n", scenario.name, scenario.model.name, full ? "full size" : "proxy-scaled",
               dims(scenario.model, scenario.workload));
    fmt::print("plan {}: tp={} pp={} dp={} sp={}, {} {}, {}\n\n", p.name.empty() ? "(inline)" : p.name, p.tp, p.pp, p.dp,
               p.sp ? "on" : "off", args->scope, lo.backward ? "forward+backward" : "forward", args->dtype);

    if (!args->dump.empty()) {
      const int n = dump_reference(lower(unsharded(dropless_numerics(scenario)), lo), no.seed, model_json(scenario, args->scope),
                                             args->dump);
      fmt::print("dumped {} tensors of the unsharded run to {}\n\n", n, args->dump);
    }

    // The collectives run the instances the timing resolves for the same ops at full size.
    NumericsReport report;
    {
      ProgressLine progress("tpsim verify", progress_wanted());   // erased before the table prints
      no.progress = progress.phases();
      report = verify_as_timed(as_loaded, !full, lo, no);
    }
    fmt::print("collective instances executed (as tpsim run times them on {}):\n", as_loaded.topology.name);
    for (const std::string& key : report.instances) fmt::print("  {}\n", key);
    if (report.instances.empty()) fmt::print("  none\n");
    fmt::print("\n");
    const std::vector<TensorCheck> rows = per_tensor(report);
    size_t op_width = 2, tensor_width = 6;
    for (const auto& c : rows) {
      op_width = std::max(op_width, c.op.size());
      tensor_width = std::max(tensor_width, c.tensor.size());
    }
    fmt::print("{:<{}}  {:<{}}  {:>10}  {:>10}  {:>10}  {}\n", "op", op_width, "tensor", tensor_width, "max abs",
               "max rel", "rel tol", "rule");
    for (const auto& c : rows)
      fmt::print("{:<{}}  {:<{}}  {:>10.3e}  {:>10.3e}  {:>10.3e}  {}{}\n", c.op, op_width, c.tensor, tensor_width,
                 c.max_abs, c.max_rel, c.tolerance, c.ok ? "" : "FAIL ", c.rule);
    if (report.ok) {
      fmt::print("\nverdict: PASS: {} tensors on {} ranks match the unsharded run (max rel error {:.2e})\n", rows.size(),
                 p.world(), report.max_rel);
      return;
    }
    size_t failed = 0;
    for (const auto& c : rows) failed += c.ok ? 0 : 1;
    fmt::print("\nverdict: FAIL: {} of {} tensors differ from the unsharded run; first: {}\n", failed, rows.size(),
               describe(*report.first_failure()));
    throw Exit{kVerificationFailed};
  });
}

}  // namespace tpsim::cli
