// Topology YAML -> Topology (see topologies/dgx-h100.yaml for the schema). Quantities carry units.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <filesystem>

#include "spec/limits.hpp"
#include "spec/loading.hpp"

namespace tpsim {

const std::vector<std::string>& known_nccl_versions() {
  static const std::vector<std::string> versions = {"2.23"};
  return versions;
}

int gpu_compute_capability(const std::string& gpu_name) {
  std::string name = gpu_name;
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // Longer names first where one contains another (A100 before A10).
  static const std::pair<const char*, int> generations[] = {
      {"V100", 70},  {"A100", 80}, {"A800", 80}, {"A30", 80},  {"A10", 86},   {"A40", 86},   {"L40", 89},
      {"L4", 89},    {"H100", 90}, {"H200", 90}, {"H800", 90}, {"H20", 90},   {"B100", 100}, {"B200", 100},
      {"B300", 100}};
  for (const auto& [key, cc] : generations)
    if (name.find(key) != std::string::npos) return cc;
  return 0;
}

}  // namespace tpsim

namespace tpsim::spec_detail {

namespace {

// The rows of a measured GEMM table, checked here, where the error can name the table's line and
// column: read lazily by the cost model, a nan or negative time reached the engine (SimGrid aborts
// on a non-finite duration; a negative one shortens the step).
std::vector<GemmMeasurement> parse_gemm_rows(std::istream& in, const std::string& path, const std::string& key) {
  std::vector<GemmMeasurement> rows;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#' || line.rfind("m,", 0) == 0) continue;
    std::vector<std::string> fields;
    std::vector<int> columns;
    for (size_t start = 0;;) {
      const size_t comma = line.find(',', start);
      fields.push_back(line.substr(start, comma - start));
      columns.push_back(int(start) + 1);
      if (comma == std::string::npos || fields.size() == 5) break;
      start = comma + 1;
    }
    const auto bad = [&](size_t field, const std::string& problem) {
      throw InputError(path, number, columns[std::min(field, columns.size() - 1)], key, problem);
    };
    if (fields.size() < 5) bad(fields.size(), "expected a row 'm,n,k,dtype,time_us'");
    GemmMeasurement row;
    int64_t* dims[] = {&row.m, &row.n, &row.k};
    for (size_t f = 0; f < 3; ++f) {
      const std::string& t = fields[f];
      const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), *dims[f]);
      if (ec != std::errc() || end != t.data() + t.size() || *dims[f] <= 0 || *dims[f] > limits::kGpus * limits::kFfn)
        bad(f, "expected a positive integer " + std::string(1, "mnk"[f]) + ", got " + shown(YAML::Node(t)));
    }
    if (!std::ranges::count(std::vector<std::string>{"fp32", "tf32", "bf16", "fp16", "fp8"}, fields[3]))
      bad(3, "expected a dtype fp32 | tf32 | bf16 | fp16 | fp8, got " + shown(YAML::Node(fields[3])));
    row.dtype = fields[3];
    double us = 0;
    const std::string& t = fields[4];
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), us);
    if (ec != std::errc() || end != t.data() + t.size() || !std::isfinite(us) || !(us >= 1e-6 && us <= 1e13))
      bad(4, "expected a time in microseconds from 1e-06 to 1e+13 (a measured kernel), got " + shown(YAML::Node(t)));
    row.seconds = us * 1e-6;
    rows.push_back(std::move(row));
  }
  // Sorted for the cost model's binary search; a shape measured twice keeps its last row.
  std::stable_sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return x.key() < y.key(); });
  std::vector<GemmMeasurement> unique;
  for (auto& row : rows) {
    if (!unique.empty() && unique.back().key() == row.key()) unique.back() = std::move(row);
    else unique.push_back(std::move(row));
  }
  return unique;
}

