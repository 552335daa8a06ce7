// Topology -> directed links and routes (see fabric.hpp). Linear in the GPU count: no route table.
#include "engine/fabric.hpp"

#include <stdexcept>

namespace tpsim::engine {

namespace {
std::string gpu_name(int node, int local) { return "node" + std::to_string(node) + ".gpu" + std::to_string(local); }
void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("topology '" + what);
}
}  // namespace

int Fabric::add_link(std::string name, double bandwidth) {
  links_.push_back({std::move(name), bandwidth});
  return static_cast<int>(links_.size()) - 1;
}

Fabric::Fabric(const Topology& t) : topo_(t), gpn_(t.gpus_per_node), gpus_(t.total_gpus()) {
  const std::string who = t.name + "': ";
  require(gpn_ > 0 && t.nodes > 0, who + "gpus_per_node and nodes must be positive");
  require(t.intra.bandwidth > 0 || gpn_ == 1, who + "intra.bandwidth must be positive");
  const double intra_bw = t.intra.bandwidth * t.intra.efficiency;

  switch (t.intra.fabric) {
    case IntraFabric::nvswitch:
    case IntraFabric::pcie: {
      const char* kind = t.intra.fabric == IntraFabric::nvswitch ? ".nvlink" : ".pcie";
      gpu_port_ = static_cast<int>(links_.size());
      for (int g = 0; g < gpus_; ++g) {
        add_link(gpu_name(g / gpn_, g % gpn_) + kind + ".up", intra_bw);
        add_link(gpu_name(g / gpn_, g % gpn_) + kind + ".down", intra_bw);
      }
      if (t.intra.fabric == IntraFabric::nvswitch) {
        switches_ = t.nodes;
      } else if (t.intra.pcie_switches > 1) {
        require(gpn_ % t.intra.pcie_switches == 0, who + "gpus_per_node must divide evenly over pcie_switches");
        require(t.intra.host_bandwidth > 0, who + "intra.host_bandwidth must be positive with several PCIe switches");
        pcie_sw_ = static_cast<int>(links_.size());
        for (int n = 0; n < t.nodes; ++n)
          for (int s = 0; s < t.intra.pcie_switches; ++s) {
            const std::string base = "node" + std::to_string(n) + ".pcie" + std::to_string(s);
            add_link(base + ".up", t.intra.host_bandwidth);
            add_link(base + ".down", t.intra.host_bandwidth);
          }
      }
      break;
    }
    case IntraFabric::nvlink_mesh: {
      // Each GPU's bandwidth into the fabric is split evenly over its direct links to the others.
      mesh_ = static_cast<int>(links_.size());
      const double pair_bw = gpn_ > 1 ? intra_bw / (gpn_ - 1) : intra_bw;
      for (int n = 0; n < t.nodes; ++n)
        for (int a = 0; a < gpn_; ++a)
          for (int b = 0; b < gpn_; ++b)
            if (a != b) add_link(gpu_name(n, a) + "-gpu" + std::to_string(b) + ".nvlink", pair_bw);
      break;
    }
  }

  if (t.nodes > 1) {
    require(t.nic.count > 0 && t.nic.bandwidth > 0, who + "several nodes need nic.count and nic.bandwidth");
    gpu_nic_.assign(gpn_, -1);
    for (int i = 0; i < static_cast<int>(t.nic.gpus.size()) && i < t.nic.count; ++i)
      for (int local : t.nic.gpus[i])
        if (local >= 0 && local < gpn_ && gpu_nic_[local] < 0) gpu_nic_[local] = i;
    for (int l = 0; l < gpn_; ++l)
      if (gpu_nic_[l] < 0) gpu_nic_[l] = l * t.nic.count / gpn_;   // unlisted GPUs share NICs evenly
    const double nic_bw = t.nic.bandwidth * t.nic.efficiency;
    nic_ = static_cast<int>(links_.size());
    for (int n = 0; n < t.nodes; ++n)
      for (int i = 0; i < t.nic.count; ++i) {
        const std::string base = "node" + std::to_string(n) + ".nic" + std::to_string(i);
        add_link(base + ".up", nic_bw);
        add_link(base + ".down", nic_bw);
      }
    if (t.network.kind == NetworkKind::fat_tree && t.network.nodes_per_leaf > 0 &&
        t.network.nodes_per_leaf < t.nodes) {
      require(t.network.oversubscription > 0, who + "network.oversubscription must be positive");
      leaves_ = (t.nodes + t.network.nodes_per_leaf - 1) / t.network.nodes_per_leaf;
      // One aggregated link per leaf and direction stands for its uplinks to all spines (ideal
      // ECMP): capacity = the leaf's NIC downlink capacity / oversubscription.
      const double up_bw = t.network.nodes_per_leaf * t.nic.count * nic_bw / t.network.oversubscription;
      spine_ = static_cast<int>(links_.size());
      for (int l = 0; l < leaves_; ++l) {
        add_link("leaf" + std::to_string(l) + ".spine.up", up_bw);
        add_link("leaf" + std::to_string(l) + ".spine.down", up_bw);
      }
    }
    networks_ = leaves_;
  }
}

