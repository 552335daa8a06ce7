// Names of collective operations and algorithms, as written in YAML, on the command line and in
// reports. Parsing accepts "all_reduce", "allreduce" and "all-reduce" alike.
#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>

#include "tpsim/collective.hpp"

namespace tpsim {

namespace {

constexpr CollectiveOp kOps[] = {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter,
                                 CollectiveOp::broadcast,  CollectiveOp::reduce,     CollectiveOp::all_to_all,
                                 CollectiveOp::send_recv};
constexpr Algorithm kAlgorithms[] = {Algorithm::automatic, Algorithm::ring,  Algorithm::tree,
                                     Algorithm::halving_doubling, Algorithm::direct, Algorithm::nvls,
                                     Algorithm::hierarchical, Algorithm::nvls_tree, Algorithm::pat,
                                     Algorithm::one_shot, Algorithm::two_shot};

// Lower case, '-' and ' ' read as '_', then '_' dropped: "All-Reduce" -> "allreduce".
std::string squash(const std::string& s) {
  std::string out;
  for (char c : s)
    if (c != '_' && c != '-' && c != ' ') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

template <class T, size_t N>
std::string valid_names(const T (&values)[N]) {
  std::string names;
  for (T v : values) names += std::string(names.empty() ? "" : ", ") + to_string(v);
  return names;
}

}  // namespace

const char* to_string(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::all_reduce: return "all_reduce";
    case CollectiveOp::all_gather: return "all_gather";
    case CollectiveOp::reduce_scatter: return "reduce_scatter";
    case CollectiveOp::broadcast: return "broadcast";
    case CollectiveOp::reduce: return "reduce";
    case CollectiveOp::all_to_all: return "all_to_all";
    case CollectiveOp::send_recv: return "send_recv";
  }
  return "?";
}

const char* to_string(Algorithm a) {
  switch (a) {
    case Algorithm::automatic: return "auto";
    case Algorithm::ring: return "ring";
    case Algorithm::tree: return "tree";
    case Algorithm::halving_doubling: return "halving_doubling";
    case Algorithm::direct: return "direct";
    case Algorithm::nvls: return "nvls";
    case Algorithm::hierarchical: return "hierarchical";
    case Algorithm::nvls_tree: return "nvls_tree";
    case Algorithm::pat: return "pat";
    case Algorithm::one_shot: return "one_shot";
    case Algorithm::two_shot: return "two_shot";
  }
  return "?";
}

CollectiveOp parse_collective_op(const std::string& s) {
  const std::string key = squash(s);
  for (CollectiveOp op : kOps)
    if (squash(to_string(op)) == key) return op;
  if (key == "alltoall" || key == "a2a") return CollectiveOp::all_to_all;
  if (key == "sendrecv" || key == "p2p") return CollectiveOp::send_recv;
  throw std::invalid_argument("unknown collective op '" + s + "' (valid: " + valid_names(kOps) + ")");
}

Algorithm parse_algorithm(const std::string& s) {
  const std::string key = squash(s);
  for (Algorithm a : kAlgorithms)
    if (squash(to_string(a)) == key) return a;
  if (key == "automatic") return Algorithm::automatic;
  if (key == "hd" || key == "recursivehalvingdoubling") return Algorithm::halving_doubling;
  throw std::invalid_argument("unknown collective algorithm '" + s + "' (valid: " + valid_names(kAlgorithms) + ")");
}

}  // namespace tpsim

namespace tpsim {

std::string describe(const CollectiveInstance& instance) {
  if (!instance.resolved()) return "unresolved";
  std::string out = std::string(to_string(instance.algorithm)) + "/" + (instance.protocol.empty() ? "ideal" : instance.protocol);
  const size_t channels = std::max<size_t>(1, instance.channel_orders.size());
  out += ", " + std::to_string(channels) + (channels == 1 ? " channel" : " channels");
  if (instance.pipeline > 0) out += ", " + std::to_string(instance.pipeline) + (instance.pipeline == 1 ? " chunk" : " chunks");
  return out;
}

ScheduleRequest channel_request(CollectiveOp op, const CollectiveInstance& instance, int ranks,
                                const std::vector<int>& channel_order, int root) {
  ScheduleRequest request;
  request.op = op;
  request.algorithm = instance.algorithm;
  request.ranks = ranks;
  if (op == CollectiveOp::broadcast || op == CollectiveOp::reduce)
    request.root = static_cast<int>(std::find(channel_order.begin(), channel_order.end(), root) - channel_order.begin());
  request.ranks_per_node = instance.ranks_per_node;
  request.pipeline = instance.pipeline;
  return request;
}

}  // namespace tpsim
