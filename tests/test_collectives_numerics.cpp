// Every op x algorithm x group size 2..16 executed on real buffers against directly computed
// results. Two independent checks per case:
//  - buffer level: a symbolic run of the schedule tracks every chunk as an expression over the
//    ranks' input chunks; each output must be exactly the right inputs (each once: a sum for the
//    reductions, a single leaf for copies), and run_schedule's floats must equal that expression
//    evaluated in fp32 in the schedule's own order, bit for bit;
//  - natural layout: run_collective on random inputs of awkward sizes (padding) must give the
//    gathered / scattered / broadcast values bit-exactly and sums within 1e-6 of a double sum.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <random>
#include <string>

#include "tpsim/collective.hpp"

using namespace tpsim;

namespace {

// ---- symbolic interpretation -------------------------------------------------------------------
struct Node {
  int rank = -1, chunk = -1;   // leaf: rank's initial chunk (rank -1: never written)
  int a = -1, b = -1;          // sum node: a + b, in that order
};

struct Symbolic {
  std::vector<Node> nodes;
  std::vector<std::vector<int>> at;   // [participant][chunk] -> node

  explicit Symbolic(const Schedule& s) {
    at.assign(s.participants, std::vector<int>(s.chunks, 0));
    nodes.push_back(Node{});   // node 0: an unwritten chunk
    for (int r = 0; r < s.ranks; ++r)
      for (int c : s.input_chunks[r]) {
        nodes.push_back(Node{r, c, -1, -1});
        at[r][c] = static_cast<int>(nodes.size()) - 1;
      }
    for (const Round& round : s.rounds) {
      std::vector<int> src;
      for (const Transfer& t : round.transfers) src.push_back(at[t.src][t.src_chunk]);
      for (size_t i = 0; i < round.transfers.size(); ++i) {
        const Transfer& t = round.transfers[i];
        if (t.reduce) {
          nodes.push_back(Node{-1, -1, at[t.dst][t.dst_chunk], src[i]});
          at[t.dst][t.dst_chunk] = static_cast<int>(nodes.size()) - 1;
        } else {
          at[t.dst][t.dst_chunk] = src[i];
        }
      }
    }
  }
  void leaves(int n, std::vector<std::pair<int, int>>& out) const {
    const Node& node = nodes[n];
    if (node.a < 0) {
      out.push_back({node.rank, node.chunk});
      return;
    }
    leaves(node.a, out);
    leaves(node.b, out);
  }
  float eval(int n, const std::vector<std::vector<float>>& init, size_t e, size_t j) const {
    const Node& node = nodes[n];
    if (node.a < 0) return node.rank < 0 ? 0.0f : init[node.rank][node.chunk * e + j];
    return eval(node.a, init, e, j) + eval(node.b, init, e, j);
  }
};

bool is_reduction(CollectiveOp op) {
  return op == CollectiveOp::all_reduce || op == CollectiveOp::reduce_scatter || op == CollectiveOp::reduce;
}

// Which (rank, chunk) leaves output position i of rank r must hold, from the op's definition and
// the input lists alone.
std::vector<std::pair<int, int>> expected_leaves(const Schedule& s, int r, size_t i, int root) {
  const int p = s.ranks;
  std::vector<std::pair<int, int>> want;
  const size_t per_seg_out = s.output_chunks[r].size() /
                             (s.op == CollectiveOp::all_gather || s.op == CollectiveOp::all_to_all ? p : 1);
  const int g = static_cast<int>(i / per_seg_out);
  const size_t piece = i % per_seg_out;
  switch (s.op) {
    case CollectiveOp::all_reduce:
    case CollectiveOp::reduce:
      for (int q = 0; q < p; ++q) want.push_back({q, s.input_chunks[q][i]});
      break;
    case CollectiveOp::broadcast: want.push_back({root, s.input_chunks[root][i]}); break;
    case CollectiveOp::all_gather: want.push_back({g, s.input_chunks[g][piece]}); break;
    case CollectiveOp::reduce_scatter:
      for (int q = 0; q < p; ++q) want.push_back({q, s.input_chunks[q][r * per_seg_out + piece]});
      break;
    case CollectiveOp::all_to_all: want.push_back({g, s.input_chunks[g][r * per_seg_out + piece]}); break;
    case CollectiveOp::send_recv: {
      const int from = (r + p - 1) % p;
      want.push_back({from, s.input_chunks[from][i]});
      break;
    }
  }
  std::sort(want.begin(), want.end());
  return want;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void check_buffers(const Schedule& s, int root, unsigned seed) {
  const Symbolic sym(s);
  const size_t e = 3;
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<std::vector<float>> init(s.participants, std::vector<float>(s.chunks * e, 0.0f));
  for (int r = 0; r < s.ranks; ++r)
    for (int c : s.input_chunks[r])
      for (size_t j = 0; j < e; ++j) init[r][c * e + j] = dist(gen);
  std::vector<std::vector<float>> buf = init;
  run_schedule(s, buf, e);
  for (int r = 0; r < s.ranks; ++r)
    for (size_t i = 0; i < s.output_chunks[r].size(); ++i) {
      const int c = s.output_chunks[r][i];
      const int node = sym.at[r][c];
      std::vector<std::pair<int, int>> got;
      sym.leaves(node, got);
      std::sort(got.begin(), got.end());
      INFO("rank " << r << " output position " << i << " (chunk " << c << ")");
      REQUIRE(got == expected_leaves(s, r, i, root));
      if (!is_reduction(s.op)) REQUIRE(sym.nodes[node].a < 0);   // copies never add
      for (size_t j = 0; j < e; ++j) REQUIRE(same_bits(buf[r][c * e + j], sym.eval(node, init, e, j)));
    }
}

// ---- natural layout ----------------------------------------------------------------------------
using Runner = std::function<std::vector<std::vector<float>>(const std::vector<std::vector<float>>&)>;

void check_natural(CollectiveOp op, int p, const CollectiveRunOptions& opt, unsigned seed, const Runner& run) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  // Awkward sizes so chunks need padding; all-to-all needs p equal slots.
  const size_t n = op == CollectiveOp::all_to_all ? 5 * p : 7 * p + 3;
  std::vector<std::vector<float>> in(p, std::vector<float>(n));
  for (auto& v : in)
    for (float& x : v) x = dist(gen);
  const auto out = run(in);
  REQUIRE(out.size() == static_cast<size_t>(p));
  const size_t shard = (n + p - 1) / p;
  auto total = [&](size_t j, double& sum, double& abs_sum) {
    sum = abs_sum = 0;
    for (int q = 0; q < p; ++q) sum += in[q][j], abs_sum += std::fabs(in[q][j]);
  };
  for (int r = 0; r < p; ++r) {
    INFO("rank " << r);
    std::vector<float> exact;   // copies: the exact expected floats
    switch (op) {
      case CollectiveOp::all_reduce:
      case CollectiveOp::reduce:
      case CollectiveOp::reduce_scatter: {
        size_t begin = 0, end = n;
        if (op == CollectiveOp::reduce && r != opt.root) end = 0;
        if (op == CollectiveOp::reduce_scatter) begin = std::min(n, r * shard), end = std::min(n, (r + 1) * shard);
        REQUIRE(out[r].size() == end - begin);
        for (size_t j = begin; j < end; ++j) {
          double sum, abs_sum;
          total(j, sum, abs_sum);
          REQUIRE(std::fabs(out[r][j - begin] - sum) <= 1e-6 * abs_sum);
        }
        continue;
      }
      case CollectiveOp::broadcast: exact = in[opt.root]; break;
      case CollectiveOp::all_gather:
        for (int q = 0; q < p; ++q) exact.insert(exact.end(), in[q].begin(), in[q].end());
        break;
      case CollectiveOp::all_to_all:
        for (int q = 0; q < p; ++q) exact.insert(exact.end(), in[q].begin() + r * 5, in[q].begin() + (r + 1) * 5);
        break;
      case CollectiveOp::send_recv: exact = in[(r + p - 1) % p]; break;
    }
    REQUIRE(out[r].size() == exact.size());
    for (size_t j = 0; j < exact.size(); ++j) REQUIRE(same_bits(out[r][j], exact[j]));
  }
}

constexpr CollectiveOp kAllOps[] = {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter,
                                    CollectiveOp::broadcast,  CollectiveOp::reduce,     CollectiveOp::all_to_all,
                                    CollectiveOp::send_recv};

void check_case(CollectiveOp op, Algorithm algo, int p, int channels, int root, int ranks_per_node = 0) {
  INFO(to_string(op) << " / " << to_string(algo) << " p=" << p << " channels=" << channels << " root=" << root
                     << " ranks_per_node=" << ranks_per_node);
  ScheduleRequest req;
  req.op = op;
  req.algorithm = algo;
  req.ranks = p;
  req.channels = channels;
  req.root = root;
  req.ranks_per_node = ranks_per_node;
  const Schedule s = make_schedule(req);
  const unsigned seed = 1000u * p + 10u * static_cast<unsigned>(op) + static_cast<unsigned>(algo);
  check_buffers(s, root, seed);
  CollectiveRunOptions opt;
  opt.channels = channels;
  opt.root = root;
  opt.ranks_per_node = ranks_per_node;
  check_natural(op, p, opt, seed + 1, [&](const auto& in) { return run_collective(op, algo, in, opt); });
}

void sweep(Algorithm algo, std::initializer_list<CollectiveOp> ops, bool powers_of_two_only = false) {
  for (CollectiveOp op : ops)
    for (int p = 2; p <= 16; ++p) {
      if (powers_of_two_only && (p & (p - 1)) != 0) continue;
      for (int channels : {1, 2}) {
        const bool rooted = op == CollectiveOp::broadcast || op == CollectiveOp::reduce;
        check_case(op, algo, p, channels, 0);
        if (rooted) check_case(op, algo, p, channels, p - 1), check_case(op, algo, p, channels, p / 2);
      }
    }
}

}  // namespace

