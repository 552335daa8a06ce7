// Human summaries of the spec for `tpsim validate`, and validate_file, which works out what kind of
// YAML file it was given. Units in every number: GB/s, us, TFLOP/s, GB.
#include <fmt/core.h>

#include <algorithm>
#include <filesystem>

#include "spec/loading.hpp"
#include "tpsim/partition.hpp"

namespace tpsim {

namespace {

std::string gbps(double bytes_per_s) { return fmt::format("{:g} GB/s", bytes_per_s / 1e9); }
std::string us(double s) { return fmt::format("{:g} us", s * 1e6); }
// "80 GB", or "16 GiB" when the size was given in binary units.
std::string size(double bytes) {
  const double gib = bytes / 1073741824.0;
  if (gib == static_cast<double>(static_cast<int64_t>(gib))) return fmt::format("{:g} GiB", gib);
  return fmt::format("{:g} GB", bytes / 1e9);
}
std::string plural(int64_t n, const char* word) {
  const std::string w = word;
  return fmt::format("{} {}{}", n, w, n == 1 ? "" : w.ends_with("ch") ? "es" : "s");   // "micro-batches"
}

const char* fabric_name(IntraFabric f) {
  switch (f) {
    case IntraFabric::nvswitch: return "NVSwitch";
    case IntraFabric::nvlink_mesh: return "NVLink mesh";
    case IntraFabric::pcie: return "PCIe";
  }
  return "?";
}

// "0-3", "0, 2, 5": sorted indices, runs of three or more written as ranges.
std::string ranges(const std::vector<int>& xs) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < xs.size();) {
    size_t j = i;
    while (j + 1 < xs.size() && xs[j + 1] == xs[j] + 1) ++j;
    if (j >= i + 2) parts.push_back(fmt::format("{}-{}", xs[i], xs[j]));
    else
      for (size_t k = i; k <= j; ++k) parts.push_back(std::to_string(xs[k]));
    i = j + 1;
  }
  return spec_detail::join(parts, ", ");
}

std::string nics_word(const std::vector<int>& nics) { return (nics.size() == 1 ? "NIC " : "NICs ") + ranges(nics); }

// Each GPU's rate out of the node when every GPU of the node sends to other nodes at once: the
// max-min fair shares (progressive filling, the engine's sharing) of the NIC groups, each GPU's
// PCIe path and the socket links it crosses. 0 for a GPU without a NIC.
std::vector<double> all_sending_shares(const Topology& t, const std::vector<std::vector<int>>& of, bool sockets) {
  const NicSpec& nic = t.nic;
  const int gpn = t.gpus_per_node;
  struct Resource {
    double capacity = 0;
    std::vector<int> gpus;
  };
  std::vector<Resource> resources;
  std::vector<std::vector<int>> seen;
  for (int g = 0; g < gpn; ++g) {
    if (of[g].empty() || std::find(seen.begin(), seen.end(), of[g]) != seen.end()) continue;
    seen.push_back(of[g]);
    Resource group{nic.bandwidth * nic.efficiency * static_cast<double>(of[g].size()), {}};
    for (int h = 0; h < gpn; ++h)
      if (of[h] == of[g]) group.gpus.push_back(h);
    resources.push_back(group);
  }
  for (int g = 0; g < gpn; ++g)
    if (!of[g].empty() && nic.pcie_bandwidth > 0) resources.push_back({nic.pcie_bandwidth, {g}});
  if (sockets && nic.socket_bandwidth > 0)
    for (int a = 0; a < 8; ++a)
      for (int b = 0; b < 8; ++b) {
        Resource link{nic.socket_bandwidth, {}};
        for (int g = 0; g < gpn; ++g)
          if (a != b && !of[g].empty() && nic.gpu_sockets[g] == a && nic.sockets[of[g].front()] == b)
            link.gpus.push_back(g);
        if (!link.gpus.empty()) resources.push_back(link);
      }
  std::vector<double> share(gpn, 0.0);
  std::vector<bool> active(gpn);
  for (int g = 0; g < gpn; ++g) active[g] = !of[g].empty();
  // Raise every active GPU's rate until a resource fills, then stop the GPUs on it; each active GPU
  // is on its NIC group, so every round stops at least one.
  while (std::find(active.begin(), active.end(), true) != active.end()) {
    double step = -1;
    for (const Resource& r : resources) {
      double used = 0;
      int users = 0;
      for (int g : r.gpus) used += share[g], users += active[g];
      if (users > 0 && (step < 0 || (r.capacity - used) / users < step)) step = (r.capacity - used) / users;
    }
    for (int g = 0; g < gpn; ++g)
      if (active[g]) share[g] += step;
    for (const Resource& r : resources) {
      double used = 0;
      for (int g : r.gpus) used += share[g];
      if (used >= r.capacity * (1 - 1e-12))
        for (int g : r.gpus) active[g] = false;
    }
  }
  return share;
}

