// A whole training step or inference request through lowering and the timing engine, and what it
// achieved. TP collectives are simulated as ops on tp_comm, or folded into the compute ops at their
// uncontended time (exact when nothing else shares the TP group's links) when the exact step would
// be too many ops to simulate quickly.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <vector>

#include "tpsim/step_lowering.hpp"
#include "tpsim/wall_clock.hpp"
#include "run/run_step.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/memory.hpp"
#include "tpsim/report.hpp"

namespace tpsim {
namespace {

// Above this many ops (all ranks), `auto` folds TP collectives: the exact step would take more than
// a few seconds. Each exact collective starts an actor per participant (stack mappings dominate):
// Llama-2-7B TP8 on dgx-h100 ran ~0.45 ms of wall time per estimated op (16 micro-batches, 32k
// ops: 14 s), so 1e4 keeps an exact step near 4 s.
constexpr double kExactOpsLimit = 1e4;

// Whether a TP group sits inside one node and no DP or PP peer shares that node (so the TP
// collectives' links carry nothing else and folding their uncontended time is exact).
bool tp_links_private(const Scenario& s) {
  const int per_node = std::max(1, s.topology.gpus_per_node);
  const bool inner = !s.plan.mesh_order.empty() && s.plan.mesh_order.front() == "tp";
  return inner && per_node % s.plan.tp == 0 && (s.plan.tp == per_node || (s.plan.dp == 1 && s.plan.pp == 1));
}


double estimated_ops(const Scenario& s, int64_t micro_batches) {
  const double layers = double(s.model.layers) / s.plan.pp;
  const double per_layer = s.plan.recompute == Recompute::full ? 12 : 8;
  return double(s.plan.world()) * double(micro_batches) * layers * per_layer;
}

// The peak MFU is measured against: the dtype the model's GEMMs compute in (workload.precision
// for inference: an FP8 W8A8 deployment against the FP8 peak).
double peak_flops(const Scenario& s) {
  const Precision p = precision_of(s);
  auto it = s.topology.gpu.peak_flops.find(gemm_compute_dtype(p.weights, p.activations));
  if (it == s.topology.gpu.peak_flops.end()) it = s.topology.gpu.peak_flops.find(DType::bf16);
  return it == s.topology.gpu.peak_flops.end() ? 0 : it->second;
}

// From this many GPUs `auto` simulates one DP replica (a full 1024-GPU step is ~10 s of SimGrid).
constexpr int kOneReplicaFrom = 512;

// The most collective time any GPU spent inside fused ops (folded TP collectives).
double folded_seconds(const Timeline& t) {
  double most = 0;
  for (const RankTotals& r : t.ranks) most = std::max(most, r.folded_communication);
  return most;
}

// One layer's forward and backward on GPU 0 (StepMetrics::layer_forward_s): per (layer,
// micro-batch, pass) the time from the first op's start to the last op's end (stalls before a
// layer's first op are the pipeline's, not the layer's), then the median over them.
void layer_times(const Timeline& t, StepMetrics& m) {
  std::map<std::tuple<int, int, bool>, std::pair<double, double>> windows;
  for (const Span& s : t.spans) {
    if (s.rank != 0 || s.layer < 0 || s.pass == Pass::optimizer || s.kind == "stall" || s.kind == "bubble") continue;
    const bool backward = s.pass == Pass::backward || s.recompute;
    auto [it, fresh] = windows.try_emplace({s.layer, s.micro_batch, backward}, s.start, s.end);
    it->second.first = std::min(it->second.first, s.start);
    it->second.second = std::max(it->second.second, s.end);
  }
  std::vector<double> forward, backward;
  for (const auto& [key, w] : windows) (std::get<2>(key) ? backward : forward).push_back(w.second - w.first);
  auto median = [](std::vector<double>& v) {
    std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  if (forward.empty() || backward.empty()) return;
  m.layer_samples = int(std::min(forward.size(), backward.size()));
  m.layer_forward_s = median(forward);
  m.layer_backward_s = median(backward);
}

// Every collective resolved once by the selector, then the programs timed.
Timeline resolve_and_simulate(const Topology& topology, ProgramSet& programs, const EngineOptions& engine) {
  const WallClock wall;
  resolve_collectives(topology, programs);
  spdlog::debug("collectives resolved in {:.3f} s wall, {:.0f} MiB resident", wall.lap(), resident_mib());
  return simulate(topology, programs, engine);
}

}  // namespace

// An oversubscribed spine is shared by all rails; a dragonfly under minimal routing puts every
// rail's ring between two groups on the same global links: there one replica timed alone would be
// many times too fast.
bool dp_links_private(const Topology& t) {
  if (t.intra.fabric == IntraFabric::pcie && t.intra.pcie_switches > 1) return false;
  std::vector<int> users(size_t(std::max(t.nic.count, 0)), 0);
  const auto nics = nics_of_gpus(t.nic, t.gpus_per_node);
  for (const auto& mine : nics)
    for (int n : mine)
      if (n >= 0 && n < t.nic.count && ++users[size_t(n)] > 1) return false;
  if (t.nic.socket_bandwidth > 0 && !t.nic.sockets.empty() && int(t.nic.gpu_sockets.size()) == t.gpus_per_node)
    for (int l = 0; l < t.gpus_per_node; ++l)
      for (int n : nics[size_t(l)])
        if (n >= 0 && n < int(t.nic.sockets.size()) && t.nic.sockets[size_t(n)] != t.nic.gpu_sockets[size_t(l)]) return false;
  switch (t.network.kind) {
    case NetworkKind::single_switch: return true;
    case NetworkKind::fat_tree: return t.network.oversubscription <= 1;
    case NetworkKind::dragonfly: return t.network.routing == GroupRouting::adaptive && t.network.oversubscription <= 1;
  }
  return false;
}

void run_step(const Scenario& s, const RunOptions& options, RunResult& result) {
  StepMetrics m;
  m.training = s.workload.kind == WorkloadKind::training;
  m.memory = peak_memory(s);
  for (int stage = 0; stage < s.plan.pp; ++stage) m.memory_per_stage.push_back(memory_per_gpu(s, stage));
  EngineOptions engine;
  engine.fidelity = Fidelity::flow;   // collectives as concurrent per-edge flows: exact for rings, fast
  lowering::StepOptions step;

  if (m.training) {
    m.micro_batches_per_step = lowering::micro_batches_per_step(s);
    const int64_t partial = s.workload.partial_micro_batches;
    m.micro_batches = partial > 0 ? std::min(partial, m.micro_batches_per_step) : m.micro_batches_per_step;
    m.partial = m.micro_batches < m.micro_batches_per_step;
    step.micro_batches = m.micro_batches;
    // `auto` keeps TP collectives as real ops on tp_comm whenever the step is small enough, so the
    // timeline shows where GPUs stall on them; it folds only when the exact step would be too slow.
    const bool fold = options.tp_collectives == "folded" ||
                      (options.tp_collectives == "auto" && s.plan.tp > 1 &&
                       estimated_ops(s, m.micro_batches) > kExactOpsLimit);
    step.fold_tp = fold;
    m.tp_collectives = fold ? "folded" : "exact";
    if (fold && options.tp_collectives == "auto" && !tp_links_private(s))
      spdlog::warn("TP collectives folded at their uncontended time although their links carry other traffic: "
                   "contention on them is not modelled (use --tp-collectives exact for the full simulation)");
    const bool shared = !dp_links_private(s.topology);
    const bool one = s.plan.dp > 1 && (options.dp_replicas == "one" ||
                                       (options.dp_replicas == "auto" && s.plan.world() >= kOneReplicaFrom && !shared));
    if (options.shortcut_warnings && s.plan.dp > 1 && shared && options.dp_replicas != "all" &&
        (one || s.plan.world() >= kOneReplicaFrom))
      spdlog::warn(one ? "one DP replica simulated although the DP groups of different GPUs share links (shared NICs, "
                         "socket or PCIe uplinks, an oversubscribed or minimal-routing network): their DP collectives "
                         "are timed alone, contention on those links is not modelled (use --dp-replicas all)"
                       : "every DP replica simulated: the DP groups of different GPUs share links (shared NICs, socket "
                         "or PCIe uplinks, an oversubscribed or minimal-routing network), so one replica timed alone "
                         "would miss their contention");
    step.one_dp_replica = one;
    m.dp_replicas = one ? "one" : "all";
    spdlog::info("lowering a training step: {} of {} micro-batches per replica, TP collectives {}", m.micro_batches,
                 m.micro_batches_per_step, m.tp_collectives);
    const WallClock wall;
    ProgramSet programs = lowering::lower_training_step(s, step);
    spdlog::debug("lowered in {:.3f} s wall, {:.0f} MiB resident", wall.lap(), resident_mib());
    spdlog::info("lowered; resolving collectives and simulating");
    if (options.progress)
      engine.progress = options.progress(fmt::format("simulating the training step on {} GPUs", programs.ranks.size()), "ops");
    result.timeline = resolve_and_simulate(s.topology, programs, engine);
    spdlog::info("simulated");
    m.tp_comm_folded_s = folded_seconds(result.timeline);
    if (!fold) layer_times(result.timeline, m);   // folded pieces span several layers
    m.step_time_s = result.timeline.makespan;
    const int64_t sequences = m.micro_batches * s.workload.micro_batch * s.plan.dp;
    m.tokens_per_s = m.step_time_s > 0 ? double(sequences * s.workload.seq) / m.step_time_s : 0;
    m.model_flops = model_flops_per_step(s.model, sequences, s.workload.seq, s.plan.recompute);
  } else {
    // A request is its prefill, then generate - 1 decode steps. Both are simulated op by op (a few
    // thousand ops), so TP collectives show in the communication rows; decode cost is linear in
    // the context, so the step at the mean context (prompt + (generate + 1) / 2) times every decode
    // step exactly on average.
    const WorkloadSpec& w = s.workload;
    m.tp_collectives = "exact";
    ProgramSet prefill = lowering::lower_inference_step(s, false, w.prompt, step);
    const Timeline prefill_t = resolve_and_simulate(s.topology, prefill, engine);
    m.decode_context = w.prompt + (w.generate + 1) / 2;
    ProgramSet decode = lowering::lower_inference_step(s, true, m.decode_context, step);
    const Timeline decode_t = resolve_and_simulate(s.topology, decode, engine);
    m.prefill_s = prefill_t.makespan;
    m.decode_step_s = decode_t.makespan;
    m.ttft_s = m.prefill_s;
    m.tpot_s = m.decode_step_s;
    m.step_time_s = m.prefill_s + double(std::max<int64_t>(0, w.generate - 1)) * m.decode_step_s;
    m.tokens_per_s = m.step_time_s > 0 ? double(w.batch * w.generate) / m.step_time_s : 0;
    // Forward only: 2 FLOPs per weight per token (+ attention) for prompt and generated tokens.
    m.model_flops = layer_forward_flops(s.model, w.batch * (w.prompt + w.generate), m.decode_context) * double(s.model.layers) +
                    2.0 * double(w.batch * (w.prompt + w.generate)) * double(s.model.hidden) * double(s.model.vocab);
    const RunTotals p = totals(prefill_t), d = totals(decode_t);
    m.prefill_compute_s = p.compute, m.prefill_communication_s = p.communication, m.prefill_exposed_s = p.exposed_communication;
    m.decode_compute_s = d.compute, m.decode_communication_s = d.communication, m.decode_exposed_s = d.exposed_communication;
    // The timeline shows the prefill, then one decode step after it (traces and pictures).
    result.timeline = prefill_t;
    for (Span span : decode_t.spans) {
      span.start += prefill_t.makespan;
      span.end += prefill_t.makespan;
      result.timeline.spans.push_back(std::move(span));
    }
    for (size_t r = 0; r < result.timeline.ranks.size() && r < decode_t.ranks.size(); ++r) {
      RankTotals& a = result.timeline.ranks[r];
      const RankTotals& b = decode_t.ranks[r];
      a.compute += b.compute, a.communication += b.communication, a.exposed_communication += b.exposed_communication;
      a.bubble += b.bubble, a.idle += b.idle;
    }
    result.timeline.makespan = prefill_t.makespan + decode_t.makespan;
  }
  const double gpus = s.plan.world();
  m.tflops_per_gpu = m.step_time_s > 0 ? m.model_flops / (m.step_time_s * gpus) / 1e12 : 0;
  const double peak = peak_flops(s);
  m.mfu = peak > 0 ? m.tflops_per_gpu * 1e12 / peak : 0;
  result.scope = "step";
  result.step = std::move(m);
}

}  // namespace tpsim