TEST_CASE("ring: every op, groups 2..16, 1 and 2 channels") {
  sweep(Algorithm::ring, {kAllOps[0], kAllOps[1], kAllOps[2], kAllOps[3], kAllOps[4], kAllOps[5], kAllOps[6]});
}

TEST_CASE("direct: every op, groups 2..16") {
  sweep(Algorithm::direct, {kAllOps[0], kAllOps[1], kAllOps[2], kAllOps[3], kAllOps[4], kAllOps[5], kAllOps[6]});
}

TEST_CASE("double binary tree: all_reduce, broadcast, reduce, groups 2..16") {
  sweep(Algorithm::tree, {CollectiveOp::all_reduce, CollectiveOp::broadcast, CollectiveOp::reduce});
}

TEST_CASE("halving-doubling: all_reduce, all_gather, reduce_scatter on 2, 4, 8, 16") {
  sweep(Algorithm::halving_doubling,
        {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter}, true);
}

TEST_CASE("nvls: all_reduce through the switch, groups 2..16") { sweep(Algorithm::nvls, {CollectiveOp::all_reduce}); }

TEST_CASE("hierarchical: all_reduce, all_gather, reduce_scatter on 2..4 nodes x 2..4 ranks per node") {
  for (CollectiveOp op : {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter})
    for (int nodes = 2; nodes <= 4; ++nodes)
      for (int per = 2; per <= 4; ++per)
        for (int channels : {1, 2}) check_case(op, Algorithm::hierarchical, nodes * per, channels, 0, per);
}