// Which NIC(s) each GPU uses, at what rate, and its path to them (PCIe, a socket crossing). One
// line, "rail-optimised, NIC i serves GPU i", for the plain one-NIC-per-GPU layout without paths.
std::string nic_layout(const Topology& t) {
  const NicSpec& nic = t.nic;
  bool one_to_one = static_cast<int>(nic.gpus.size()) == t.gpus_per_node;
  for (size_t i = 0; i < nic.gpus.size(); ++i)
    one_to_one = one_to_one && nic.gpus[i].size() == 1 && nic.gpus[i][0] == static_cast<int>(i);
  if (one_to_one && nic.pcie_bandwidth == 0 && nic.sockets.empty()) return "; rail-optimised, NIC i serves GPU i\n";

  const auto of = nics_of_gpus(nic, t.gpus_per_node);
  const bool sockets = !nic.sockets.empty() && static_cast<int>(nic.sockets.size()) == nic.count &&
                       static_cast<int>(nic.gpu_sockets.size()) == t.gpus_per_node;
  const std::vector<double> shares = all_sending_shares(t, of, sockets);
  std::string out = "; per GPU:\n";
  for (int g = 0; g < t.gpus_per_node; ++g) {
    const std::vector<int>& mine = of[g];
    std::string line = fmt::format("    GPU {}", g);
    if (sockets) line += fmt::format(" (socket {})", nic.gpu_sockets[g]);
    if (mine.empty()) {
      out += line + " -> no NIC: it cannot reach other nodes\n";
      continue;
    }
    const double rate = nic.bandwidth * nic.efficiency * static_cast<double>(mine.size());
    std::vector<int> sharing;
    for (int h = 0; h < t.gpus_per_node; ++h)
      if (of[h] == mine) sharing.push_back(h);
    line += " -> " + nics_word(mine) + " (";
    if (mine.size() > 1)
      line += fmt::format("{} x {:g} Gb/s = {:g} Gb/s, ", mine.size(), nic.bandwidth * 8 / 1e9,
                          nic.bandwidth * 8 / 1e9 * static_cast<double>(mine.size()));
    else
      line += fmt::format("{:g} Gb/s, ", nic.bandwidth * 8 / 1e9);
    line += gbps(rate) + " achievable";
    if (sockets) line += fmt::format("; socket {}", nic.sockets[mine.front()]);
    if (sharing.size() > 1) line += "; shared by GPUs " + ranges(sharing);
    line += ")";
    // The path and what limits this GPU alone: the slowest of its NICs, PCIe path, socket link.
    std::vector<std::string> path;
    double alone = rate;
    std::string limit = mine.size() > 1 ? "the NICs" : "the NIC";
    if (nic.pcie_bandwidth > 0) {
      path.push_back("PCIe " + gbps(nic.pcie_bandwidth));
      if (nic.pcie_bandwidth < alone) alone = nic.pcie_bandwidth, limit = "PCIe";
    }
    if (sockets && nic.sockets[mine.front()] != nic.gpu_sockets[g]) {
      path.push_back(fmt::format("crosses sockets {} -> {} at {}", nic.gpu_sockets[g], nic.sockets[mine.front()],
                                 gbps(nic.socket_bandwidth)));
      if (nic.socket_bandwidth > 0 && nic.socket_bandwidth < alone)
        alone = nic.socket_bandwidth, limit = "the socket link";
    } else if (sockets) {
      path.push_back("same socket");
    }
    line += "; path: " + (path.empty() ? std::string("not modelled (no pcie_bandwidth or sockets)")
                                        : spec_detail::join(path, ", "));
    line += fmt::format("; alone up to {} each way ({})", gbps(alone), limit);
    if (shares[g] < alone * (1 - 1e-9)) line += fmt::format(", {} with every GPU of the node sending", gbps(shares[g]));
    out += line + "\n";
  }
  std::vector<int> idle;
  for (int i = 0; i < static_cast<int>(nic.gpus.size()) && i < nic.count; ++i)
    if (nic.gpus[i].empty()) idle.push_back(i);
  if (!idle.empty())
    out += fmt::format("    {} carr{} no GPU traffic (storage, management)\n", nics_word(idle),
                       idle.size() == 1 ? "ies" : "y");
  return out;
}

