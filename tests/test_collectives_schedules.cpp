// Schedules against closed forms: round counts, bytes per rank, edge totals and the latency term
// per algorithm; names and errors; no chunk read and written in the same round (so ranks can run
// ahead of each other without a barrier); and a planted bug the numerics must catch.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>

#include "tpsim/collective.hpp"

using namespace tpsim;

namespace {

Schedule make(CollectiveOp op, Algorithm algo, int p, int channels = 1, int root = 0, int per_node = 0) {
  ScheduleRequest r;
  r.op = op;
  r.algorithm = algo;
  r.ranks = p;
  r.channels = channels;
  r.root = root;
  r.ranks_per_node = per_node;
  return make_schedule(r);
}

int rounds(const Schedule& s) { return static_cast<int>(s.rounds.size()); }
int log2i(int p) { return static_cast<int>(std::lround(std::log2(p))); }
int default_k(int p) { return std::max(p, 4); }
int tree_height(int p) { return 1 + static_cast<int>(std::floor(std::log2(p - 1))); }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no exception)";
}

// Within one round no participant's chunk is both read and written, and a chunk written several
// times in a round gets at most one copy, listed before the reductions into it.
void check_no_hazard(const Schedule& s) {
  for (size_t r = 0; r < s.rounds.size(); ++r) {
    std::set<std::pair<int, int>> read, written, reduced;
    for (const Transfer& t : s.rounds[r].transfers) read.insert({t.src, t.src_chunk});
    for (const Transfer& t : s.rounds[r].transfers) {
      const std::pair<int, int> d{t.dst, t.dst_chunk};
      INFO(to_string(s.op) << "/" << to_string(s.algorithm) << " p=" << s.ranks << " round " << r << " dst " << t.dst
                           << " chunk " << t.dst_chunk);
      CHECK(read.count(d) == 0);
      if (!t.reduce) CHECK(written.count(d) == 0);
      written.insert(d);
      // One-shot reads its own buffer in its place in the sum: a local read, never a self-send of
      // the chunk it writes.
      if (s.algorithm == Algorithm::one_shot) CHECK(t.src_chunk != t.dst_chunk);
      else CHECK(t.src != t.dst);
    }
  }
}

}  // namespace

TEST_CASE("names round-trip and parse the usual spellings") {
  for (auto s : {"all_reduce", "allreduce", "all-reduce", "AllReduce"})
    CHECK(parse_collective_op(s) == CollectiveOp::all_reduce);
  CHECK(parse_collective_op("alltoall") == CollectiveOp::all_to_all);
  CHECK(parse_collective_op("reduce-scatter") == CollectiveOp::reduce_scatter);
  CHECK(parse_algorithm("auto") == Algorithm::automatic);
  CHECK(parse_algorithm("halving-doubling") == Algorithm::halving_doubling);
  for (Algorithm a : {Algorithm::automatic, Algorithm::ring, Algorithm::tree, Algorithm::halving_doubling,
                      Algorithm::direct, Algorithm::nvls, Algorithm::hierarchical, Algorithm::nvls_tree, Algorithm::pat,
                      Algorithm::one_shot, Algorithm::two_shot})
    CHECK(parse_algorithm(to_string(a)) == a);
  CHECK(parse_algorithm("oneshot") == Algorithm::one_shot);   // was read as direct, a two-round all-reduce
  CHECK(parse_algorithm("two-shot") == Algorithm::two_shot);
  const std::string msg = message_of([] { parse_collective_op("allreduse"); });
  CHECK(msg.find("allreduse") != std::string::npos);
  CHECK(msg.find("reduce_scatter") != std::string::npos);   // lists the valid names
  CHECK(message_of([] { parse_algorithm("rings"); }).find("halving_doubling") != std::string::npos);
}

