// Fabric: the topology as directed links and routes, before SimGrid sees it (platform apart from
// behaviour). Endpoints are the GPUs (global index node * gpus_per_node + local) followed, on
// NVSwitch nodes, by one switch endpoint per node (the NVLS in-switch reduction helper, and the
// middle of a closed-form all-to-all's NVLink halves), then, with several nodes, one network
// endpoint per leaf (one for a single switch; a dragonfly's groups are its leaves): the middle of
// a closed-form all-to-all's cross-node halves (collective_plan.hpp).
// Across nodes a GPU sends through its NIC group (the NICs it uses, topology nic.gpus), and, where
// the topology gives them, its PCIe path to those NICs and the link between CPU sockets. GPU ->
// network endpoint of leaf L is the sender's half of a route from the GPU to a GPU under leaf L
// (up to its NIC group's up link, then the spine up when L is another leaf, or the global link to
// group L under minimal routing); network endpoint of leaf L -> GPU is the receiver's half of a
// route from a GPU under leaf L (the spine down when L is another leaf and there is a spine, then
// from its NIC group's down link on). No route joins two middle endpoints.
// Links carry no latency: a route's latency is returned separately and added by the engine per
// step, so SimGrid's max-min sharing stays fair (CM02/LV08 weight a flow's share by its route latency).
#pragma once

#include <string>
#include <vector>

#include "tpsim/spec.hpp"

namespace tpsim::engine {

// This machine's RAM in bytes (0 when the system does not say: then nothing is refused).
double physical_memory();

struct FabricLink {
  std::string name;        // "node0.gpu3.nvlink.up", "node1.nic2.down", "node0.nic4+5+6+7.up",
                           // "node0.gpu1.pcie-nic.up", "node0.socket1to0", "leaf0.spine.up",
                           // "group0.global.up", "group0to3.global"
  double bandwidth = 0;    // B/s in this direction, after the topology's efficiency
};

class Fabric {
 public:
  explicit Fabric(const Topology& topology);   // throws std::invalid_argument on shapes it cannot build

  int gpus() const { return gpus_; }
  int endpoints() const { return gpus_ + switches_ + networks_ + gateways_; }
  int node_of(int endpoint) const;             // -1 for a network endpoint (no node holds it)
  int switch_endpoint(int node) const;         // -1 when the fabric has no NVSwitch
  int leaves() const { return leaves_; }       // leaf switches (1: a single switch)
  int leaf_of(int node) const;                 // a dragonfly's group
  // Whether a cross-leaf route's global link depends on both ends' groups (a dragonfly with
  // minimal routing), not only on the leaf it leaves or enters.
  bool pair_links() const { return pair_ >= 0; }
  int network_endpoint(int leaf) const;        // -1 with one node (no network)
  // A group's global links under minimal routing (pair_links): the middle of a closed-form
  // all-to-all's routes between groups (GPU -> its group's gateway: up to its NIC group's up link;
  // gateway A -> gateway B: the global link; gateway -> GPU of its group: from the NIC group's down
  // link on; each with the latency of a whole route between groups). -1 without pair links.
  int gateway_endpoint(int leaf) const;
  bool inter_node(int src, int dst) const { return node_of(src) != node_of(dst); }
  const std::vector<FabricLink>& links() const { return links_; }
  const Topology& topology() const { return topo_; }

  // Appends the directed links from src to dst (none when src == dst) and returns the route's
  // latency in seconds: intra-node one fabric hop, inter-node two NIC traversals plus switches
  // (the PCIe path and the socket link add bandwidth limits, no latency). A half route through a
  // network endpoint returns the latency of the whole routes it is half of.
  double route(int src, int dst, std::vector<int>& out) const;
  double latency(int src, int dst) const;   // the same latency, without building the route
  // The link a GPU's traffic leaves its node on: the up link of its NIC group (multi-node only).
  int nic_link(int gpu) const;

 private:
  int add_link(std::string name, double bandwidth);
  void add_nic_paths(const std::string& who);
  int socket_link(int node, int from, int to) const;   // -1 when from == to or sockets are not modelled
  bool is_network(int endpoint) const { return endpoint >= gpus_ + switches_; }   // gateways too
  bool is_gateway(int endpoint) const { return endpoint >= gpus_ + switches_ + networks_; }
  double network_latency(int leaf_a, int leaf_b) const;   // two NIC traversals and the switches between
  // A cross-node route is sender_half(src, leaf of dst) then receiver_half(leaf of src, dst).
  void sender_half(int src, int to_leaf, std::vector<int>& out) const;
  void receiver_half(int from_leaf, int dst, std::vector<int>& out) const;

  Topology topo_;
  int gpn_ = 0, gpus_ = 0, switches_ = 0, networks_ = 0, gateways_ = 0, leaves_ = 1;
  std::vector<FabricLink> links_;
  int gpu_port_ = -1;          // nvswitch / pcie: link id 2*g (up) and 2*g+1 (down) from here
  int mesh_ = -1;              // nvlink_mesh: per node gpn*(gpn-1) pair links from here
  int pcie_sw_ = -1;           // pcie: per node per switch an up and a down uplink from here
  int nic_ = -1;               // per node per NIC group an up and a down link from here
  int nic_pcie_ = -1;          // per GPU its PCIe path to its NICs: up 2*g, down 2*g+1 from here
  int socket_ = -1;            // per node per ordered socket pair (a != b) one link from here
  int sockets_ = 0;            // sockets per node (socket_ >= 0)
  int spine_ = -1;             // fat tree, adaptive dragonfly: per leaf an up and a down link from here
  int pair_ = -1;              // minimal dragonfly: per ordered pair of groups one link from here
  int pair_link(int from, int to) const;
  std::vector<std::vector<int>> nic_groups_;   // the distinct NIC sets of a node's GPUs, by first NIC
  std::vector<int> gpu_group_;                 // local GPU -> index into nic_groups_
  std::vector<int> gpu_socket_, group_socket_; // CPU socket of each local GPU / NIC group (sockets_ > 0)
};

}  // namespace tpsim::engine