// The split of one weight: the plan's own partition spec, else what its preset implies.
// Weights are [in, out]: {"", "tp"} is column-parallel, {"tp", ""} row-parallel.
// The split `validate` describes is the one the lowering and the memory model use (partition.hpp).
std::pair<PartitionSpec, bool> effective_partition(const PlanSpec& p, const std::string& weight) {
  auto it = p.partitions.find(weight);
  if (it != p.partitions.end()) return {it->second, true};
  const int dim = tp_split_dim(p, weight);
  if (dim == 0) return {{"tp", ""}, false};
  if (dim == 1) return {{"", "tp"}, false};
  return {{"", ""}, false};
}

std::string split_words(const PartitionSpec& s) {
  if (s.size() == 2 && s[0].empty() && s[1].empty()) return "replicated";
  if (s.size() == 2 && s[0].empty()) return "column-parallel over " + s[1];
  if (s.size() == 2 && s[1].empty()) return "row-parallel over " + s[0];
  std::vector<std::string> dims;
  for (const auto& d : s) dims.push_back(d.empty() ? "-" : d);
  return "split [" + spec_detail::join(dims) + "]";
}

std::string with_thousands(int64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

namespace {

// One layer's MLP weights with `experts` of the model's experts (all of them, or the top_k a token
// uses): fc1 (+gate) and fc2 per expert, plus the replicated router [h, experts]; a dense model's
// one MLP when it has no experts.
int64_t mlp_parameters(const ModelSpec& m, int64_t experts) {
  const int64_t per_ffn = (m.activation == Activation::swiglu ? 3 : 2) * m.hidden;   // fc1 (+gate), fc2
  if (!m.moe.enabled()) return per_ffn * m.ffn;
  return experts * per_ffn * m.moe.expert_ffn + m.hidden * m.moe.experts + per_ffn * m.moe.shared_expert_ffn +
         (m.moe.shared_expert_gate ? m.hidden : 0);   // + the shared expert and its gate [h, 1]
}

int64_t parameters_with(const ModelSpec& m, int64_t experts) {
  const int64_t h = m.hidden, head_dim = m.heads > 0 ? m.hidden / m.heads : 0;
  const int64_t qkv = h * (m.heads + 2 * m.kv_heads) * head_dim;     // attn.qkv [h, (heads+2kv)*hd]
  const int64_t proj = h * h;                                         // attn.proj [h, h]
  const int64_t norms = 2 * h;                                        // norm1, norm2 [1, h]
  return m.layers * (qkv + proj + mlp_parameters(m, experts) + norms) + 2 * m.vocab * h + h;   // + embedding, output, final_norm
}

// "dragonfly, 16 nodes per group (4 groups here, 64 in the machine), global links 2:1
// oversubscribed (1600 GB/s per direction per group), minimal routing: 25.4 GB/s ...".
std::string dragonfly_summary(const Topology& t) {
  const NetworkSpec& net = t.network;
  const int here = (t.nodes + net.nodes_per_leaf - 1) / net.nodes_per_leaf;
  const int machine = net.groups > 0 ? net.groups : here;
  const double group_global = uplink_bandwidth(t);
  std::string s = fmt::format("dragonfly, {} nodes per group ({} group{} here, {} in the machine), global links {:g}:1 "
                              "oversubscribed ({} per direction per group), ",
                              net.nodes_per_leaf, here, here == 1 ? "" : "s", machine, net.oversubscription,
                              gbps(group_global));
  if (net.routing == GroupRouting::adaptive)
    return s + "adaptive routing (ideal: any group reaches any other at its whole global rate)";
  return s + fmt::format("minimal routing: {} per direction between two groups (1/{} of a group's)",
                         gbps(machine > 1 ? group_global / (machine - 1) : 0.0), std::max(machine - 1, 1));
}

}  // namespace

int64_t parameter_count(const ModelSpec& m) { return parameters_with(m, m.moe.experts); }
int64_t active_parameter_count(const ModelSpec& m) {
  return parameters_with(m, m.moe.enabled() ? m.moe.top_k : 0);
}

std::string describe(const Topology& t) {
  std::vector<std::string> peaks;
  for (DType d : {DType::bf16, DType::fp8, DType::tf32, DType::fp32})
    if (t.gpu.peak_flops.count(d)) peaks.push_back(fmt::format("{} {:g}", to_string(d), t.gpu.peak_flops.at(d) / 1e12));
  std::string out = fmt::format("topology '{}'{}\n", t.name, t.source.empty() ? "" : " (" + t.source + ")");
  out += fmt::format("  GPU: {}, peak dense TFLOP/s: {}; {} HBM at {:g} TB/s{}, {} SMs, GEMM efficiency {:g}{}{}\n",
                     t.gpu.name, spec_detail::join(peaks), size(t.gpu.hbm_bytes), t.gpu.hbm_bandwidth / 1e12,
                     t.gpu.hbm_efficiency < 1 ? fmt::format(" (realised {:g})", t.gpu.hbm_efficiency) : "", t.gpu.sms,
                     t.gpu.gemm_efficiency,
                     t.gpu.gemm_efficiency_fp8 > 0 ? fmt::format(", fp8 {:g}", t.gpu.gemm_efficiency_fp8) : "",
                     t.gpu.gemm_stream_k ? " (stream-K: no partial waves)" : "");
  const IntraNodeSpec& in = t.intra;
  out += fmt::format("  node: {} GPUs on {}, {} per GPU per direction (efficiency {:g}, latency {})", t.gpus_per_node,
                     fabric_name(in.fabric), gbps(in.bandwidth), in.efficiency, us(in.latency));
  if (in.nvls) out += fmt::format(", NVLS all-reduce {}", gbps(in.nvls_bandwidth));
  if (in.fabric == IntraFabric::pcie)
    out += fmt::format(", {} PCIe switches with {} uplinks", in.pcie_switches, gbps(in.host_bandwidth));
  out += "\n";
  if (t.nic.count > 0)
    out += fmt::format("  NICs: {} x {:g} Gb/s per node ({} each, efficiency {:g}, latency {}){}", t.nic.count,
                       t.nic.bandwidth * 8 / 1e9, gbps(t.nic.bandwidth), t.nic.efficiency, us(t.nic.latency),
                       nic_layout(t));
  if (t.nic.count > 0) {
    const HostCpu cpu = t.nic.host_cpu;
    const std::string host = cpu == HostCpu::intel ? "Intel"
                             : cpu == HostCpu::amd ? "AMD"
                             : cpu == HostCpu::arm ? "Arm"
                                                   : "not stated (NCCL's figure for any host but AMD)";
    out += fmt::format("  host CPU: {}; each step of a ring across nodes costs at least {} ({} with Simple): the "
                       "proxy's post overhead\n",
                       host, us(net_post_overhead(cpu, false)), us(net_post_overhead(cpu, true)));
  }
  const NetworkSpec& net = t.network;
  const std::string network = net.kind == NetworkKind::single_switch ? "single switch"
                              : net.kind == NetworkKind::fat_tree
                                  ? fmt::format("fat-tree, {} nodes per leaf, {:g}:1 oversubscription", net.nodes_per_leaf,
                                                net.oversubscription)
                                  : dragonfly_summary(t);
  out += fmt::format("  cluster: {} node{} x {} GPUs = {} GPUs; network: {}, switch latency {}", t.nodes,
                     t.nodes == 1 ? "" : "s", t.gpus_per_node, t.total_gpus(), network, us(net.switch_latency));
  if (t.price_per_gpu_hour > 0) out += fmt::format("; {:g} per GPU-hour", t.price_per_gpu_hour);
  const CollectiveTuning& tune = t.collectives;
  if (tune.launch_latency > 0 || !tune.protocols.empty()) {
    std::vector<std::string> protos;
    for (const auto& p : tune.protocols)
      protos.push_back(fmt::format("{} (base {}, efficiency {:g})", p.name, us(p.base_latency), p.efficiency));
    out += fmt::format("\n  collectives: launch {}; protocols {}", us(tune.launch_latency),
                       protos.empty() ? std::string("none (ideal alpha-beta)") : spec_detail::join(protos));
  }
  if (t.intra.nvls && tune.nvls_tree_efficiency < 1)
    out += fmt::format("\n  collectives: NVLS-tree's NVLink stages at {:g} of the one-node NVLS rate", tune.nvls_tree_efficiency);
  if (!tune.nccl_version.empty())
    out += fmt::format("\n  collectives: auto follows NCCL {}'s tuning model (compute capability {}); tpsim times its pick",
                       tune.nccl_version, t.gpu.compute_capability);
  return out;
}

std::string describe(const ModelSpec& m) {
  const int64_t params = parameter_count(m);
  const auto scaled = [](int64_t n) {
    return n >= 1e9 ? fmt::format("{:.2f} B", n / 1e9) : fmt::format("{:.1f} M", n / 1e6);
  };
  std::string out = fmt::format("model '{}'{}\n", m.name, m.source.empty() ? "" : " (" + m.source + ")");
  out += fmt::format("  {} layers, hidden {}, ffn {} ({}), {} heads of {} ({} KV heads{}), vocab {}, max_seq {}{}, {}, {}\n",
                     m.layers, m.hidden, m.ffn, m.activation == Activation::swiglu ? "swiglu" : "gelu", m.heads,
                     m.head_dim(), m.kv_heads, m.kv_heads == m.heads ? "" : ", grouped-query", m.vocab, m.max_seq,
                     m.sliding_window > 0 ? " (its sliding attention window: tpsim times full attention)" : "",
                     m.norm == Norm::rmsnorm ? "rmsnorm" : "layernorm", to_string(m.dtype));
  const MoeSpec& e = m.moe;
  if (e.enabled())
    out += fmt::format("  mixture of experts: {} experts of ffn {} per layer, top-{} per token ({}), router [{}, {}]; {}\n",
                       e.experts, e.expert_ffn, e.top_k,
                       e.normalize_top_k ? fmt::format("weights renormalised over the {}", e.top_k)
                                         : fmt::format("weights from the softmax over all {}, not renormalised", e.experts),
                       m.hidden, e.experts,
                       e.capacity_factor > 0
                           ? fmt::format("capacity factor {:g} (each expert takes at most {:g} x its even share of "
                                         "tokens; the rest are dropped)",
                                         e.capacity_factor, e.capacity_factor)
                           : std::string("dropless (each expert takes every token routed to it)"));
  if (e.enabled() && e.shared_expert_ffn > 0)
    out += fmt::format("  shared expert: ffn {}, every token, added to the routed experts' output{}\n", e.shared_expert_ffn,
                       e.shared_expert_gate ? " scaled by sigmoid(x w_gate) (gate [hidden, 1])" : "");
  out += fmt::format("  parameters: {} ({}; untied output head, no biases)", scaled(params), with_thousands(params));
  if (e.enabled()) {
    const int64_t active = active_parameter_count(m);
    out += fmt::format("; {} ({}) active per token", scaled(active), with_thousands(active));
  }
  return out;
}

namespace {
// mesh_order as the ranks are laid out: cp, when the order leaves it out, right outside tp.
std::vector<std::string> mesh_with_cp(const PlanSpec& p) {
  std::vector<std::string> order = p.mesh_order;
  if (p.cp > 1 && std::find(order.begin(), order.end(), "cp") == order.end()) {
    auto tp = std::find(order.begin(), order.end(), "tp");
    order.insert(tp == order.end() ? order.begin() : tp + 1, "cp");
  }
  return order;
}

// The plan's summary; with a model, weights the model does not have (mlp.gate under gelu) are left out.
std::string describe_plan(const PlanSpec& p, const ModelSpec* model) {
  static const char* presets[] = {"megatron", "naive", "custom"};
  static const char* recompute[] = {"none", "selective", "full"};
  std::string out = fmt::format("plan '{}'{}\n", p.name, p.source.empty() ? "" : " (" + p.source + ")");
  out += fmt::format("  mesh: tp {}{} x pp {} x dp {} = {} GPUs (innermost first: {}); preset {}; sequence parallel {}\n",
                     p.tp, p.cp > 1 ? fmt::format(" x cp {}", p.cp) : "", p.pp, p.dp, p.world(),
                     spec_detail::join(mesh_with_cp(p)), presets[static_cast<int>(p.preset)], p.sp ? "on" : "off");
  if (p.cp > 1)
    out += fmt::format("  context parallel: cp {}: every sequence in {} chunks, rank i holding chunks i and {} - i "
                       "(causal load balancing); attention passes keys and values round the CP ring\n",
                       p.cp, 2 * p.cp, 2 * p.cp - 1);
  if (p.ep > 1)
    out += fmt::format("  expert parallel: ep {}, carved out of dp {}: {} DP replicas with consecutive dp indices "
                       "split the experts{} and trade tokens by all-to-all\n",
                       p.ep, p.dp, p.ep,
                       model && model->moe.enabled() && model->moe.experts % p.ep == 0
                           ? fmt::format(" ({} of {} each)", model->moe.experts / p.ep, model->moe.experts)
                           : std::string());
  if (p.first_stage_layers > 0 || p.last_stage_layers > 0)
    out += fmt::format("  uneven pipeline: first stage {}, last stage {} layers (0 = an even share), the others the rest "
                       "evenly\n",
                       p.first_stage_layers, p.last_stage_layers);
  out += fmt::format("  collectives {}{}, virtual stages {}, recompute {}, distributed optimizer {}, DP reduction {}\n",
                     p.collective_algorithm,
                     p.tp_allreduce == "nccl"
                         ? std::string()
                         : fmt::format(" (TP all-reduces up to {:g} MiB {}, the inference engine's own)",
                                       p.tp_allreduce_max / (1024.0 * 1024), p.tp_allreduce),
                     p.virtual_stages, recompute[static_cast<int>(p.recompute)],
                     p.distributed_optimizer ? "on" : "off", p.dp_overlap ? "overlapped with backward" : "after backward");
  // The main gradient's dtype follows the model's (tpsim/memory.hpp), unknown for a plan alone.
  const std::string main_grad = !model                        ? "main gradient (fp32; fp16 for an fp16 model)"
                                : model->dtype == DType::fp16 ? "fp16 main gradient"
                                                              : "fp32 main gradient";
  out += fmt::format("  weight gradients {} the {}, {} the input gradient's TP reduction; pipeline "
                     "sends {}\n",
                     p.grad_accumulation_fusion ? "accumulated by the GEMM into" : "added by a separate kernel to", main_grad,
                     p.tp_grad_overlap ? "computed during" : "computed before",
                     p.p2p_scatter_gather ? "scattered over TP, all-gathered on arrival" : "whole from every TP rank");
  out += "  weights:";
  for (const auto& w : spec_detail::weight_names()) {
    if (model && model->activation != Activation::swiglu && w == "mlp.gate") continue;
    const auto [spec, explicit_spec] = effective_partition(p, w);
    out += fmt::format("\n    {:<11} {}{}", w, split_words(spec), explicit_spec ? " (plan)" : "");
    auto m = p.mappings.find(w);
    if (m != p.mappings.end()) {
      auto flag = [](const char* name, const std::optional<bool>& v) {
        return v ? fmt::format(" {}={}", name, *v ? "true" : "false") : std::string();
      };
      out += fmt::format(";{}{}{}", flag("input_is_parallel", m->second.input_is_parallel),
                         flag("gather_output", m->second.gather_output), flag("reduce_output", m->second.reduce_output));
    }
  }
  return out;
}


}  // namespace

std::string describe(const PlanSpec& p) { return describe_plan(p, nullptr); }

std::string describe(const Scenario& s) {
  std::string out = fmt::format("scenario '{}'{}\n", s.name, s.source.empty() ? " (embedded default)" : " (" + s.source + ")");
  out += describe(s.topology) + "\n" + describe(s.model) + "\n" + describe_plan(s.plan, &s.model) + "\n";
  const WorkloadSpec& w = s.workload;
  if (w.kind == WorkloadKind::training)
    out += fmt::format("workload: training, global batch {} = dp {} x {} of {} x {} tokens; simulating {}\n",
                       w.global_batch, s.plan.dp, plural(w.global_batch / (w.micro_batch * s.plan.dp), "micro-batch"),
                       plural(w.micro_batch, "sequence"), w.seq,
                       w.partial_micro_batches == 0 ? std::string("the whole step")
                                                    : "PARTIAL: the first " + plural(w.partial_micro_batches, "micro-batch"));
  else if (const auto& v = s.serving) {
    const std::string stream = v->arrivals == "trace" ? "requests from " + v->trace
                               : fmt::format("{} arrivals at {:g}/s {}", v->arrivals, v->rate,
                                             v->requests > 0 ? fmt::format("({} requests)", v->requests)
                                                             : fmt::format("for {:g} s", v->duration));
    out += fmt::format("workload: serving, {}; scheduler {}, {}{} replica{} of tp x pp GPUs, router {} (tpsim serve)\n",
                       stream, v->scheduler,
                       v->prefill_replicas > 0 ? fmt::format("{} prefill + ", v->prefill_replicas) : std::string(),
                       v->replicas, v->replicas + v->prefill_replicas == 1 ? "" : "s", v->router);
  } else {
    out += fmt::format("workload: inference, batch {}, prompt {} tokens, generate {} tokens{}\n", w.batch, w.prompt,
                       w.generate, w.prefill_chunk > 0 ? fmt::format(", prefill chunk {} tokens", w.prefill_chunk) : "");
  }
  if (w.kind == WorkloadKind::inference) {
    if (w.weights_dtype || w.activations_dtype || w.kv_cache_dtype || w.communication_dtype) {
      const Precision p = precision_of(s);
      out += fmt::format("precision: weights {}, activations {}, kv_cache {}, communication {} (GEMMs compute in {})\n",
                         to_string(p.weights), to_string(p.activations), to_string(p.kv_cache),
                         to_string(p.communication), to_string(gemm_compute_dtype(p.weights, p.activations)));
    }
  }
  if (s.model.moe.enabled())
    out += fmt::format("routing: expert skew {:g} (the busiest expert's tokens over the mean{})\n", w.expert_skew,
                       w.expert_skew == 1 ? ": balanced" : "");
  const int64_t world = s.serving ? (s.serving->replicas + s.serving->prefill_replicas) * s.plan.world() : s.plan.world();
  out += fmt::format("uses {} of {} GPUs; a tp group spans {}; numerics {}", world, s.topology.total_gpus(),
                     plural(spec_detail::tp_group_nodes(s.plan, s.topology.gpus_per_node), "node"), s.numerics);
  return out;
}

std::string validate_file(const std::string& path) {
  using namespace spec_detail;
  const YAML::Node root = parse_file(path);
  if (!root.IsMap()) throw InputError(path, 1, 1, "", "expected a mapping of keys, got " + shown(root));
  auto has_any = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (root[k]) return true;
    return false;
  };
  const std::string folder = std::filesystem::path(path).parent_path().filename().string();
  if (has_any({"topology", "model", "workload"}) || (folder == "examples" && !has_any({"gpu", "hidden", "tp", "preset"})))
    return describe(load_scenario(ScenarioRequest{path, "", "", "", {}}));
  if (has_any({"gpu", "gpus_per_node", "intra", "nic"}) || folder == "topologies") return describe(load_topology(path));
  if (has_any({"hidden", "layers", "heads", "vocab", "ffn"}) || folder == "models" || is_hf_config(root))
    return describe(load_model(path));
  if (has_any({"tp", "pp", "dp", "preset", "partitions", "mappings", "mesh_order"}) || folder == "plans")
    return describe(load_plan(path));
  throw InputError(path, 0, 0, "",
                   "cannot tell what this file describes: expected a topology (gpu, intra, ...), a model (hidden, "
                   "layers, ...; or a Hugging Face config.json), a plan (tp, preset, ...) or a scenario (topology, model, plan)");
}

}  // namespace tpsim