TEST_CASE("unsupported combinations say which and why") {
  const std::string hd = message_of([] { make(CollectiveOp::all_reduce, Algorithm::halving_doubling, 6); });
  CHECK(hd.find("power-of-two") != std::string::npos);
  CHECK(hd.find("all_reduce") != std::string::npos);
  CHECK(message_of([] { make(CollectiveOp::all_gather, Algorithm::nvls, 8); }).find("nvls") != std::string::npos);
  CHECK(message_of([] { make(CollectiveOp::all_gather, Algorithm::tree, 8); }).find("tree") != std::string::npos);
  CHECK(message_of([] { make(CollectiveOp::all_to_all, Algorithm::halving_doubling, 8); }) != "(no exception)");
  CHECK(message_of([] { make(CollectiveOp::broadcast, Algorithm::hierarchical, 8, 1, 0, 4); }).find("hierarchical") !=
        std::string::npos);
  CHECK(message_of([] { make(CollectiveOp::all_reduce, Algorithm::hierarchical, 8, 1, 0, 3); })
            .find("ranks_per_node") != std::string::npos);
  CHECK(message_of([] { make(CollectiveOp::broadcast, Algorithm::ring, 4, 1, 4); }).find("root") != std::string::npos);
  CHECK(message_of([] { make(CollectiveOp::all_reduce, Algorithm::ring, 0); }) != "(no exception)");
  CHECK(message_of([] { make(CollectiveOp::all_reduce, Algorithm::ring, 4, 0); }).find("channels") !=
        std::string::npos);
}

TEST_CASE("ring: 2(p-1) rounds for all-reduce, p-1 for AG/RS, every rank sends the nccl-tests bytes") {
  const double S = 1 << 20;
  for (int p = 2; p <= 16; ++p)
    for (int ch : {1, 4}) {
      INFO("p=" << p << " channels=" << ch);
      const Schedule ar = make(CollectiveOp::all_reduce, Algorithm::ring, p, ch);
      CHECK(ar.chunks == p * ch);
      CHECK(rounds(ar) == 2 * (p - 1));
      CHECK(critical_rounds(ar) == 2 * (p - 1));
      for (double b : bytes_sent(ar, S)) CHECK(b == rel(2.0 * (p - 1) / p * S, 1e-12));
      CHECK(chunk_bytes(ar, S) == rel(2.0 * (p - 1) / p * S, 1e-12));
      // Flow view: p edges i -> i+1, each carrying 2(p-1) chunks per channel.
      const auto edges = schedule_edges(ar);
      REQUIRE(edges.size() == static_cast<size_t>(p == 2 ? 2 : p));
      for (const Edge& e : edges) {
        CHECK(e.dst == (e.src + 1) % p);
        CHECK(e.chunks == 2.0 * (p - 1) * ch);
      }
      for (CollectiveOp op : {CollectiveOp::all_gather, CollectiveOp::reduce_scatter}) {
        const Schedule s = make(op, Algorithm::ring, p, ch);
        CHECK(rounds(s) == p - 1);
        for (double b : bytes_sent(s, S)) CHECK(b == rel((p - 1.0) / p * S, 1e-12));
      }
      // Pipelined chain: K + p - 2 rounds, the last rank of the chain sends nothing.
      const Schedule bc = make(CollectiveOp::broadcast, Algorithm::ring, p, ch, p - 1);
      CHECK(rounds(bc) == default_k(p) + p - 2);
      CHECK(critical_rounds(bc) == default_k(p) + p - 2);
      CHECK(bytes_sent(bc, S)[p - 1] == rel(S));
      CHECK(bytes_sent(bc, S)[p - 2] == 0.0);
      CHECK(rounds(make(CollectiveOp::reduce, Algorithm::ring, p, ch)) == default_k(p) + p - 2);
      const Schedule a2a = make(CollectiveOp::all_to_all, Algorithm::ring, p, ch);
      CHECK(rounds(a2a) == p - 1);
      CHECK(chunk_bytes(a2a, S) == rel((p - 1) / 2.0 * S, 1e-12));
    }
}