GpuSpec read_gpu(const Map& g) {
  g.only({"name", "peak", "hbm", "hbm_bandwidth", "hbm_efficiency", "sms", "launch_overhead", "gemm_efficiency", "gemm_efficiency_fp8",
          "gemm_stream_k", "gemm_table", "attention_score_bytes"});
  GpuSpec gpu;
  gpu.name = g.string("name");
  gpu.compute_capability = gpu_compute_capability(gpu.name);
  const Map peak = g.map("peak");
  peak.only({"fp32", "tf32", "bf16", "fp16", "fp8"});
  const std::pair<const char*, DType> dtypes[] = {
      {"fp32", DType::fp32}, {"tf32", DType::tf32}, {"bf16", DType::bf16}, {"fp16", DType::fp16}, {"fp8", DType::fp8}};
  for (const auto& [key, dtype] : dtypes)
    if (peak.has(key) || dtype == DType::bf16) gpu.peak_flops[dtype] = peak.quantity(key, "flops");
  // Tensor cores run fp16 at the bf16 rate on every GPU in the presets; say so once here.
  if (!gpu.peak_flops.count(DType::fp16)) gpu.peak_flops[DType::fp16] = gpu.peak_flops.at(DType::bf16);
  gpu.hbm_bytes = g.quantity("hbm", "bytes");
  gpu.hbm_bandwidth = g.quantity("hbm_bandwidth", "bandwidth");
  gpu.hbm_efficiency = g.quantity("hbm_efficiency", "number", 1.0);
  gpu.sms = static_cast<int>(g.integer_up_to("sms", limits::kCount, "SMs"));
  gpu.launch_overhead = g.quantity("launch_overhead", "time", 0.0);
  gpu.gemm_efficiency = g.quantity("gemm_efficiency", "number", 0.8);
  gpu.gemm_efficiency_fp8 = g.quantity("gemm_efficiency_fp8", "number", 0.0);
  gpu.gemm_stream_k = g.boolean("gemm_stream_k", false);
  gpu.attention_score_bytes = g.quantity("attention_score_bytes", "number", 0.0);   // 0 = fused attention
  if (g.has("gemm_table")) {
    // A measured table sits next to the topology file that names it.
    namespace fs = std::filesystem;
    fs::path table(g.string("gemm_table"));
    if (table.is_relative()) table = fs::path(folder_of(g.source().file)) / table;
    if (const std::string why = unreadable_file(table.string()); !why.empty())   // a folder is not "no such file"
      g.fail("gemm_table", why == "no such file" ? "no such file '" + table.string() + "'" : "'" + table.string() + "' " + why);
    gpu.gemm_table = table.string();
    std::ifstream in(gpu.gemm_table);
    if (!in) g.fail("gemm_table", "cannot read '" + gpu.gemm_table + "'");
    gpu.gemm_measured = parse_gemm_rows(in, gpu.gemm_table, g.key_path("gemm_table"));
  }
  return gpu;
}

IntraNodeSpec read_intra(const Map& in) {
  in.only({"fabric", "bandwidth", "efficiency", "latency", "nvls", "nvls_bandwidth", "pcie_switches", "host_bandwidth"});
  IntraNodeSpec intra;
  const std::string fabric = in.choice("fabric", {"nvswitch", "nvlink_mesh", "pcie"});
  intra.fabric = fabric == "nvswitch" ? IntraFabric::nvswitch : fabric == "pcie" ? IntraFabric::pcie : IntraFabric::nvlink_mesh;
  intra.bandwidth = in.quantity("bandwidth", "bandwidth");
  intra.efficiency = in.quantity("efficiency", "number", 1.0);
  intra.latency = in.quantity("latency", "time", 0.0);
  intra.nvls = in.boolean("nvls", false);
  if (intra.nvls && intra.fabric != IntraFabric::nvswitch)
    in.fail("nvls", "nvls (in-switch reduction) needs fabric nvswitch, got fabric " + fabric);
  intra.nvls_bandwidth = intra.nvls ? in.quantity("nvls_bandwidth", "bandwidth") : in.quantity("nvls_bandwidth", "bandwidth", 0.0);
  for (const char* key : {"pcie_switches", "host_bandwidth"})
    if (intra.fabric != IntraFabric::pcie && in.has(key))
      in.fail(key, std::string(key) + " only applies to fabric pcie, got fabric " + fabric);
  if (intra.fabric == IntraFabric::pcie) {
    intra.pcie_switches = static_cast<int>(in.integer_up_to("pcie_switches", limits::kCount, "PCIe switches", 1));
    intra.host_bandwidth = in.quantity("host_bandwidth", "bandwidth", intra.bandwidth);
  }
  return intra;
}

