// Checks after reading: sizes positive, fractions in range, and the cross-checks between parts (the
// plan divides the model, the mesh fits the topology, the batch splits). Each error names the key
// at fault and points at the line that set it, or the --set flag that did.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <vector>

#include "spec/limits.hpp"
#include "spec/loading.hpp"
#include "spec/yaml_reader.hpp"
#include "tpsim/partition.hpp"

namespace tpsim::spec_detail {

// How many nodes one tp group touches: its ranks are tp-stride apart, the stride being the product
// of the mesh axes inside tp in mesh_order.
int64_t tp_group_nodes(const PlanSpec& p, int gpus_per_node) {
  int64_t stride = 1;
  for (const auto& axis : p.mesh_order) {
    if (axis == "tp") break;
    stride *= axis == "dp" ? p.dp : p.pp;
  }
  std::vector<int64_t> nodes;
  for (int64_t i = 0; i < p.tp; ++i) nodes.push_back(i * stride / std::max(1, gpus_per_node));
  return static_cast<int64_t>(std::unique(nodes.begin(), nodes.end()) - nodes.begin());
}

namespace {

class Checker {
 public:
  Checker(const Locations& where, std::string fallback_file) : where_(where), fallback_(std::move(fallback_file)) {}

  // The key itself if it was recorded, else its nearest recorded parent ("plan.tp" -> "plan").
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    for (std::string k = key; !k.empty(); k = k.substr(0, k.rfind('.') == std::string::npos ? 0 : k.rfind('.'))) {
      auto it = where_.find(k);
      if (it == where_.end()) continue;
      const Where& w = it->second;
      if (!w.label.empty()) throw InputError("", 0, 0, k == key ? w.label : key, problem);
      throw InputError(w.file, w.line, w.column, key, problem);
    }
    throw InputError(fallback_, 0, 0, key, problem);
  }
  void positive(const std::string& key, double v) const {
    if (!(v > 0)) fail(key, fmt::format("must be positive, got {:g}", v));
  }
  void non_negative(const std::string& key, double v) const {
    if (!(v >= 0)) fail(key, fmt::format("must not be negative, got {:g}", v));
  }
  // Whether the key was written (in a file or by a flag), not left at its default.
  bool given(const std::string& key) const { return where_.count(key) > 0; }
  bool from_flag(const std::string& key) const {
    auto it = where_.find(key);
    return it != where_.end() && !it->second.label.empty();
  }
  void fraction(const std::string& key, double v) const {
    if (!(v > 0 && v <= 1)) fail(key, fmt::format("expected a fraction in (0, 1], got {:g}", v));
  }