TEST_CASE("double binary tree: K+2H-1 rounds for all-reduce, K+H-1 for broadcast/reduce") {
  for (int p = 2; p <= 16; ++p) {
    INFO("p=" << p);
    const int k = default_k(p), h = tree_height(p);
    const Schedule ar = make(CollectiveOp::all_reduce, Algorithm::tree, p);
    CHECK(ar.chunks == 2 * k);
    CHECK(rounds(ar) == k + 2 * h - 1);
    CHECK(critical_rounds(ar) == k + 2 * h - 1);
    CHECK(rounds(make(CollectiveOp::broadcast, Algorithm::tree, p, 1, p / 2)) == k + h - 1);
    CHECK(rounds(make(CollectiveOp::reduce, Algorithm::tree, p, 1, p - 1)) == k + h - 1);
    // Each non-root rank sends its half up in each tree: S/2 per tree, all-reduce adds the children.
    const auto up = bytes_sent(make(CollectiveOp::reduce, Algorithm::tree, p), 1.0);
    CHECK(up[0] == 0.0);
    for (int r = 1; r < p; ++r) CHECK(up[r] == rel(1.0));
  }
  // The point of two trees: in all-reduce no rank is a leaf (sends nothing down) in both trees.
  for (int p = 2; p <= 16; ++p) {
    INFO("p=" << p);
    const Schedule ar = make(CollectiveOp::all_reduce, Algorithm::tree, p);
    std::vector<int> inner(p, 0);
    for (const Round& round : ar.rounds)
      for (const Transfer& t : round.transfers)
        if (!t.reduce) inner[t.src] = 1;
    for (int r = 0; r < p; ++r) CHECK(inner[r] == 1);
  }
}

TEST_CASE("halving-doubling: log2 p rounds per phase, (p-1)/p S per phase per rank") {
  for (int p : {2, 4, 8, 16}) {
    const Schedule ar = make(CollectiveOp::all_reduce, Algorithm::halving_doubling, p);
    CHECK(rounds(ar) == 2 * log2i(p));
    for (double b : bytes_sent(ar, 1.0)) CHECK(b == rel(2.0 * (p - 1) / p));
    CHECK(rounds(make(CollectiveOp::all_gather, Algorithm::halving_doubling, p)) == log2i(p));
    CHECK(rounds(make(CollectiveOp::reduce_scatter, Algorithm::halving_doubling, p)) == log2i(p));
  }
}

TEST_CASE("direct, nvls and hierarchical closed forms") {
  for (int p = 2; p <= 16; ++p) {
    const Schedule ar = make(CollectiveOp::all_reduce, Algorithm::direct, p);
    CHECK(rounds(ar) == 2);
    for (double b : bytes_sent(ar, 1.0)) CHECK(b == rel(2.0 * (p - 1) / p));
    const Schedule a2a = make(CollectiveOp::all_to_all, Algorithm::direct, p, 2);
    CHECK(rounds(a2a) == 1);
    CHECK(schedule_edges(a2a).size() == static_cast<size_t>(p * (p - 1)));
    for (const Edge& e : schedule_edges(a2a)) CHECK(e.chunks == 2.0);

    const Schedule nv = make(CollectiveOp::all_reduce, Algorithm::nvls, p);
    CHECK(nv.participants == p + 1);
    CHECK(rounds(nv) == default_k(p) + 1);
    const auto sent = bytes_sent(nv, 1.0);
    for (int r = 0; r < p; ++r) CHECK(sent[r] == rel(1.0));   // S up, S down per rank
    CHECK(sent[p] == rel(p));                                   // one copy per switch port
  }
  for (int nodes = 1; nodes <= 4; ++nodes)
    for (int per = 1; per <= 4; ++per) {
      const int p = nodes * per;
      const Schedule h = make(CollectiveOp::all_reduce, Algorithm::hierarchical, p, 1, 0, per);
      CHECK(rounds(h) == 2 * (per - 1) + 2 * (nodes - 1));
      const double want = 2.0 * (per - 1) / per + 2.0 * (nodes - 1) / nodes / per;
      for (double b : bytes_sent(h, 1.0)) CHECK(b == rel(want));
      // Inter-node edges carry only shard-sized pieces: rank n*per+l talks to (n+1)*per+l.
      for (const Edge& e : schedule_edges(h))
        if (e.src / per != e.dst / per) CHECK(e.src % per == e.dst % per);
      for (CollectiveOp op : {CollectiveOp::all_gather, CollectiveOp::reduce_scatter}) {
        const Schedule g = make(op, Algorithm::hierarchical, p, 1, 0, per);
        CHECK(rounds(g) == (per - 1) + (nodes - 1));
        const double each = (per - 1.0) / per + (nodes - 1.0) / p;
        for (double b : bytes_sent(g, 1.0)) CHECK(b == rel(each));
        check_no_hazard(g);
      }
    }
}