int Fabric::node_of(int endpoint) const {
  return endpoint < gpus_ ? endpoint / gpn_ : is_network(endpoint) ? -1 : endpoint - gpus_;
}

int Fabric::switch_endpoint(int node) const { return switches_ > 0 ? gpus_ + node : -1; }

int Fabric::leaf_of(int node) const { return spine_ >= 0 ? node / topo_.network.nodes_per_leaf : 0; }

int Fabric::network_endpoint(int leaf) const { return networks_ > 0 ? gpus_ + switches_ + leaf : -1; }

double Fabric::network_latency(int leaf_a, int leaf_b) const {
  return 2 * topo_.nic.latency + (leaf_a == leaf_b ? 1 : 3) * topo_.network.switch_latency;
}

int Fabric::nic_of(int gpu) const { return gpu_nic_[gpu % gpn_]; }

double Fabric::route(int src, int dst, std::vector<int>& out) const {
  if (src == dst) return 0;
  const int ns = node_of(src), nd = node_of(dst);
  if (is_network(src) || is_network(dst)) {   // half of a cross-node route (see fabric.hpp)
    if (src >= gpus_ && dst >= gpus_) throw std::invalid_argument("a network endpoint only reaches GPUs");
    const int leaf = (is_network(src) ? src : dst) - gpus_ - switches_;
    const int gpu_leaf = leaf_of(is_network(src) ? nd : ns);
    if (is_network(dst)) {
      out.push_back(nic_ + 2 * (ns * topo_.nic.count + nic_of(src)));
      if (leaf != gpu_leaf) out.push_back(spine_ + 2 * gpu_leaf);
    } else {
      if (leaf != gpu_leaf) out.push_back(spine_ + 2 * gpu_leaf + 1);
      out.push_back(nic_ + 2 * (nd * topo_.nic.count + nic_of(dst)) + 1);
    }
    return network_latency(leaf, gpu_leaf);
  }
  if (src >= gpus_ || dst >= gpus_) {   // to or from a node's NVSwitch
    if (ns != nd) throw std::invalid_argument("an NVSwitch only reaches the GPUs of its own node");
    if (src < gpus_) out.push_back(gpu_port_ + 2 * src);
    if (dst < gpus_) out.push_back(gpu_port_ + 2 * dst + 1);
    return topo_.intra.latency;
  }
  if (ns == nd) {
    const int a = src % gpn_, b = dst % gpn_;
    if (mesh_ >= 0) {
      out.push_back(mesh_ + ns * gpn_ * (gpn_ - 1) + a * (gpn_ - 1) + (b < a ? b : b - 1));
      return topo_.intra.latency;
    }
    out.push_back(gpu_port_ + 2 * src);
    if (pcie_sw_ >= 0) {
      const int per = gpn_ / topo_.intra.pcie_switches, sa = a / per, sb = b / per;
      if (sa != sb) {   // up to the CPU root complex and down the other switch
        out.push_back(pcie_sw_ + 2 * (ns * topo_.intra.pcie_switches + sa));
        out.push_back(pcie_sw_ + 2 * (ns * topo_.intra.pcie_switches + sb) + 1);
      }
    }
    out.push_back(gpu_port_ + 2 * dst + 1);
    return topo_.intra.latency;
  }
  // Across nodes: out of the source GPU's NIC, through the leaf (and spine), into the peer's NIC
  // (rail-optimised: the GPU->NIC PCIe hop is not a bottleneck and is not modelled).
  out.push_back(nic_ + 2 * (ns * topo_.nic.count + nic_of(src)));
  int switches = 1;
  if (spine_ >= 0) {
    const int la = ns / topo_.network.nodes_per_leaf, lb = nd / topo_.network.nodes_per_leaf;
    if (la != lb) {
      out.push_back(spine_ + 2 * la);
      out.push_back(spine_ + 2 * lb + 1);
      switches = 3;   // leaf, spine, leaf
    }
  }
  out.push_back(nic_ + 2 * (nd * topo_.nic.count + nic_of(dst)) + 1);
  return 2 * topo_.nic.latency + switches * topo_.network.switch_latency;
}

double Fabric::latency(int src, int dst) const {
  if (src == dst) return 0;
  if (is_network(src)) return network_latency(src - gpus_ - switches_, leaf_of(node_of(dst)));
  if (is_network(dst)) return network_latency(leaf_of(node_of(src)), dst - gpus_ - switches_);
  const int ns = node_of(src), nd = node_of(dst);
  if (ns == nd) return topo_.intra.latency;
  return network_latency(leaf_of(ns), leaf_of(nd));
}

}  // namespace tpsim::engine
