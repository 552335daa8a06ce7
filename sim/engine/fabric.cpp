// Topology -> directed links and routes (see fabric.hpp). Linear in the GPU count: no route table.
#include "engine/fabric.hpp"
#include "spec/limits.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace tpsim::engine {

namespace {
std::string gpu_name(int node, int local) { return "node" + std::to_string(node) + ".gpu" + std::to_string(local); }
void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("topology '" + what);
}

// Memory a simulation takes per GPU of the topology (measured: spec/limits.hpp).
constexpr double kBytesPerGpu = spec_detail::limits::kSimulatorBytesPerGpu;

}  // namespace

double physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0;
}

int Fabric::add_link(std::string name, double bandwidth) {
  links_.push_back({std::move(name), bandwidth});
  return static_cast<int>(links_.size()) - 1;
}

Fabric::Fabric(const Topology& t) : topo_(t), gpn_(t.gpus_per_node), gpus_(t.total_gpus()) {
  const std::string who = t.name + "': ";
  require(gpn_ > 0 && t.nodes > 0, who + "gpus_per_node and nodes must be positive");
  // Refused before building: past half the machine's memory the run would swap or be killed.
  if (const double need = gpus_ * kBytesPerGpu, memory = physical_memory(); memory > 0 && need > memory / 2) {
    char line[300];
    std::snprintf(line, sizeof line, "%s%d GPUs take ~%.1f GiB to simulate (4.5 KiB each), more than half of this "
                  "machine's %.1f GiB: use fewer topology.nodes (only the plan's GPUs need to exist)",
                  who.c_str(), gpus_, need / (1 << 30), memory / (1 << 30));
    require(false, line);
  }
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
    add_nic_paths(who);
  }
}