// Rail-optimised default: NICs split the node's GPUs evenly (NIC i serves a contiguous block), or
// with more NICs than GPUs each GPU gets count/gpus NICs.
std::vector<std::vector<int>> rail_optimised(const Map& nic, int count, int gpus_per_node) {
  std::vector<std::vector<int>> gpus(count > 0 ? count : 0);
  if (count <= 0 || gpus_per_node <= 0) return gpus;
  if (count <= gpus_per_node && gpus_per_node % count == 0) {
    for (int g = 0; g < gpus_per_node; ++g) gpus[g / (gpus_per_node / count)].push_back(g);
  } else if (count > gpus_per_node && count % gpus_per_node == 0) {
    for (int i = 0; i < count; ++i) gpus[i].push_back(i / (count / gpus_per_node));
  } else {
    nic.fail("count", std::to_string(count) + " NICs do not split " + std::to_string(gpus_per_node) +
                          " GPUs evenly; list nic.gpus explicitly");
  }
  return gpus;
}

// A list of small integers, e.g. sockets: [0, 0, 1, 1].
std::vector<int> read_indices(const Map& n, const std::string& key) {
  const YAML::Node list = n.value(key);
  if (!list.IsSequence()) n.fail(key, "expected a list of integers like [0, 0, 1, 1], got " + shown(list));
  std::vector<int> out;
  for (const auto& x : list) {
    int v = 0;
    if (!x.IsScalar() || !YAML::convert<int>::decode(x, v))
      fail_at(n.source(), x, n.key_path(key), "expected an integer, got " + shown(x));
    out.push_back(v);
  }
  return out;
}

NicSpec read_nic(const Map& n, int gpus_per_node) {
  n.only({"count", "bandwidth", "efficiency", "latency", "gpus", "pcie_bandwidth", "sockets", "gpu_sockets",
          "socket_bandwidth", "host_cpu"});
  NicSpec nic;
  nic.count = static_cast<int>(n.integer_up_to("count", limits::kCount, "NICs per node"));
  nic.bandwidth = n.quantity("bandwidth", "bandwidth");
  nic.efficiency = n.quantity("efficiency", "number", 1.0);
  nic.latency = n.quantity("latency", "time", 0.0);
  nic.pcie_bandwidth = n.quantity("pcie_bandwidth", "bandwidth", 0.0);
  nic.socket_bandwidth = n.quantity("socket_bandwidth", "bandwidth", 0.0);
  const std::string cpu = n.choice("host_cpu", {"intel", "amd", "arm"}, "");
  nic.host_cpu = cpu == "intel" ? HostCpu::intel
                 : cpu == "amd" ? HostCpu::amd
                 : cpu == "arm" ? HostCpu::arm
                                : HostCpu::unstated;
  if (n.has("sockets")) nic.sockets = read_indices(n, "sockets");
  if (n.has("gpu_sockets")) nic.gpu_sockets = read_indices(n, "gpu_sockets");
  if (!n.has("gpus")) {
    nic.gpus = rail_optimised(n, nic.count, gpus_per_node);
    return nic;
  }
  const YAML::Node list = n.value("gpus");
  const std::string key = n.key_path("gpus");
  if (!list.IsSequence()) n.fail("gpus", "expected a list of GPU lists like [[0], [1]], got " + shown(list));
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node served = list[i];
    const std::string at = key + "[" + std::to_string(i) + "]";
    if (!served.IsSequence()) fail_at(n.source(), served, at, "expected a list of local GPU indices, got " + shown(served));
    std::vector<int> ids;
    for (const auto& g : served) {
      int id = 0;
      if (!g.IsScalar() || !YAML::convert<int>::decode(g, id))
        fail_at(n.source(), g, at, "expected a GPU index, got " + shown(g));
      ids.push_back(id);
    }
    nic.gpus.push_back(ids);
  }
  return nic;
}