TEST_CASE("one-shot: 1 step, (p-1) S in and out per rank; two-shot: 2 steps, 2(p-1)/p S; all-reduce only") {
  for (int p = 2; p <= 16; ++p) {
    INFO("p=" << p);
    const Schedule one = make(CollectiveOp::all_reduce, Algorithm::one_shot, p);
    CHECK(rounds(one) == 1);
    CHECK(critical_rounds(one) == 1);
    for (double b : bytes_sent(one, 1.0)) CHECK(b == rel(p - 1.0));   // its whole buffer to every peer
    CHECK(chunk_bytes(one, 1.0) == rel(p - 1.0));
    CHECK(schedule_edges(one).size() == size_t(p * (p - 1)));        // every rank reads every peer once
    for (const Edge& e : schedule_edges(one)) CHECK(e.chunks == 1.0);
    CHECK(one.rounds[0].transfers.size() == size_t(p * p));          // + p local reads of its own buffer
    const Schedule two = make(CollectiveOp::all_reduce, Algorithm::two_shot, p);
    CHECK(rounds(two) == 2);
    CHECK(critical_rounds(two) == 2);
    for (double b : bytes_sent(two, 1.0)) CHECK(b == rel(2.0 * (p - 1) / p));
    CHECK(schedule_edges(two).size() == size_t(p * (p - 1)));
    for (const Edge& e : schedule_edges(two)) CHECK(e.chunks == 2.0);   // a shard each way per peer pair
  }
  for (CollectiveOp op : {CollectiveOp::all_gather, CollectiveOp::reduce_scatter, CollectiveOp::broadcast}) {
    CHECK(message_of([&] { make(op, Algorithm::one_shot, 8); }).find("one_shot: one-shot is an all-reduce") != std::string::npos);
    CHECK(message_of([&] { make(op, Algorithm::two_shot, 8); }).find("two-shot is an all-reduce") != std::string::npos);
  }
}

TEST_CASE("busbw factors are nccl-tests'") {
  CHECK(busbw_factor(CollectiveOp::all_reduce, 8) == rel(1.75));
  CHECK(busbw_factor(CollectiveOp::all_gather, 8) == rel(0.875));
  CHECK(busbw_factor(CollectiveOp::reduce_scatter, 4) == rel(0.75));
  CHECK(busbw_factor(CollectiveOp::broadcast, 8) == 1.0);
  // nccl-tests all_to_all_perf.cu: factor (nranks - 1) / nranks (a rank's own block stays put).
  CHECK(busbw_factor(CollectiveOp::all_to_all, 8) == rel(0.875));
}

