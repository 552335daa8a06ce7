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
std::string plural(int64_t n, const char* word) { return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s"); }

const char* fabric_name(IntraFabric f) {
  switch (f) {
    case IntraFabric::nvswitch: return "NVSwitch";
    case IntraFabric::nvlink_mesh: return "NVLink mesh";
    case IntraFabric::pcie: return "PCIe";
  }
  return "?";
}

// What each NIC serves, compactly: "NIC i -> GPU i" when rail-optimised one to one.
std::string nic_mapping(const NicSpec& nic) {
  bool one_to_one = true;
  for (size_t i = 0; i < nic.gpus.size(); ++i)
    one_to_one = one_to_one && nic.gpus[i].size() == 1 && nic.gpus[i][0] == static_cast<int>(i);
  if (one_to_one) return "rail-optimised, NIC i serves GPU i";
  std::vector<std::string> parts;
  for (size_t i = 0; i < nic.gpus.size(); ++i) {
    std::vector<std::string> ids;
    for (int g : nic.gpus[i]) ids.push_back(std::to_string(g));
    parts.push_back(fmt::format("NIC {} -> GPU {}", i, spec_detail::join(ids, ",")));
  }
  return spec_detail::join(parts, "; ");
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

int64_t parameter_count(const ModelSpec& m) {
  const int64_t h = m.hidden, head_dim = m.heads > 0 ? m.hidden / m.heads : 0;
  const int64_t qkv = h * (m.heads + 2 * m.kv_heads) * head_dim;     // attn.qkv [h, (heads+2kv)*hd]
  const int64_t proj = h * h;                                         // attn.proj [h, h]
  const int64_t mlp = (m.activation == Activation::swiglu ? 3 : 2) * h * m.ffn;   // fc1 (+gate), fc2
  const int64_t norms = 2 * h;                                        // norm1, norm2 [1, h]
  return m.layers * (qkv + proj + mlp + norms) + 2 * m.vocab * h + h;   // + embedding, output, final_norm
}

std::string describe(const Topology& t) {
  std::vector<std::string> peaks;
  for (DType d : {DType::bf16, DType::fp8, DType::tf32, DType::fp32})
    if (t.gpu.peak_flops.count(d)) peaks.push_back(fmt::format("{} {:g}", to_string(d), t.gpu.peak_flops.at(d) / 1e12));
  std::string out = fmt::format("topology '{}'{}\n", t.name, t.source.empty() ? "" : " (" + t.source + ")");
  out += fmt::format("  GPU: {}, peak dense TFLOP/s: {}; {} HBM at {:g} TB/s{}, {} SMs, GEMM efficiency {:g}\n",
                     t.gpu.name, spec_detail::join(peaks), size(t.gpu.hbm_bytes), t.gpu.hbm_bandwidth / 1e12,
                     t.gpu.hbm_efficiency < 1 ? fmt::format(" (realised {:g})", t.gpu.hbm_efficiency) : "", t.gpu.sms,
                     t.gpu.gemm_efficiency);
  const IntraNodeSpec& in = t.intra;
  out += fmt::format("  node: {} GPUs on {}, {} per GPU per direction (efficiency {:g}, latency {})", t.gpus_per_node,
                     fabric_name(in.fabric), gbps(in.bandwidth), in.efficiency, us(in.latency));
  if (in.nvls) out += fmt::format(", NVLS all-reduce {}", gbps(in.nvls_bandwidth));
  if (in.fabric == IntraFabric::pcie)
    out += fmt::format(", {} PCIe switches with {} uplinks", in.pcie_switches, gbps(in.host_bandwidth));
  out += "\n";
  if (t.nic.count > 0)
    out += fmt::format("  NICs: {} x {:g} Gb/s per node ({} each, efficiency {:g}, latency {}); {}\n", t.nic.count,
                       t.nic.bandwidth * 8 / 1e9, gbps(t.nic.bandwidth), t.nic.efficiency, us(t.nic.latency),
                       nic_mapping(t.nic));
  const NetworkSpec& net = t.network;
  const std::string network = net.kind == NetworkKind::single_switch
                                  ? "single switch"
                                  : fmt::format("fat-tree, {} nodes per leaf, {:g}:1 oversubscription", net.nodes_per_leaf,
                                                net.oversubscription);
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
  return out;
}

std::string describe(const ModelSpec& m) {
  const int64_t params = parameter_count(m);
  std::string out = fmt::format("model '{}'{}\n", m.name, m.source.empty() ? "" : " (" + m.source + ")");
  out += fmt::format("  {} layers, hidden {}, ffn {} ({}), {} heads of {} ({} KV heads{}), vocab {}, max_seq {}, {}, {}\n",
                     m.layers, m.hidden, m.ffn, m.activation == Activation::swiglu ? "swiglu" : "gelu", m.heads,
                     m.head_dim(), m.kv_heads, m.kv_heads == m.heads ? "" : ", grouped-query", m.vocab, m.max_seq,
                     m.norm == Norm::rmsnorm ? "rmsnorm" : "layernorm", to_string(m.dtype));
  const std::string scaled = params >= 1e9 ? fmt::format("{:.2f} B", params / 1e9) : fmt::format("{:.1f} M", params / 1e6);
  out += fmt::format("  parameters: {} ({}; untied output head, no biases)", scaled, with_thousands(params));
  return out;
}

namespace {
// The plan's summary; with a model, weights the model does not have (mlp.gate under gelu) are left out.
std::string describe_plan(const PlanSpec& p, const ModelSpec* model) {
  static const char* presets[] = {"megatron", "naive", "custom"};
  static const char* recompute[] = {"none", "selective", "full"};
  std::string out = fmt::format("plan '{}'{}\n", p.name, p.source.empty() ? "" : " (" + p.source + ")");
  out += fmt::format("  mesh: tp {} x pp {} x dp {} = {} GPUs (innermost first: {}); preset {}; sequence parallel {}\n",
                     p.tp, p.pp, p.dp, p.world(), spec_detail::join(p.mesh_order), presets[static_cast<int>(p.preset)],
                     p.sp ? "on" : "off");
  out += fmt::format("  collectives {}{}, virtual stages {}, recompute {}, distributed optimizer {}, DP reduction {}\n",
                     p.collective_algorithm,
                     p.tp_allreduce == "nccl"
                         ? std::string()
                         : fmt::format(" (TP all-reduces up to {:g} MiB {}, the inference engine's own)",
                                       p.tp_allreduce_max / (1024.0 * 1024), p.tp_allreduce),
                     p.virtual_stages, recompute[static_cast<int>(p.recompute)],
                     p.distributed_optimizer ? "on" : "off", p.dp_overlap ? "overlapped with backward" : "after backward");
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
  else {
    out += fmt::format("workload: inference, batch {}, prompt {} tokens, generate {} tokens{}\n", w.batch, w.prompt,
                       w.generate, w.prefill_chunk > 0 ? fmt::format(", prefill chunk {} tokens", w.prefill_chunk) : "");
    if (w.weights_dtype || w.activations_dtype || w.kv_cache_dtype || w.communication_dtype) {
      const Precision p = precision_of(s);
      out += fmt::format("precision: weights {}, activations {}, kv_cache {}, communication {} (GEMMs compute in {})\n",
                         to_string(p.weights), to_string(p.activations), to_string(p.kv_cache),
                         to_string(p.communication), to_string(gemm_compute_dtype(p.weights, p.activations)));
    }
  }
  out += fmt::format("uses {} of {} GPUs; a tp group spans {}; numerics {}", s.plan.world(), s.topology.total_gpus(),
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
  if (has_any({"hidden", "layers", "heads", "vocab", "ffn"}) || folder == "models") return describe(load_model(path));
  if (has_any({"tp", "pp", "dp", "preset", "partitions", "mappings", "mesh_order"}) || folder == "plans")
    return describe(load_plan(path));
  throw InputError(path, 0, 0, "",
                   "cannot tell what this file describes: expected a topology (gpu, intra, ...), a model (hidden, "
                   "layers, ...), a plan (tp, preset, ...) or a scenario (topology, model, plan)");
}

}  // namespace tpsim