 private:
  const Locations& where_;
  std::string fallback_;
};

std::string list(const std::vector<int>& xs) {
  std::vector<std::string> s;
  for (int x : xs) s.push_back(std::to_string(x));
  return "{" + join(s, ", ") + "}";
}

// Which NICs each GPU uses and how it reaches them: every GPU has a NIC on a multi-node topology,
// GPUs that share a NIC share all of them (a GPU's traffic spreads evenly over its NICs, so a
// partial overlap would have no single rate), and a GPU whose NICs hang off another socket
// crosses a socket link that the topology must size.
void check_nic_layout(const Checker& c, const Topology& t) {
  const NicSpec& nic = t.nic;
  const auto of = nics_of_gpus(nic, t.gpus_per_node);
  for (size_t i = 0; i < nic.gpus.size(); ++i)
    for (size_t k = 0; k < nic.gpus[i].size(); ++k)
      if (std::count(nic.gpus[i].begin(), nic.gpus[i].begin() + k, nic.gpus[i][k]))
        c.fail("topology.nic.gpus", fmt::format("NIC {} lists GPU {} twice", i, nic.gpus[i][k]));
  const bool any_served = std::any_of(of.begin(), of.end(), [](const auto& nics) { return !nics.empty(); });
  for (int g = 0; g < t.gpus_per_node; ++g) {
    // Even on one node: the same file runs with --set topology.nodes=N, and describe() would show
    // a node where some GPUs have NICs and others none.
    if (of[g].empty() && (t.nodes > 1 || any_served))
      c.fail("topology.nic.gpus", fmt::format("GPU {} is served by no NIC, so it cannot reach other nodes", g));
    for (int h = 0; h < g; ++h) {
      std::vector<int> common;
      std::set_intersection(of[g].begin(), of[g].end(), of[h].begin(), of[h].end(), std::back_inserter(common));
      if (!common.empty() && of[g] != of[h])
        c.fail("topology.nic.gpus", fmt::format("GPUs {} and {} share NIC {} but not all their NICs ({} vs {}): GPUs "
                                                "that share a NIC must use the same NICs",
                                                h, g, common.front(), list(of[h]), list(of[g])));
    }
  }
  c.non_negative("topology.nic.pcie_bandwidth", nic.pcie_bandwidth);
  c.non_negative("topology.nic.socket_bandwidth", nic.socket_bandwidth);
  if (nic.sockets.empty() != nic.gpu_sockets.empty())
    c.fail(nic.sockets.empty() ? "topology.nic.sockets" : "topology.nic.gpu_sockets",
           "nic.sockets (per NIC) and nic.gpu_sockets (per GPU) go together: give both or neither");
  if (nic.sockets.empty()) return;
  if (int(nic.sockets.size()) != nic.count)
    c.fail("topology.nic.sockets", fmt::format("lists {} sockets for {} NICs", nic.sockets.size(), nic.count));
  if (int(nic.gpu_sockets.size()) != t.gpus_per_node)
    c.fail("topology.nic.gpu_sockets",
           fmt::format("lists {} sockets for {} GPUs per node", nic.gpu_sockets.size(), t.gpus_per_node));
  for (const auto* v : {&nic.sockets, &nic.gpu_sockets})
    for (int x : *v)
      if (x < 0 || x >= 8)
        c.fail(v == &nic.sockets ? "topology.nic.sockets" : "topology.nic.gpu_sockets",
               fmt::format("expected a socket index in 0..7, got {}", x));
  for (int g = 0; g < t.gpus_per_node; ++g) {
    if (of[g].empty()) continue;
    for (int i : of[g])
      if (nic.sockets[i] != nic.sockets[of[g].front()])
        c.fail("topology.nic.sockets", fmt::format("GPU {}'s NICs {} and {} hang off different sockets ({} and {})", g,
                                                   of[g].front(), i, nic.sockets[of[g].front()], nic.sockets[i]));
    if (nic.sockets[of[g].front()] != nic.gpu_sockets[g] && !(nic.socket_bandwidth > 0))
      c.fail("topology.nic.socket_bandwidth",
             fmt::format("GPU {} (socket {}) uses NIC {} on socket {}: give the link between sockets its bandwidth", g,
                         nic.gpu_sockets[g], of[g].front(), nic.sockets[of[g].front()]));
  }
}

void check_topology_with(const Checker& c, const Topology& t) {
  for (const auto& [dtype, flops] : t.gpu.peak_flops)
    c.positive(std::string("topology.gpu.peak.") + to_string(dtype), flops);
  c.positive("topology.gpu.hbm", t.gpu.hbm_bytes);
  c.positive("topology.gpu.hbm_bandwidth", t.gpu.hbm_bandwidth);
  c.fraction("topology.gpu.hbm_efficiency", t.gpu.hbm_efficiency);
  c.positive("topology.gpu.sms", t.gpu.sms);
  c.non_negative("topology.gpu.launch_overhead", t.gpu.launch_overhead);
  c.fraction("topology.gpu.gemm_efficiency", t.gpu.gemm_efficiency);
  if (t.gpu.gemm_efficiency_fp8 != 0) c.fraction("topology.gpu.gemm_efficiency_fp8", t.gpu.gemm_efficiency_fp8);
  c.non_negative("topology.gpu.attention_score_bytes", t.gpu.attention_score_bytes);
  c.positive("topology.gpus_per_node", t.gpus_per_node);
  c.positive("topology.nodes", t.nodes);

  const IntraNodeSpec& in = t.intra;
  c.positive("topology.intra.bandwidth", in.bandwidth);
  c.fraction("topology.intra.efficiency", in.efficiency);
  c.non_negative("topology.intra.latency", in.latency);
  if (in.nvls && in.fabric != IntraFabric::nvswitch)
    c.fail("topology.intra.nvls", "nvls (in-switch reduction) needs fabric nvswitch");
  if (in.nvls) c.positive("topology.intra.nvls_bandwidth", in.nvls_bandwidth);
  if (in.fabric == IntraFabric::pcie) {
    c.positive("topology.intra.pcie_switches", in.pcie_switches);
    if (t.gpus_per_node % in.pcie_switches != 0)
      c.fail("topology.intra.pcie_switches", fmt::format("{} PCIe switches do not split {} GPUs evenly",
                                                         in.pcie_switches, t.gpus_per_node));
    c.positive("topology.intra.host_bandwidth", in.host_bandwidth);
  }

  const NicSpec& nic = t.nic;
  if (t.nodes > 1 && nic.count == 0)
    c.fail("topology.nic", fmt::format("a topology of {} nodes needs a nic section (count, bandwidth)", t.nodes));
  if (nic.count != 0 || !nic.gpus.empty()) {
    c.positive("topology.nic.count", nic.count);
    c.positive("topology.nic.bandwidth", nic.bandwidth);
    c.fraction("topology.nic.efficiency", nic.efficiency);
    c.non_negative("topology.nic.latency", nic.latency);
    if (static_cast<int>(nic.gpus.size()) != nic.count)
      c.fail("topology.nic.gpus", fmt::format("lists {} NICs but nic.count is {}", nic.gpus.size(), nic.count));
    for (size_t i = 0; i < nic.gpus.size(); ++i)
      for (int g : nic.gpus[i])
        if (g < 0 || g >= t.gpus_per_node)
          c.fail("topology.nic.gpus", fmt::format("NIC {} serves GPU {}, outside 0..{} (gpus_per_node {})", i, g,
                                                  t.gpus_per_node - 1, t.gpus_per_node));
    check_nic_layout(c, t);
  }

  c.non_negative("topology.network.switch_latency", t.network.switch_latency);
  if (t.network.kind != NetworkKind::single_switch) {
    const bool dragonfly = t.network.kind == NetworkKind::dragonfly;
    const std::string per_key = dragonfly ? "topology.network.nodes_per_group" : "topology.network.nodes_per_leaf";
    c.positive(per_key, t.network.nodes_per_leaf);
    if (!(t.network.oversubscription >= 1))
      c.fail("topology.network.oversubscription",
             fmt::format("expected a ratio >= 1 (2 = 2:1), got {:g}", t.network.oversubscription));
    const int64_t modelled = (int64_t(t.nodes) + t.network.nodes_per_leaf - 1) / t.network.nodes_per_leaf;
    if (dragonfly && t.network.groups != 0 && t.network.groups < modelled)
      c.fail("topology.network.groups",
             fmt::format("the machine's group count must hold the topology's {} nodes in groups of {} ({} groups), got {}",
                         t.nodes, t.network.nodes_per_leaf, modelled, t.network.groups));
    // A link per ordered pair of groups: past this SimGrid's platform alone would take gigabytes.
    if (dragonfly && t.network.routing == GroupRouting::minimal && modelled > limits::kMinimalRoutingGroups)
      c.fail(per_key, fmt::format("minimal routing models a global link per pair of groups, at most {} groups; {} nodes "
                                  "in groups of {} make {}: use larger groups or routing: adaptive",
                                  limits::kMinimalRoutingGroups, t.nodes, t.network.nodes_per_leaf, modelled));
  }
  c.non_negative("topology.price_per_gpu_hour", t.price_per_gpu_hour);

  c.non_negative("topology.collectives.launch_latency", t.collectives.launch_latency);
  c.fraction("topology.collectives.nvls_tree_efficiency", t.collectives.nvls_tree_efficiency);
  for (size_t i = 0; i < t.collectives.protocols.size(); ++i) {
    const ProtocolSpec& p = t.collectives.protocols[i];
    const std::string at = fmt::format("topology.collectives.protocols[{}].", i);
    c.non_negative(at + "base_latency", p.base_latency);
    c.non_negative(at + "intra_step_latency", p.intra_step_latency);
    c.non_negative(at + "inter_step_latency", p.inter_step_latency);
    c.fraction(at + "efficiency", p.efficiency);
    c.non_negative(at + "max_bandwidth", p.max_bandwidth);
    c.non_negative(at + "min_time", p.min_time);
  }
}

// A mixture-of-experts layer: each token picks top_k of `experts` experts, each an FFN of width
// expert_ffn, which is also the model's ffn (the experts are the MLP).
void check_moe(const Checker& c, const ModelSpec& m) {
  const MoeSpec& e = m.moe;
  if (e.experts == 0 && !c.given("model.moe") && !c.given("model.moe.experts")) return;   // a dense model
  if (e.experts < 1)
    c.fail("model.moe.experts", fmt::format("expected at least 1 expert per layer, got {}", e.experts));
  if (e.top_k < 1 || e.top_k > e.experts)
    c.fail("model.moe.top_k", fmt::format("expected 1 <= top_k <= experts = {} (each token picks top_k different "
                                          "experts), got {}",
                                          e.experts, e.top_k));
  c.positive("model.moe.expert_ffn", static_cast<double>(e.expert_ffn));
  c.non_negative("model.moe.shared_expert_ffn", static_cast<double>(e.shared_expert_ffn));
  if (e.shared_expert_gate && e.shared_expert_ffn <= 0)
    c.fail("model.moe.shared_expert_gate", "gates a shared expert, but moe.shared_expert_ffn is 0 (there is none)");
  if (m.ffn != e.expert_ffn)
    c.fail("model.ffn", fmt::format("ffn {} differs from moe.expert_ffn {}: a mixture-of-experts model's MLP is its "
                                    "experts",
                                    m.ffn, e.expert_ffn));
  // An expert's slots per source rank are capacity_factor x top_k x tokens / experts; past
  // experts / top_k they outnumber the tokens, of which an expert receives each at most once.
  const double most = static_cast<double>(e.experts) / static_cast<double>(e.top_k);
  if (!(std::isfinite(e.capacity_factor) && e.capacity_factor >= 0 && e.capacity_factor <= most))
    c.fail("model.moe.capacity_factor",
           fmt::format("expected 0 (dropless) or a factor up to experts / top_k = {:g}, got {:g}: an expert's slots "
                       "are capacity_factor x top_k x tokens / experts, and past experts / top_k they outnumber the "
                       "tokens",
                       most, e.capacity_factor));
  const int per_expert = m.activation == Activation::swiglu ? 3 : 2;   // fc1 (+gate), fc2
  const long double weights = static_cast<long double>(m.layers) * e.experts * per_expert * m.hidden * e.expert_ffn;
  if (weights > static_cast<long double>(limits::kParameters))
    c.fail("model.moe.experts", fmt::format("{} layers x {} experts x hidden {} x expert_ffn {} are ~{:.3g} expert "
                                            "weights, more than the 2^62 tpsim counts",
                                            m.layers, e.experts, m.hidden, e.expert_ffn, static_cast<double>(weights)));
}

void check_model_with(const Checker& c, const ModelSpec& m) {
  // A mixture-of-experts model's ffn is its experts' width, written (if at all) as moe.expert_ffn.
  const char* ffn_key = m.moe.enabled() ? "model.moe.expert_ffn" : "model.ffn";
  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"model.hidden", m.hidden}, {ffn_key, m.ffn},
                               {"model.heads", m.heads}, {"model.kv_heads", m.kv_heads}, {"model.layers", m.layers},
                               {"model.vocab", m.vocab}, {"model.max_seq", m.max_seq}})
    c.positive(key, static_cast<double>(v));
  if (m.hidden % m.heads != 0)
    c.fail("model.hidden", fmt::format("hidden {} is not divisible by heads {}", m.hidden, m.heads));
  if (m.heads % m.kv_heads != 0)
    c.fail("model.kv_heads", fmt::format("heads {} is not divisible by kv_heads {} (each KV head serves a whole group)",
                                         m.heads, m.kv_heads));
  check_moe(c, m);
}

