// Link utilisation over time (Timeline::link_bin, LinkUse::intervals): hand-built transfers whose
// bins have closed forms, conservation of bytes, the cap at capacity, bounded bins, determinism.
#include <doctest/doctest.h>

#include "relative.hpp"
#include "toy_gpu.hpp"

#include <cmath>

#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

// One node of `gpus` GPUs on an NVSwitch, B/s per GPU port and direction, no latency: a transfer
// of S bytes alone on its ports takes exactly S / B.
Topology switch_node(int gpus, double bw) {
  Topology t;
  t.name = "ideal";
  t.gpus_per_node = gpus;
  t.nodes = 1;
  t.intra.bandwidth = bw;
  t.intra.latency = 0;
  t.nic.count = gpus;
  t.nic.bandwidth = bw / 8;
  t.nic.latency = 0;
  t.gpu = toy_gpu();
  return t;
}

Op gemm(int id, std::vector<int> deps) {
  Op op;
  op.id = id;
  op.kind = OpKind::gemm;
  op.name = "gemm" + std::to_string(id);
  op.deps = std::move(deps);
  op.gemm = {4096, 4096, 4096};
  op.flops = 2.0 * 4096 * 4096 * 4096;
  op.hbm_bytes = 3.0 * 4096 * 4096 * 2;
  return op;
}

Op p2p(int id, OpKind kind, int peer, int64_t bytes, int tag, Stream stream, std::vector<int> deps) {
  Op op;
  op.id = id;
  op.kind = kind;
  op.name = (kind == OpKind::send ? "send" : "recv") + std::to_string(tag);
  op.stream = stream;
  op.deps = std::move(deps);
  op.p2p = {peer, bytes, tag};
  return op;
}

double gemm_seconds(const Topology& t) { return gemm_cost(t.gpu, GemmInfo{4096, 4096, 4096}, DType::bf16).seconds; }

// GPU 0 computes one GEMM (g s), then sends S bytes to GPU 1, which posted its receive at 0.
ProgramSet gemm_then_send(int64_t S) {
  Program a, b;
  a.rank = 0;
  a.ops = {gemm(0, {}), p2p(1, OpKind::send, 1, S, 7, Stream::pp_comm, {0})};
  b.rank = 1;
  b.ops = {p2p(0, OpKind::recv, 0, S, 7, Stream::pp_comm, {})};
  ProgramSet set;
  set.ranks = {a, b};
  return set;
}

const LinkUse& link_named(const Timeline& t, const std::string& name) {
  for (const LinkUse& l : t.links)
    if (l.link == name) return l;
  FAIL("no link " << name);
  return t.links.front();
}

double carried(const LinkUse& l) {   // sum of utilisation x bandwidth x width: the bytes the bins hold
  double bytes = 0;
  for (const LinkInterval& i : l.intervals) bytes += i.utilisation * l.bandwidth * (i.end - i.start);
  return bytes;
}

void check_well_formed(const LinkUse& l, double end) {
  REQUIRE(!l.intervals.empty());
  CHECK(l.intervals.front().start >= 0);
  CHECK(l.intervals.back().end <= end);
  for (size_t k = 0; k < l.intervals.size(); ++k) {
    const LinkInterval& i = l.intervals[k];
    CHECK(i.end > i.start);
    CHECK(i.utilisation > 0);
    CHECK(i.utilisation <= 1);
    if (k > 0) CHECK(l.intervals[k - 1].end <= i.start);
  }
}

}  // namespace

TEST_CASE("one transfer alone: its bins read 100% inside it, the cut bins their share, nothing outside") {
  const double B = 100e9;
  const int64_t S = int64_t(1) << 26;   // 671 us at 100 GB/s
  const Topology topo = switch_node(2, B);
  const double g = gemm_seconds(topo), d = double(S) / B;   // the transfer: [g, g + d]
  const Timeline t = simulate(topo, gemm_then_send(S), EngineOptions{});
  REQUIRE(t.makespan == rel(g + d));
  // Bin width: the smallest 2^k s with 512 bins covering the step (so more than 256 bins).
  const double w = t.link_bin;
  REQUIRE(w > 0);
  CHECK(std::exp2(std::round(std::log2(w))) == w);
  CHECK(512 * w >= t.makespan);
  CHECK(256 * w < t.makespan);
  // The send crosses GPU 0's port up and GPU 1's port down, and nothing else.
  REQUIRE(t.links.size() == 2);
  for (const char* name : {"node0.gpu0.nvlink.up", "node0.gpu1.nvlink.down"}) {
    INFO(name);
    const LinkUse& l = link_named(t, name);
    CHECK(l.bytes == rel(double(S)));
    check_well_formed(l, t.makespan);
    // Conservation: the bins hold the link's bytes.
    CHECK(carried(l) == rel(double(S)));
    // Nothing before the bin the transfer starts in, nothing after the step (its end).
    const double first_edge = std::floor(g / w) * w;
    CHECK(l.intervals.front().start == first_edge);
    CHECK(l.intervals.back().end == rel(g + d));
    // The cut first bin holds B x (its end - g): utilisation (edge - g) / w.
    CHECK(l.intervals.front().utilisation == rel((first_edge + w - g) / w));
    // Every bin wholly inside the transfer reads 100%; together they span all but the cut bins.
    double full = 0;
    for (const LinkInterval& i : l.intervals)
      if (i.start >= g && i.end <= g + d) {
        CHECK(i.utilisation == rel(1.0));
        full += i.end - i.start;
      }
    CHECK(full >= d - 2 * w);
  }
}