NetworkSpec read_network(const Map& w, int nodes) {
  w.only({"kind", "switch_latency", "nodes_per_leaf", "oversubscription", "nodes_per_group", "groups", "routing"});
  NetworkSpec net;
  const std::string kind = w.choice("kind", {"single_switch", "fat_tree", "dragonfly"}, "single_switch");
  net.kind = kind == "fat_tree" ? NetworkKind::fat_tree : kind == "dragonfly" ? NetworkKind::dragonfly : NetworkKind::single_switch;
  net.switch_latency = w.quantity("switch_latency", "time", 0.0);
  auto only_for = [&](const char* key, NetworkKind k, const char* k_name) {
    if (net.kind != k && w.has(key)) w.fail(key, std::string(key) + " only applies to kind " + k_name + ", got kind " + kind);
  };
  only_for("nodes_per_leaf", NetworkKind::fat_tree, "fat_tree");
  for (const char* key : {"nodes_per_group", "groups", "routing"}) only_for(key, NetworkKind::dragonfly, "dragonfly");
  if (net.kind == NetworkKind::single_switch && w.has("oversubscription"))
    w.fail("oversubscription", "oversubscription only applies to kinds fat_tree and dragonfly, got kind single_switch");
  if (net.kind == NetworkKind::fat_tree)   // default: one leaf holds every node
    net.nodes_per_leaf = static_cast<int>(w.integer_up_to("nodes_per_leaf", limits::kGpus, "nodes", nodes));
  if (net.kind == NetworkKind::dragonfly) {
    net.nodes_per_leaf = static_cast<int>(w.integer_up_to("nodes_per_group", limits::kGpus, "nodes", nodes));
    net.groups = static_cast<int>(w.integer_up_to("groups", limits::kGpus, "groups", 0));
    net.routing = w.choice("routing", {"adaptive", "minimal"}, "adaptive") == "minimal" ? GroupRouting::minimal
                                                                                          : GroupRouting::adaptive;
  }
  if (net.kind != NetworkKind::single_switch) net.oversubscription = w.quantity("oversubscription", "number", 1.0);
  return net;
}

// NCCL-style calibration: a launch latency plus per-protocol terms (see CollectiveTuning).
CollectiveTuning read_collectives(const Map& c) {
  c.only({"launch_latency", "protocols", "nccl_version", "nvls_tree_efficiency"});
  CollectiveTuning tuning;
  tuning.launch_latency = c.quantity("launch_latency", "time", 0.0);
  tuning.nvls_tree_efficiency = c.quantity("nvls_tree_efficiency", "number", 1.0);
  if (c.has("nccl_version")) {
    tuning.nccl_version = c.string("nccl_version");
    const auto& known = known_nccl_versions();
    if (std::find(known.begin(), known.end(), tuning.nccl_version) == known.end())
      c.fail("nccl_version", "tpsim has no tuning model for NCCL '" + tuning.nccl_version + "'; known: " + join(known) +
                                 did_you_mean(tuning.nccl_version, known));
  }
  if (!c.has("protocols")) return tuning;
  const YAML::Node list = c.value("protocols");
  if (!list.IsSequence()) c.fail("protocols", "expected a list of protocols like [{name: LL, ...}], got " + shown(list));
  for (size_t i = 0; i < list.size(); ++i) {
    const Map p(c.source(), list[i], c.key_path("protocols") + "[" + std::to_string(i) + "]");
    p.only({"name", "base_latency", "intra_step_latency", "inter_step_latency", "efficiency", "max_bandwidth", "min_time"});
    ProtocolSpec proto;
    proto.name = p.choice("name", {"LL", "LL128", "Simple"});
    for (const auto& earlier : tuning.protocols)
      if (earlier.name == proto.name) p.fail("name", "protocol '" + proto.name + "' is listed twice");
    proto.base_latency = p.quantity("base_latency", "time", 0.0);
    proto.intra_step_latency = p.quantity("intra_step_latency", "time", 0.0);
    proto.inter_step_latency = p.quantity("inter_step_latency", "time", 0.0);
    proto.efficiency = p.quantity("efficiency", "number", 1.0);
    proto.max_bandwidth = p.quantity("max_bandwidth", "bandwidth", 0.0);
    proto.min_time = p.quantity("min_time", "time", 0.0);
    tuning.protocols.push_back(proto);
  }
  return tuning;
}

}  // namespace