void check_plan_with(const Checker& c, const PlanSpec& p) {
  c.positive("plan.tp", p.tp);
  c.positive("plan.pp", p.pp);
  c.positive("plan.dp", p.dp);
  c.positive("plan.ep", p.ep);
  c.positive("plan.cp", p.cp);
  if (p.dp > 0 && p.dp % p.ep != 0)
    c.fail("plan.ep", fmt::format("ep {} does not divide dp {}: expert parallelism is carved out of data parallelism "
                                  "(ep DP replicas share out the experts)",
                                  p.ep, p.dp));
  c.positive("plan.virtual_stages", p.virtual_stages);
  c.positive("plan.tp_allreduce_max", p.tp_allreduce_max);
  if (p.virtual_stages > 1 && p.pp < 2)
    c.fail("plan.virtual_stages", fmt::format("virtual_stages {} interleaves pipeline stages and needs pp >= 2, got pp {}",
                                              p.virtual_stages, p.pp));
}

// A row-parallel linear told its input is already split (input_is_parallel: true) must follow a
// column-parallel linear that keeps its output split; after a gathered, row-parallel or replicated
// one its input is whole, and lowering stops on mismatched shapes with no file or line.
void check_mapping_shapes(const Checker& c, const PlanSpec& p) {
  if (p.tp < 2) return;
  const auto gathers = [&](const std::string& key) {
    auto it = p.mappings.find(key);
    if (it != p.mappings.end() && it->second.gather_output) return *it->second.gather_output;
    return p.preset == PlanPreset::naive && !has_partition(p, key);
  };
  for (const auto& [producer, consumer] : {std::pair<const char*, const char*>{"attn.qkv", "attn.proj"}, {"mlp.fc1", "mlp.fc2"}}) {
    auto it = p.mappings.find(consumer);
    if (it == p.mappings.end() || !it->second.input_is_parallel.value_or(false) || tp_split_dim(p, consumer) != 0) continue;
    const int split = tp_split_dim(p, producer);
    if (split == 1 && !gathers(producer)) continue;
    const std::string why = split != 1 ? fmt::format("{} is not column-parallel", producer)
                                       : fmt::format("{} gathers its output (gather_output: true)", producer);
    c.fail(fmt::format("plan.mappings.{}.input_is_parallel", consumer),
           fmt::format("{} takes its input as split over tp, but {}, so the input is whole", consumer, why));
  }
}