TEST_CASE("no chunk is read and written in one round, no self-sends, for every algorithm") {
  const CollectiveOp ops[] = {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter,
                              CollectiveOp::broadcast,  CollectiveOp::reduce,     CollectiveOp::all_to_all,
                              CollectiveOp::send_recv};
  for (int p = 2; p <= 16; ++p)
    for (CollectiveOp op : ops) {
      check_no_hazard(make(op, Algorithm::ring, p, 2, p - 1));
      check_no_hazard(make(op, Algorithm::direct, p, 1, p - 1));
      if (op == CollectiveOp::all_reduce || op == CollectiveOp::broadcast || op == CollectiveOp::reduce)
        check_no_hazard(make(op, Algorithm::tree, p, 1, p / 2));
      if ((p & (p - 1)) == 0 && (op == CollectiveOp::all_reduce || op == CollectiveOp::all_gather ||
                                 op == CollectiveOp::reduce_scatter))
        check_no_hazard(make(op, Algorithm::halving_doubling, p));
    }
  check_no_hazard(make(CollectiveOp::all_reduce, Algorithm::nvls, 8));
  for (int p = 2; p <= 16; ++p) {
    check_no_hazard(make(CollectiveOp::all_reduce, Algorithm::one_shot, p, 2));
    check_no_hazard(make(CollectiveOp::all_reduce, Algorithm::two_shot, p, 2));
  }
  check_no_hazard(make(CollectiveOp::all_reduce, Algorithm::hierarchical, 12, 1, 0, 4));
}

TEST_CASE("a planted bug in a ring schedule shows up as a wrong result") {
  const int p = 4;
  std::vector<std::vector<float>> in(p);
  for (int r = 0; r < p; ++r)
    for (int j = 0; j < 8; ++j) in[r].push_back(static_cast<float>(r * 10 + j));
  const Schedule good = make(CollectiveOp::all_reduce, Algorithm::ring, p);
  Schedule bad = good;
  Transfer& t = bad.rounds[1].transfers[2];
  t.src_chunk = (t.src_chunk + 1) % p;   // reads the wrong chunk in the reduce-scatter phase
  const auto right = run_collective(good, in);
  const auto wrong = run_collective(bad, in);
  CHECK(right[0][0] == 0.0f + 10 + 20 + 30);
  CHECK(right != wrong);
  // ... and a corrupted index that leaves the buffer is an error, not a crash.
  bad.rounds[0].transfers[0].dst_chunk = 99;
  CHECK_THROWS_AS(run_collective(bad, in), std::invalid_argument);
}

TEST_CASE("awkward sizes are padded, never truncated") {
  // 10 elements over 4 ranks reduce-scattered: shards of 3, 3, 3, 1.
  std::vector<std::vector<float>> in(4, std::vector<float>(10));
  for (int r = 0; r < 4; ++r)
    for (int j = 0; j < 10; ++j) in[r][j] = static_cast<float>(j + 1);
  const auto rs = run_collective(CollectiveOp::reduce_scatter, Algorithm::ring, in);
  CHECK(rs[0] == std::vector<float>{4, 8, 12});
  CHECK(rs[3] == std::vector<float>{40});
  const auto ar = run_collective(CollectiveOp::all_reduce, Algorithm::tree, in);
  for (const auto& v : ar) CHECK(v.size() == 10);
  CHECK(ar[2][9] == 40.0f);
  std::vector<std::vector<float>> uneven = {{1, 2}, {3}};
  CHECK_THROWS_AS(run_collective(CollectiveOp::all_gather, Algorithm::ring, uneven), std::invalid_argument);
}