TEST_CASE("NCCL's tree across nodes: all_reduce over 1..5 nodes x 2..4 ranks (chain + double binary tree)") {
  for (int nodes = 1; nodes <= 5; ++nodes)
    for (int per = 2; per <= 4; ++per)
      for (int channels : {1, 2}) check_case(CollectiveOp::all_reduce, Algorithm::tree, nodes * per, channels, 0, per);
}

TEST_CASE("nvls_tree: all_reduce over 1..5 nodes x 1..4 ranks, a switch per node") {
  for (int nodes = 1; nodes <= 5; ++nodes)
    for (int per = 1; per <= 4; ++per)
      for (int channels : {1, 2}) check_case(CollectiveOp::all_reduce, Algorithm::nvls_tree, nodes * per, channels, 0, per);
}

TEST_CASE("pat: all_gather and reduce_scatter, groups 2..16 (powers of two and not)") {
  sweep(Algorithm::pat, {CollectiveOp::all_gather, CollectiveOp::reduce_scatter});
}

TEST_CASE("one_shot and two_shot: all_reduce, groups 2..16, 1 and 2 channels") {
  sweep(Algorithm::one_shot, {CollectiveOp::all_reduce});
  sweep(Algorithm::two_shot, {CollectiveOp::all_reduce});
}