// NIC groups: a GPU's traffic spreads evenly over all its NICs (as NCCL spreads its channels over
// them) and GPUs that share a NIC share all of them (the spec checks it), so each distinct NIC set
// is one link per direction at the set's summed rate. Under max-min sharing, k equal links that
// every flow crosses in equal parts give each flow exactly what one link k times as fast gives it,
// so the one link is exact for that spreading and keeps one flow per transfer, where a link per NIC
// would split every transfer into k flows. A set shared by several GPUs is one link, so their
// traffic contends on it; NICs that serve no GPU (storage, management) get no link.
void Fabric::add_nic_paths(const std::string& who) {
  const Topology& t = topo_;
  const auto of = nics_of_gpus(t.nic, gpn_);
  for (int l = 0; l < gpn_; ++l) {
    require(!of[l].empty(), who + "GPU " + std::to_string(l) + " is served by no NIC (nic.gpus)");
    if (std::find(nic_groups_.begin(), nic_groups_.end(), of[l]) == nic_groups_.end()) nic_groups_.push_back(of[l]);
  }
  // By first NIC, so one NIC per GPU keeps NIC order (and the links' names and order).
  std::sort(nic_groups_.begin(), nic_groups_.end());
  for (size_t a = 0; a < nic_groups_.size(); ++a) {
    for (size_t b = 0; b < a; ++b)
      for (int i : nic_groups_[a])
        require(std::find(nic_groups_[b].begin(), nic_groups_[b].end(), i) == nic_groups_[b].end(),
                who + "GPUs that share NIC " + std::to_string(i) + " must use the same NICs (nic.gpus)");
  }
  gpu_group_.assign(gpn_, -1);
  for (int l = 0; l < gpn_; ++l)
    gpu_group_[l] = static_cast<int>(std::find(nic_groups_.begin(), nic_groups_.end(), of[l]) - nic_groups_.begin());

  const double nic_bw = t.nic.bandwidth * t.nic.efficiency;
  nic_ = static_cast<int>(links_.size());
  for (int n = 0; n < t.nodes; ++n)
    for (const auto& group : nic_groups_) {
      std::string base = "node" + std::to_string(n) + ".nic";
      for (size_t k = 0; k < group.size(); ++k) base += (k ? "+" : "") + std::to_string(group[k]);
      add_link(base + ".up", nic_bw * static_cast<double>(group.size()));
      add_link(base + ".down", nic_bw * static_cast<double>(group.size()));
    }

  // Each GPU's PCIe path to its NICs (its own x16 link into the switch the NICs hang off), used as
  // given, like intra.host_bandwidth: write the achievable rate.
  if (t.nic.pcie_bandwidth > 0) {
    nic_pcie_ = static_cast<int>(links_.size());
    for (int g = 0; g < gpus_; ++g) {
      add_link(gpu_name(g / gpn_, g % gpn_) + ".pcie-nic.up", t.nic.pcie_bandwidth);
      add_link(gpu_name(g / gpn_, g % gpn_) + ".pcie-nic.down", t.nic.pcie_bandwidth);
    }
  }

  // A GPU whose NICs hang off another CPU socket crosses the link between the sockets (UPI / xGMI)
  // out and back: one link per ordered pair of sockets, shared by every GPU that crosses it.
  if (!t.nic.sockets.empty() && int(t.nic.gpu_sockets.size()) == gpn_ && int(t.nic.sockets.size()) == t.nic.count &&
      t.nic.socket_bandwidth > 0) {
    gpu_socket_ = t.nic.gpu_sockets;
    for (const auto& group : nic_groups_) group_socket_.push_back(t.nic.sockets[group.front()]);
    bool crossing = false;
    for (int l = 0; l < gpn_; ++l) crossing = crossing || gpu_socket_[l] != group_socket_[gpu_group_[l]];
    if (crossing) {
      for (int s : t.nic.sockets) sockets_ = std::max(sockets_, s + 1);
      for (int s : t.nic.gpu_sockets) sockets_ = std::max(sockets_, s + 1);
      socket_ = static_cast<int>(links_.size());
      for (int n = 0; n < t.nodes; ++n)
        for (int a = 0; a < sockets_; ++a)
          for (int b = 0; b < sockets_; ++b)
            if (a != b)
              add_link("node" + std::to_string(n) + ".socket" + std::to_string(a) + "to" + std::to_string(b),
                       t.nic.socket_bandwidth);
    }
  }

  const NetworkSpec& net = t.network;
  if (net.kind != NetworkKind::single_switch && net.nodes_per_leaf > 0 && net.nodes_per_leaf < t.nodes) {
    require(net.oversubscription > 0, who + "network.oversubscription must be positive");
    leaves_ = (t.nodes + net.nodes_per_leaf - 1) / net.nodes_per_leaf;
    const double up_bw = uplink_bandwidth(t);
    const bool dragonfly = net.kind == NetworkKind::dragonfly;
    if (dragonfly && net.routing == GroupRouting::minimal) {
      // Minimal routing: only the direct global links between two groups, a balanced dragonfly's
      // share of the group's global links for each of the machine's other groups.
      const int machine = std::max(net.groups, leaves_);
      require(leaves_ <= spec_detail::limits::kMinimalRoutingGroups,
              who + "minimal routing models a link per pair of groups, at most " +
                  std::to_string(spec_detail::limits::kMinimalRoutingGroups) + " groups");
      pair_ = static_cast<int>(links_.size());
      for (int a = 0; a < leaves_; ++a)
        for (int b = 0; b < leaves_; ++b)
          if (a != b) add_link("group" + std::to_string(a) + "to" + std::to_string(b) + ".global", up_bw / (machine - 1));
    } else {
      // One aggregated link per leaf and direction stands for its uplinks to all spines (ideal
      // ECMP), or a group's global links under ideal adaptive routing (every path open).
      const char* kind = dragonfly ? ".global." : ".spine.";
      spine_ = static_cast<int>(links_.size());
      for (int l = 0; l < leaves_; ++l) {
        const std::string base = (dragonfly ? "group" : "leaf") + std::to_string(l) + kind;
        add_link(base + "up", up_bw);
        add_link(base + "down", up_bw);
      }
    }
  }
  networks_ = leaves_;   // one network endpoint per leaf, one for a single switch
  if (pair_ >= 0) gateways_ = leaves_;
}

int Fabric::node_of(int endpoint) const {
  return endpoint < gpus_ ? endpoint / gpn_ : is_network(endpoint) ? -1 : endpoint - gpus_;
}

int Fabric::switch_endpoint(int node) const { return switches_ > 0 ? gpus_ + node : -1; }

int Fabric::leaf_of(int node) const { return leaves_ > 1 ? node / topo_.network.nodes_per_leaf : 0; }

int Fabric::pair_link(int from, int to) const { return pair_ + from * (leaves_ - 1) + (to < from ? to : to - 1); }

int Fabric::network_endpoint(int leaf) const { return networks_ > 0 ? gpus_ + switches_ + leaf : -1; }

int Fabric::gateway_endpoint(int leaf) const { return gateways_ > 0 ? gpus_ + switches_ + networks_ + leaf : -1; }

// Switches crossed: a fat tree's leaf, or leaf, spine and leaf; a dragonfly's worst minimal path,
// the two end routers within a group, and those plus the two that hold the global link between
// groups (adaptive routing taken as minimal when the path is free).
double Fabric::network_latency(int leaf_a, int leaf_b) const {
  const bool dragonfly = topo_.network.kind == NetworkKind::dragonfly;
  const int switches = leaf_a == leaf_b ? (dragonfly ? 2 : 1) : (dragonfly ? 4 : 3);
  return 2 * topo_.nic.latency + switches * topo_.network.switch_latency;
}