TEST_CASE("flow_view's closed forms equal the built schedule's edges and critical rounds") {
  auto same = [](const ScheduleRequest& r) {
    INFO(to_string(r.op) << "/" << to_string(r.algorithm) << " p=" << r.ranks << " channels=" << r.channels
                         << " root=" << r.root << " per_node=" << r.ranks_per_node);
    const Schedule s = make_schedule(r);
    const FlowView f = flow_view(r);
    const auto edges = schedule_edges(s);
    REQUIRE(f.edges.size() == edges.size());
    for (size_t i = 0; i < edges.size(); ++i) {
      CHECK(f.edges[i].src == edges[i].src);
      CHECK(f.edges[i].dst == edges[i].dst);
      CHECK(f.edges[i].chunks == edges[i].chunks);
    }
    CHECK(f.rounds == critical_rounds(s));
    CHECK(f.rounds == rounds(s));   // these schedules have no slack: every round is on the path
    CHECK(f.participants == s.participants);
    CHECK(f.chunks == s.chunks);
    // Bytes per source from the view (chunks / size_chunks of a 1-byte collective) = bytes_sent.
    std::vector<double> sent(f.participants, 0.0);
    for (const Edge& e : f.edges) sent[e.src] += e.chunks / f.size_chunks;
    const auto want = bytes_sent(s, 1.0);
    for (int q = 0; q < f.participants; ++q) CHECK(sent[q] == rel(want[q], 1e-12));
  };
  for (int p = 1; p <= 16; ++p)
    for (int ch : {1, 3}) {
      ScheduleRequest r;
      r.ranks = p;
      r.channels = ch;
      for (CollectiveOp op : {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter}) {
        r.op = op;
        r.algorithm = Algorithm::ring;
        same(r);
      }
      if (p >= 2)
        for (CollectiveOp op : {CollectiveOp::all_reduce, CollectiveOp::broadcast, CollectiveOp::reduce}) {
          r.op = op;
          r.algorithm = Algorithm::tree;
          r.root = op == CollectiveOp::all_reduce ? 0 : p - 1;
          same(r);
          r.root = 0;
        }
      r.op = CollectiveOp::all_to_all;
      r.algorithm = Algorithm::direct;
      same(r);
      r.op = CollectiveOp::all_reduce;
      r.algorithm = Algorithm::hierarchical;
      for (int per = 1; per <= p; ++per)
        if (p % per == 0) r.ranks_per_node = per, same(r);
      // NCCL's tree across nodes: each node's chain under the inter-node double binary tree.
      r.algorithm = Algorithm::tree;
      for (int per = 2; per <= p; ++per)
        if (p % per == 0) r.ranks_per_node = per, same(r);
      r.ranks_per_node = 0;
    }
  // A 4096-rank ring all-reduce in flow view: 4096 edges of 2*4095 chunks, without 33.5M transfers.
  ScheduleRequest big;
  big.ranks = 4096;
  const FlowView f = flow_view(big);
  CHECK(f.edges.size() == 4096);
  CHECK(f.edges[4095].dst == 0);
  CHECK(f.edges[0].chunks == 2.0 * 4095);
  CHECK(f.rounds == 2 * 4095);
}

// Bytes a schedule moves between different nodes of `per` ranks each (rank / per = node), for a
// 1-byte collective; switches (participants >= ranks) belong to node participant - ranks.
static double inter_node_bytes(const Schedule& s, int per) {
  const auto node = [&](int q) {
    if (q < s.ranks) return q / per;
    const HelperPlace at = nvls_tree_helper(s.ranks, per, q);   // only NVLS-tree has helpers here
    return at.node >= 0 ? at.node : at.rank / per;
  };
  double chunks = 0;
  for (const Edge& e : schedule_edges(s))
    if (node(e.src) != node(e.dst)) chunks += e.chunks;
  return chunks / s.input_chunks[0].size();
}

TEST_CASE("NCCL's tree across nodes: chain + double binary tree, K+2H-1 rounds, 2(N-1)S across nodes") {
  // H = the chain below the head (L-1) plus the inter-node tree's height 1 + floor(log2(N-1)); each
  // of the two trees' N-1 inter-node edges carries S/2 up and S/2 down.
  for (int nodes = 2; nodes <= 6; ++nodes)
    for (int per : {2, 4, 8}) {
      INFO(nodes << " nodes x " << per);
      const int p = nodes * per, h = per - 1 + tree_height(nodes);
      const Schedule s = make(CollectiveOp::all_reduce, Algorithm::tree, p, 1, 0, per);
      CHECK(rounds(s) == default_k(p) + 2 * h - 1);
      CHECK(inter_node_bytes(s, per) == rel(2.0 * (nodes - 1), 1e-12));
      check_no_hazard(s);
    }
  CHECK(message_of([] { make(CollectiveOp::broadcast, Algorithm::tree, 8, 1, 0, 4); }).find("all_reduce") != std::string::npos);
}