TEST_CASE("two transfers sharing a port: the mean-rate spread is capped at capacity and still sums to the bytes") {
  // GPU 0 sends S to GPU 1 from 0 and S to GPU 2 from g, with S = 2 g B. Max-min sharing: the first
  // runs alone at B until g (S/2), then both at B/2; it ends at 3g, the second then alone at B for
  // its last S/2, ending at 4g. GPU 0's port carried 2S = 4 g B in [0, 4g]: full all along.
  // Spread at their mean rates the two would read 67%, 133%, 67% over [0,g], [g,3g], [3g,4g];
  // capped (excess passed on) every bin reads 100%.
  const double B = 100e9;
  const Topology topo = switch_node(4, B);
  const double g = gemm_seconds(topo);
  const int64_t S = std::llround(2 * g * B);
  Program a, b, c;
  a.rank = 0;
  a.ops = {gemm(0, {}), p2p(1, OpKind::send, 1, S, 1, Stream::pp_comm, {}), p2p(2, OpKind::send, 2, S, 2, Stream::dp_comm, {0})};
  b.rank = 1;
  b.ops = {p2p(0, OpKind::recv, 0, S, 1, Stream::pp_comm, {})};
  c.rank = 2;
  c.ops = {p2p(0, OpKind::recv, 0, S, 2, Stream::pp_comm, {})};
  ProgramSet set;
  set.ranks = {a, b, c};
  const double end = 4 * double(S) / (2 * B);   // 4g, with S rounded to whole bytes
  for (Fidelity f : {Fidelity::step, Fidelity::flow}) {
    const Timeline t = simulate(topo, set, EngineOptions{f});
    REQUIRE(t.makespan == rel(end));
    const LinkUse& port = link_named(t, "node0.gpu0.nvlink.up");
    check_well_formed(port, t.makespan);
    CHECK(carried(port) == rel(2.0 * double(S)));
    CHECK(port.intervals.front().start == 0);
    CHECK(port.intervals.back().end == rel(end));
    for (const LinkInterval& i : port.intervals) CHECK(i.utilisation == rel(1.0));
    for (size_t k = 1; k < port.intervals.size(); ++k) CHECK(port.intervals[k].start == port.intervals[k - 1].end);
    // GPU 1's port down carried only the first transfer, spread at its mean rate S / 3g = 2/3 B
    // (really B, then B/2): its bins wholly inside [0, 3g] read 2/3.
    const LinkUse& down = link_named(t, "node0.gpu1.nvlink.down");
    CHECK(carried(down) == rel(double(S)));
    int inside = 0;
    for (const LinkInterval& i : down.intervals)
      if (i.end <= 3 * g * (1 - 1e-9)) {
        CHECK(i.utilisation == rel(2.0 / 3.0, 1e-6));
        ++inside;
      }
    CHECK(inside >= 1);
  }
}

TEST_CASE("link bins are bounded and deterministic for many transfers") {
  // 2000 back-to-back sends of 1 MB: 2000 transfers, at most 512 bins, the same bits twice.
  const double B = 100e9;
  const Topology topo = switch_node(2, B);
  const int n = 2000;
  const int64_t S = 1 << 20;
  Program a, b;
  a.rank = 0;
  b.rank = 1;
  for (int k = 0; k < n; ++k) {
    a.ops.push_back(p2p(k, OpKind::send, 1, S, k, Stream::pp_comm, k ? std::vector<int>{k - 1} : std::vector<int>{}));
    b.ops.push_back(p2p(k, OpKind::recv, 0, S, k, Stream::pp_comm, k ? std::vector<int>{k - 1} : std::vector<int>{}));
  }
  ProgramSet set;
  set.ranks = {a, b};
  const Timeline t1 = simulate(topo, set, EngineOptions{});
  const Timeline t2 = simulate(topo, set, EngineOptions{});
  const LinkUse& l = link_named(t1, "node0.gpu0.nvlink.up");
  CHECK(l.bytes == rel(double(n) * double(S)));
  CHECK(carried(l) == rel(l.bytes));
  CHECK(l.intervals.size() <= 512);
  check_well_formed(l, t1.makespan);
  REQUIRE(t1.links.size() == t2.links.size());
  CHECK(t1.link_bin == t2.link_bin);
  for (size_t k = 0; k < t1.links.size(); ++k) {
    REQUIRE(t1.links[k].intervals.size() == t2.links[k].intervals.size());
    for (size_t i = 0; i < t1.links[k].intervals.size(); ++i) {
      CHECK(t1.links[k].intervals[i].start == t2.links[k].intervals[i].start);
      CHECK(t1.links[k].intervals[i].utilisation == t2.links[k].intervals[i].utilisation);
    }
  }
}