int Fabric::nic_link(int gpu) const {
  if (nic_ < 0) throw std::invalid_argument("nic_link: a single-node fabric has no NIC links");
  return nic_ + 2 * (node_of(gpu) * static_cast<int>(nic_groups_.size()) + gpu_group_[gpu % gpn_]);
}

int Fabric::socket_link(int node, int from, int to) const {
  if (socket_ < 0 || from == to) return -1;
  return socket_ + node * sockets_ * (sockets_ - 1) + from * (sockets_ - 1) + (to < from ? to : to - 1);
}

// [Its PCIe path, the socket link] out of the source GPU's NIC group, and, when the destination is
// under another leaf (in another group), the spine up (the global links to that group).
void Fabric::sender_half(int src, int to_leaf, std::vector<int>& out) const {
  const int ns = node_of(src), ls = src % gpn_;
  if (nic_pcie_ >= 0) out.push_back(nic_pcie_ + 2 * src);
  if (socket_ >= 0) {
    const int l = socket_link(ns, gpu_socket_[ls], group_socket_[gpu_group_[ls]]);
    if (l >= 0) out.push_back(l);
  }
  out.push_back(nic_link(src));
  if (leaf_of(ns) != to_leaf) out.push_back(pair_ >= 0 ? pair_link(leaf_of(ns), to_leaf) : spine_ + 2 * leaf_of(ns));
}

// The spine down when the source is under another leaf (nothing more when the sender's half holds
// the global link), then into the peer's NIC group [, the socket link, its PCIe path].
void Fabric::receiver_half(int from_leaf, int dst, std::vector<int>& out) const {
  const int nd = node_of(dst), ld = dst % gpn_;
  if (leaf_of(nd) != from_leaf && spine_ >= 0) out.push_back(spine_ + 2 * leaf_of(nd) + 1);
  out.push_back(nic_link(dst) + 1);
  if (socket_ >= 0) {
    const int l = socket_link(nd, group_socket_[gpu_group_[ld]], gpu_socket_[ld]);
    if (l >= 0) out.push_back(l);
  }
  if (nic_pcie_ >= 0) out.push_back(nic_pcie_ + 2 * dst + 1);
}

double Fabric::route(int src, int dst, std::vector<int>& out) const {
  if (src == dst) return 0;
  const int ns = node_of(src), nd = node_of(dst);
  if (is_gateway(src) || is_gateway(dst)) {   // a third of a route between groups (gateway_endpoint)
    const int first = gpus_ + switches_ + networks_;
    if (is_gateway(src) && is_gateway(dst)) {
      out.push_back(pair_link(src - first, dst - first));
      return network_latency(src - first, dst - first);
    }
    if (is_network(src) && is_network(dst)) throw std::invalid_argument("a gateway reaches GPUs and other gateways");
    const int leaf = (is_gateway(src) ? src : dst) - first, gpu_leaf = leaf_of(is_gateway(src) ? nd : ns);
    if (leaf != gpu_leaf) throw std::invalid_argument("a gateway reaches only the GPUs of its own group");
    if (is_gateway(dst)) sender_half(src, leaf, out);
    else receiver_half(leaf, dst, out);
    return network_latency(leaf, (leaf + 1) % leaves_);   // a route between groups
  }
  if (is_network(src) || is_network(dst)) {   // half of a cross-node route (see fabric.hpp)
    if (src >= gpus_ && dst >= gpus_) throw std::invalid_argument("a network endpoint only reaches GPUs");
    const int leaf = (is_network(src) ? src : dst) - gpus_ - switches_;
    const int gpu_leaf = leaf_of(is_network(src) ? nd : ns);
    if (is_network(dst)) sender_half(src, leaf, out);
    else receiver_half(leaf, dst, out);
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
  // Across nodes: [its PCIe path, the socket link] out of the source GPU's NIC group, through the
  // leaf (and spine), into the peer's NIC group [, the socket link, its PCIe path].
  sender_half(src, leaf_of(nd), out);
  receiver_half(leaf_of(ns), dst, out);
  return network_latency(leaf_of(ns), leaf_of(nd));
}

double Fabric::latency(int src, int dst) const {
  if (src == dst) return 0;
  if (is_gateway(src) || is_gateway(dst)) {
    const int first = gpus_ + switches_ + networks_;
    if (is_gateway(src) && is_gateway(dst)) return network_latency(src - first, dst - first);
    const int leaf = (is_gateway(src) ? src : dst) - first;
    return network_latency(leaf, (leaf + 1) % leaves_);
  }
  if (is_network(src)) return network_latency(src - gpus_ - switches_, leaf_of(node_of(dst)));
  if (is_network(dst)) return network_latency(leaf_of(node_of(src)), dst - gpus_ - switches_);
  const int ns = node_of(src), nd = node_of(dst);
  if (ns == nd) return topo_.intra.latency;
  return network_latency(leaf_of(ns), leaf_of(nd));
}

}  // namespace tpsim::engine