TEST_CASE("nvls_tree: K+2H+3 rounds, S into each node's switch per rank, 2(N-1)S across nodes") {
  for (int nodes = 2; nodes <= 6; ++nodes)
    for (int per : {2, 4, 8}) {
      INFO(nodes << " nodes x " << per);
      const int p = nodes * per, h = tree_height(nodes);
      const Schedule s = make(CollectiveOp::all_reduce, Algorithm::nvls_tree, p, 1, 0, per);
      CHECK(rounds(s) == default_k(p) + 2 * h + 3);
      // Ranks, two switch roles per node, each head's up and down role per tree.
      CHECK(s.participants == p + 2 * nodes + 4 * p);
      CHECK(inter_node_bytes(s, per) == rel(2.0 * (nodes - 1), 1e-12));
      const auto sent = bytes_sent(s, 1.0);
      for (int q = 0; q < p; ++q) CHECK(sent[q] == rel(1.0, 1e-12));   // its whole buffer into the switch
      for (int n = 0; n < nodes; ++n) {
        CHECK(sent[p + n] == rel(1.0, 1e-12));                  // the node's sum to its heads
        CHECK(sent[p + nodes + n] == rel(double(per), 1e-12));  // the total multicast to L ranks
      }
      // Every part of the buffer goes up and comes down once per node: into the multicasting
      // switch S per node, plus S/(2L) per tree edge and direction between heads.
      double heads = 0;
      for (int q = p + 2 * nodes; q < s.participants; ++q) heads += sent[q];
      CHECK(heads == rel(nodes + 2.0 * (nodes - 1), 1e-12));
      // Each role stands where NCCL runs it: switch roles on their node, head roles on their GPU.
      for (int q = p; q < s.participants; ++q) {
        const HelperPlace at = nvls_tree_helper(p, per, q);
        CHECK((at.node >= 0) == (q < p + 2 * nodes));
        if (at.node >= 0) CHECK(at.node == (q - p) % nodes);
        else CHECK(at.rank == (q - p - 2 * nodes) % p);
      }
    }
  CHECK(message_of([] { make(CollectiveOp::all_gather, Algorithm::nvls_tree, 8, 1, 0, 4); }).find("all_reduce") !=
        std::string::npos);
}

TEST_CASE("pat: ceil(log2 p) rounds, (p-1)/p S per rank, one block on the far hop first") {
  for (int p = 2; p <= 33; ++p) {
    INFO("p=" << p);
    const int dims = static_cast<int>(std::ceil(std::log2(p)));
    for (CollectiveOp op : {CollectiveOp::all_gather, CollectiveOp::reduce_scatter}) {
      const Schedule s = make(op, Algorithm::pat, p);
      CHECK(rounds(s) == dims);
      for (double b : bytes_sent(s, 1.0)) CHECK(b == rel((p - 1.0) / p, 1e-12));
      check_no_hazard(s);
    }
    // all_gather: the first round crosses the farthest distance 2^(D-1) with one block per rank.
    const Schedule ag = make(CollectiveOp::all_gather, Algorithm::pat, p);
    for (const Transfer& t : ag.rounds[0].transfers) CHECK((t.dst - t.src + p) % p == 1 << (dims - 1));
    CHECK(ag.rounds[0].transfers.size() == size_t(p));
  }
  CHECK(message_of([] { make(CollectiveOp::all_reduce, Algorithm::pat, 4); }).find("all_gather") != std::string::npos);
}