Topology read_topology(const Source& src, const YAML::Node& root, const std::string& fallback_name) {
  const Map t(src, root, "topology");
  t.only({"name", "gpu", "gpus_per_node", "nodes", "intra", "nic", "network", "price_per_gpu_hour", "collectives"});
  Topology topo;
  topo.name = t.string("name", fallback_name);
  topo.gpu = read_gpu(t.map("gpu"));
  topo.gpus_per_node = static_cast<int>(t.integer_up_to("gpus_per_node", limits::kGpusPerNode, "GPUs in a node"));
  topo.nodes = static_cast<int>(t.integer_up_to("nodes", limits::kGpus, "nodes", 1));
  const int64_t gpus = int64_t(topo.gpus_per_node) * topo.nodes;   // each <= kGpus: no overflow
  if (const std::string why = limits::too_many_gpus(gpus); !why.empty())
    t.fail("nodes", fmt::format("nodes x gpus_per_node = {} GPUs, {}", gpus, why));
  topo.intra = read_intra(t.map("intra"));
  if (t.has("nic")) topo.nic = read_nic(t.map("nic"), topo.gpus_per_node);
  if (t.has("network")) topo.network = read_network(t.map("network"), topo.nodes);
  topo.price_per_gpu_hour = t.quantity("price_per_gpu_hour", "number", 0.0);
  if (t.has("collectives")) topo.collectives = read_collectives(t.map("collectives"));
  // NCCL's tuning model looks its constants up by GPU generation.
  if (!topo.collectives.nccl_version.empty() && topo.gpu.compute_capability == 0)
    t.map("gpu").fail("name", "collectives.nccl_version needs the GPU generation, and '" + topo.gpu.name +
                                  "' names none tpsim knows (V100, A100, H100, H200, B200, L40S, ...)");
  return topo;
}

}  // namespace tpsim::spec_detail

namespace tpsim {

std::vector<std::vector<int>> nics_of_gpus(const NicSpec& nic, int gpus_per_node) {
  std::vector<std::vector<int>> of(std::max(0, gpus_per_node));
  if (nic.count <= 0 || gpus_per_node <= 0) return of;
  if (nic.gpus.empty()) {
    for (int g = 0; g < gpus_per_node; ++g) of[g].push_back(int(int64_t(g) * nic.count / gpus_per_node));
    return of;
  }
  for (int i = 0; i < int(nic.gpus.size()) && i < nic.count; ++i)
    for (int g : nic.gpus[i])
      if (g >= 0 && g < gpus_per_node && (of[g].empty() || of[g].back() != i)) of[g].push_back(i);
  return of;
}

double uplink_bandwidth(const Topology& t) {
  std::vector<char> used(size_t(std::max(t.nic.count, 0)), 0);
  for (const auto& nics : nics_of_gpus(t.nic, t.gpus_per_node))
    for (int n : nics) used[size_t(n)] = 1;
  return double(t.network.nodes_per_leaf) * double(std::count(used.begin(), used.end(), 1)) * t.nic.bandwidth *
         t.nic.efficiency / t.network.oversubscription;
}

std::vector<GemmMeasurement> read_gemm_table(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path, 0, 0, "topology.gpu.gemm_table", "cannot read the GEMM table");
  return spec_detail::parse_gemm_rows(in, path, "topology.gpu.gemm_table");
}

}  // namespace tpsim