// Each tensor-parallel rank holds whole heads, whole KV heads and equal slices of ffn and vocab.
// A mixture-of-experts model's experts are split over tp like the dense MLP (ffn is expert_ffn).
void check_tp_divides(const Checker& c, const PlanSpec& p, const ModelSpec& m) {
  const bool moe = m.moe.enabled();
  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"heads", m.heads}, {"kv_heads", m.kv_heads},
                               {moe ? "moe.expert_ffn" : "ffn", m.ffn}, {"vocab", m.vocab}})
    if (v % p.tp != 0)
      c.fail("plan.tp", fmt::format("tp {} does not divide model.{} {} (model '{}')", p.tp, key, v, m.name));
}

// Expert parallelism and routing against the model: the experts split evenly over ep, Megatron-Core's
// rule that MoE under tensor parallelism needs sequence parallelism, and a router skew the experts
// can hold.
void check_experts(const Checker& c, const Scenario& s) {
  const PlanSpec& p = s.plan;
  const ModelSpec& m = s.model;
  const MoeSpec& e = m.moe;
  const double skew = s.workload.expert_skew;
  if (!e.enabled()) {
    if (c.given("workload.expert_skew") || skew != 1)
      c.fail("workload.expert_skew", fmt::format("applies to mixture-of-experts models only; model '{}' is dense",
                                                 m.name));
    return;
  }
  if (e.experts % p.ep != 0)
    c.fail("plan.ep", fmt::format("ep {} does not divide model.moe.experts {} (model '{}'): each expert-parallel rank "
                                  "holds experts / ep whole experts",
                                  p.ep, e.experts, m.name));
  if (e.shared_expert_ffn % p.tp != 0)
    c.fail("plan.tp", fmt::format("tp {} does not divide model.moe.shared_expert_ffn {} (model '{}')", p.tp,
                                  e.shared_expert_ffn, m.name));
  if (p.tp > 1 && !p.sp)
    c.fail("plan.sp", fmt::format("model '{}' is a mixture-of-experts model and tp is {}: it needs sequence "
                                  "parallelism (sp: true), as Megatron-Core requires for MoE with tensor parallelism",
                                  m.name, p.tp));
  // The busiest expert receives skew x top_k x tokens / experts tokens, at most every token once.
  const double most = static_cast<double>(e.experts) / static_cast<double>(e.top_k);
  if (!(std::isfinite(skew) && skew >= 1 && skew <= most))
    c.fail("workload.expert_skew",
           fmt::format("expected 1 (balanced) up to experts / top_k = {:g}, got {:g}: the busiest expert's load is "
                       "expert_skew x top_k x tokens / experts, which cannot pass every token",
                       most, skew));
}