TEST_CASE("one-shot sums in rank order on every rank: with rounding after every add, all ranks hold the same bits") {
  // Each rank's own buffer takes its place in the sum (a local read) rather than starting it, so
  // rounding after every add (bf16 here) cannot make the replicas differ.
  auto bf16 = [](float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
    std::memcpy(&x, &u, 4);
    return x;
  };
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  for (int p : {3, 8, 13}) {
    std::vector<std::vector<float>> in(p, std::vector<float>(999));
    for (auto& v : in)
      for (float& x : v) x = bf16(value(gen));
    CollectiveRunOptions opt;
    opt.round_fn = +bf16;
    const auto out = run_collective(CollectiveOp::all_reduce, Algorithm::one_shot, in, opt);
    for (int r = 1; r < p; ++r) CHECK(std::memcmp(out[r].data(), out[0].data(), out[0].size() * 4) == 0);
    // ... and that sum is rank order 0, 1, ..., p-1, rounded after each add.
    for (size_t j = 0; j < in[0].size(); ++j) {
      float sum = in[0][j];
      for (int r = 1; r < p; ++r) sum = bf16(sum + in[r][j]);
      REQUIRE(out[p - 1][j] == sum);
    }
  }
}

TEST_CASE("auto resolves to ring for reductions and direct for all-to-all") {
  check_case(CollectiveOp::all_reduce, Algorithm::automatic, 5, 1, 0);
  check_case(CollectiveOp::all_to_all, Algorithm::automatic, 5, 1, 0);
}

TEST_CASE("bf16 rounding after every hop is applied to each partial sum") {
  // round_fn truncating to a multiple of 1/4: a ring of 1.1 + 1.1 + 1.1 rounds at each of the two
  // hops: floor4(floor4(2.2) + 1.1) = floor4(2.0 + 1.1) = 3.0, while the exact sum is 3.3.
  auto quarter = [](float x) { return std::floor(x * 4.0f) / 4.0f; };
  std::vector<std::vector<float>> in(3, std::vector<float>(3, 1.1f));
  CollectiveRunOptions opt;
  opt.round_fn = +quarter;
  const auto out = run_collective(CollectiveOp::all_reduce, Algorithm::ring, in, opt);
  for (const auto& v : out)
    for (float x : v) CHECK(x == 3.0f);
}

TEST_CASE("a resolved instance: each channel runs its slice with the group in its own order") {
  // NCCL's multi-node rings rotate each node's block of ranks per channel; any permutation must
  // still give every rank its natural result (sums within 1e-6, copies bit for bit).
  // (send/recv is left out: its meaning, rank r to rank r+1, is the ring order itself.)
  for (CollectiveOp op : kAllOps)
    for (Algorithm algo : {Algorithm::ring, Algorithm::direct})
      for (int p : {4, 6, 8})
        for (int channels : {1, 2, 3}) {
          CollectiveInstance instance;
          instance.algorithm = algo;
          instance.protocol = "Simple";
          std::mt19937 gen(17u * p + channels);
          for (int c = 0; c < channels; ++c) {
            std::vector<int> order(p);
            std::iota(order.begin(), order.end(), 0);
            if (c > 0) std::shuffle(order.begin(), order.end(), gen);
            instance.channel_orders.push_back(order);
          }
          const int root = (op == CollectiveOp::broadcast || op == CollectiveOp::reduce) ? p - 1 : 0;
          if (op == CollectiveOp::send_recv) continue;
          INFO(std::string(to_string(op)) << " / " << std::string(to_string(algo)) << " p=" << p << " channels=" << channels);
          CollectiveRunOptions opt;
          opt.root = root;
          check_natural(op, p, opt, 99u + p, [&](const auto& in) { return run_collective(op, instance, in, root); });
        }
}

TEST_CASE("an unresolved instance is refused, not guessed") {
  const std::vector<std::vector<float>> in(2, std::vector<float>(4, 1.0f));
  CHECK_THROWS_AS(run_collective(CollectiveOp::all_reduce, CollectiveInstance{}, in), std::logic_error);
}