// A key of the other workload kind would be read by nothing: the user believes it is simulated.
// Except a file's keys when --set workload.kind switched the kind: the flag replaces the file's
// workload (`--set workload.kind=inference` on the default training scenario).
void check_workload_keys(const Checker& c, const WorkloadSpec& w) {
  const bool training = w.kind == WorkloadKind::training;
  const std::vector<const char*> others = training ? std::vector<const char*>{"batch", "prompt", "generate"}
                                                   : std::vector<const char*>{"global_batch", "micro_batch", "seq",
                                                                              "partial_micro_batches"};
  for (const char* key : others)
    if (c.given(std::string("workload.") + key) &&
        !(c.from_flag("workload.kind") && !c.from_flag(std::string("workload.") + key)))
      c.fail(std::string("workload.") + key, fmt::format("applies to {} workloads only, but workload.kind is {}",
                                                         training ? "inference" : "training",
                                                         training ? "training" : "inference"));
}

void check_workload(const Checker& c, const Scenario& s) {
  const WorkloadSpec& w = s.workload;
  const PlanSpec& p = s.plan;
  check_workload_keys(c, w);
  if (w.kind == WorkloadKind::training) {
    c.positive("workload.global_batch", static_cast<double>(w.global_batch));
    c.positive("workload.micro_batch", static_cast<double>(w.micro_batch));
    c.positive("workload.seq", static_cast<double>(w.seq));
    c.non_negative("workload.partial_micro_batches", static_cast<double>(w.partial_micro_batches));
    if (w.global_batch % (w.micro_batch * p.dp) != 0)
      c.fail("workload.global_batch", fmt::format("global_batch {} is not divisible by micro_batch {} x dp {}",
                                                  w.global_batch, w.micro_batch, p.dp));
    if (w.seq > s.model.max_seq)
      c.fail("workload.seq", fmt::format("seq {} exceeds model.max_seq {} of '{}'", w.seq, s.model.max_seq, s.model.name));
    if (p.sp && w.seq % p.tp != 0)
      c.fail("workload.seq", fmt::format("seq {} is not divisible by tp {} (sequence parallelism splits the sequence over tp)",
                                         w.seq, p.tp));
    const std::pair<const char*, bool> classes[] = {{"weights", w.weights_dtype.has_value()},
                                                    {"activations", w.activations_dtype.has_value()},
                                                    {"kv_cache", w.kv_cache_dtype.has_value()},
                                                    {"communication", w.communication_dtype.has_value()}};
    if (w.prefill_chunk != 0)
      c.fail("workload.prefill_chunk", "applies to inference workloads only (continuous batching's prefill chunk)");
    for (const auto& [name, set] : classes)
      if (set)
        c.fail(std::string("workload.precision.") + name,
               "workload.precision applies to inference workloads only (a training step runs in model.dtype "
               "with mixed-precision Adam); set workload.kind: inference or remove it");
  } else if (!s.serving) {   // a serving scenario's requests bring their own lengths
    c.positive("workload.batch", static_cast<double>(w.batch));
    c.positive("workload.prompt", static_cast<double>(w.prompt));
    c.positive("workload.generate", static_cast<double>(w.generate));   // the prefill makes the first token
    c.non_negative("workload.prefill_chunk", static_cast<double>(w.prefill_chunk));
    if (w.prompt + w.generate > s.model.max_seq)
      c.fail("workload.generate", fmt::format("prompt {} + generate {} exceeds model.max_seq {} of '{}'", w.prompt,
                                              w.generate, s.model.max_seq, s.model.name));
  }
}

}  // namespace

void check_topology(const Topology& t, const Locations& where) { check_topology_with(Checker(where, t.source), t); }
void check_model(const ModelSpec& m, const Locations& where) { check_model_with(Checker(where, m.source), m); }
void check_plan(const PlanSpec& p, const Locations& where) { check_plan_with(Checker(where, p.source), p); }

void resolve_virtual_stages(Scenario& s, const Locations& where) {
  PlanSpec& p = s.plan;
  const int64_t per_chunk = p.layers_per_virtual_stage;
  if (per_chunk <= 0) return;
  const Checker c(where, s.source);
  const int64_t layers = s.model.layers;
  if (layers % per_chunk != 0 || p.pp < 1 || (layers / per_chunk) % p.pp != 0)
    c.fail("plan.layers_per_virtual_stage",
           fmt::format("{} layers in chunks of {} do not split evenly over pp {} stages (model '{}')", layers, per_chunk,
                       p.pp, s.model.name));
  p.virtual_stages = static_cast<int>(layers / per_chunk / p.pp);
}

void check_scenario(const Scenario& s, const Locations& where) {
  check_topology(s.topology, where);
  check_model(s.model, where);
  const Checker c(where, s.source);
  // Before the plan's own checks: on a dense model, ep not dividing dp is the lesser problem.
  if (s.plan.ep > 1 && !s.model.moe.enabled())
    c.fail("plan.ep", fmt::format("ep {} needs a mixture-of-experts model; model '{}' is dense (it has no moe section)",
                                  s.plan.ep, s.model.name));
  check_plan(s.plan, where);
  if (s.numerics != "off" && s.numerics != "proxy" && s.numerics != "full")
    c.fail("numerics", "expected one of off | proxy | full, got '" + s.numerics + "'");
  const PlanSpec& p = s.plan;
  const ModelSpec& m = s.model;
  const Topology& t = s.topology;
  if (p.world() > t.total_gpus())
    c.fail("plan", fmt::format("plan needs {} GPUs (tp {}{} x pp {} x dp {}) but topology '{}' has {} ({} node{} x {})",
                               p.world(), p.tp, p.cp > 1 ? fmt::format(" x cp {}", p.cp) : "", p.pp, p.dp, t.name,
                               t.total_gpus(), t.nodes, t.nodes == 1 ? "" : "s", t.gpus_per_node));
  if (p.cp > 1) {
    if (s.workload.kind != WorkloadKind::training)
      c.fail("plan.cp", fmt::format("cp {}: context parallelism is modelled for training only", p.cp));
    else if (s.workload.seq % (2 * p.cp) != 0)
      c.fail("plan.cp", fmt::format("cp {} cuts every sequence into {} chunks, but workload.seq {} does not divide by {}",
                                    p.cp, 2 * p.cp, s.workload.seq, 2 * p.cp));
    if (m.moe.enabled())
      c.fail("plan.cp", fmt::format("cp {} with a mixture-of-experts model (model '{}') is not modelled yet", p.cp, m.name));
  }
  check_tp_divides(c, p, m);
  check_experts(c, s);
  check_mapping_shapes(c, p);
  if (p.tp_allreduce != "nccl" && tp_group_nodes(p, t.gpus_per_node) > 1)
    c.fail("plan.tp_allreduce", fmt::format("{} reads peers' buffers through peer memory inside one node, but a tp "
                                            "group of {} spans {} nodes of {} GPUs",
                                            p.tp_allreduce, p.tp, tp_group_nodes(p, t.gpus_per_node), t.gpus_per_node));
  if (const std::string why = stage_split_problem(m, p); !why.empty())
    c.fail(p.first_stage_layers > 0 ? "plan.first_stage_layers" : p.last_stage_layers > 0 ? "plan.last_stage_layers" : "plan.pp",
           fmt::format("{} (model '{}')", why, m.name));
  if (m.activation != Activation::swiglu && p.partitions.count("mlp.gate"))
    c.fail("plan.partitions.mlp.gate", "model '" + m.name + "' uses gelu, which has no gate");
  if (m.activation != Activation::swiglu && p.mappings.count("mlp.gate"))
    c.fail("plan.mappings.mlp.gate", "model '" + m.name + "' uses gelu, which has no gate");
  check_workload(c, s);
}

}  // namespace tpsim::spec_detail

namespace tpsim {

void validate(const Scenario& s) {
  // Without the loader's positions, errors name the file each part came from.
  spec_detail::Locations where = {{"topology", {s.topology.source, 0, 0, ""}},
                                  {"model", {s.model.source, 0, 0, ""}},
                                  {"plan", {s.plan.source, 0, 0, ""}}};
  spec_detail::check_scenario(s, where);
}

}  // namespace tpsim
