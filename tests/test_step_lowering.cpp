// Whole-step lowering: the pipeline messages pair up and cannot deadlock even when every send waits
// for its receiver, every layer runs forward, backward (and recomputation) for every micro-batch,
// and the DP buckets carry every gradient once.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <map>
#include <set>
#include <string>

#include "tpsim/lower.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/step_lowering.hpp"
#include "tpsim/memory.hpp"

using namespace tpsim;

namespace {

Scenario small_gpt(int tp, int pp, int dp, int64_t global_batch) {
  Scenario s;
  s.name = "small";
  s.model.name = "gpt-small";
  s.model.hidden = 256;
  s.model.ffn = 1024;
  s.model.heads = s.model.kv_heads = 8;
  s.model.layers = 8;
  s.model.vocab = 1024;
  s.model.max_seq = 128;
  s.plan.tp = tp;
  s.plan.pp = pp;
  s.plan.dp = dp;
  s.workload.kind = WorkloadKind::training;
  s.workload.global_batch = global_batch;
  s.workload.micro_batch = 1;
  s.workload.seq = 128;
  s.topology.name = "toy";
  s.topology.gpu.peak_flops[DType::bf16] = 1e15;
  s.topology.gpu.peak_flops[DType::fp32] = 1e14;
  s.topology.gpu.hbm_bandwidth = 2e12;
  s.topology.gpu.sms = 100;
  s.topology.gpu.hbm_bytes = 80e9;
  s.topology.gpus_per_node = 8;
  s.topology.nodes = 8;
  return s;
}

// Every rank's own program: the lowering binds a stage's ranks to one program (RankBinding).
ProgramSet lowered(const Scenario& s) {
  ProgramSet set = lowering::lower_training_step(s);
  expand_bindings(set);
  return set;
}

// Runs every rank's streams in program order with rendezvous semantics: a send and its recv
// complete together when both head their streams; a collective completes when every member heads
// it. Returns how many ops never ran (0 = no deadlock).
size_t unfinished_ops(const ProgramSet& set) {
  const size_t n = set.ranks.size();
  std::vector<std::vector<bool>> done(n);
  std::vector<std::map<Stream, std::vector<int>>> queues(n);
  std::vector<std::map<Stream, size_t>> head(n);
  for (size_t r = 0; r < n; ++r) {
    done[r].assign(set.ranks[r].ops.size(), false);
    for (const Op& op : set.ranks[r].ops) queues[r][op.stream].push_back(op.id);
  }
  auto deps_done = [&](size_t r, const Op& op) {
    for (int d : op.deps)
      if (!done[r][size_t(d)]) return false;
    return true;
  };
  auto at_head = [&](size_t r, const Op& op) {
    auto& q = queues[r][op.stream];
    const size_t h = head[r][op.stream];
    return h < q.size() && q[h] == op.id && deps_done(r, op);
  };
  auto finish = [&](size_t r, const Op& op) {
    done[r][size_t(op.id)] = true;
    ++head[r][op.stream];
  };
  for (bool progress = true; progress;) {
    progress = false;
    for (size_t r = 0; r < n; ++r) {
      for (auto& [stream, q] : queues[r]) {
        const size_t h = head[r][stream];
        if (h >= q.size()) continue;
        const Op& op = set.ranks[r].ops[size_t(q[h])];
        if (!deps_done(r, op)) continue;
        if (op.kind == OpKind::gemm || op.kind == OpKind::kernel) {
          finish(r, op);
          progress = true;
        } else if (op.kind == OpKind::send) {
          const size_t peer = size_t(op.p2p.peer);
          for (auto& [ps, pq] : queues[peer]) {
            const size_t ph = head[peer][ps];
            if (ph >= pq.size()) continue;
            const Op& other = set.ranks[peer].ops[size_t(pq[ph])];
            if (other.kind == OpKind::recv && other.p2p.peer == int(r) && other.p2p.tag == op.p2p.tag &&
                at_head(peer, other)) {
              finish(r, op);
              finish(peer, other);
              progress = true;
              break;
            }
          }
        } else if (op.kind == OpKind::collective) {
          bool all = true;
          std::vector<std::pair<size_t, int>> members;
          for (int g : op.collective.group) {
            const auto& gq = queues[size_t(g)][op.stream];
            const size_t gh = head[size_t(g)][op.stream];
            if (gh >= gq.size()) { all = false; break; }
            const Op& other = set.ranks[size_t(g)].ops[size_t(gq[gh])];
            if (other.kind != OpKind::collective || other.name != op.name || !at_head(size_t(g), other)) { all = false; break; }
            members.push_back({size_t(g), other.id});
          }
          if (!all) continue;
          for (auto [g, id] : members) finish(g, set.ranks[g].ops[size_t(id)]);
          progress = true;
        }
      }
    }
  }
  size_t left = 0;
  for (size_t r = 0; r < n; ++r)
    for (bool d : done[r]) left += d ? 0 : 1;
  return left;
}

double total_flops(const Program& p) {
  double f = 0;
  for (const Op& op : p.ops) f += op.flops;
  return f;
}

}  // namespace

TEST_CASE("pipeline messages pair up and the step cannot deadlock under rendezvous sends") {
  for (auto [tp, pp, dp, v] : {std::tuple{1, 4, 1, 1}, std::tuple{2, 4, 2, 1}, std::tuple{1, 4, 1, 2}, std::tuple{2, 2, 2, 2}}) {
    Scenario s = small_gpt(tp, pp, dp, 8 * dp);
    s.plan.virtual_stages = v;
    s.plan.sp = tp > 1;
    const ProgramSet set = lowered(s);
    REQUIRE(set.ranks.size() == size_t(tp * pp * dp));
    std::multiset<std::tuple<int, int, int, int64_t>> sends, recvs;   // (from, to, tag, bytes)
    for (const Program& p : set.ranks)
      for (const Op& op : p.ops) {
        if (op.kind == OpKind::send) sends.insert({p.rank, op.p2p.peer, op.p2p.tag, op.p2p.bytes});
        if (op.kind == OpKind::recv) recvs.insert({op.p2p.peer, p.rank, op.p2p.tag, op.p2p.bytes});
      }
    CHECK(sends == recvs);
    // 8 micro-batches x (pp*v - 1) chunk boundaries x 2 directions, per (tp, dp) pipeline.
    CHECK(sends.size() == size_t(8 * (pp * v - 1) * 2 * tp * dp));
    CHECK(unfinished_ops(set) == 0);
  }
}

TEST_CASE("a full-recompute step does Narayanan's four passes of every layer") {
  // Summed over one pipeline (tp x pp ranks) and multiplied by dp, the step's FLOPs are the model
  // FLOPs, up to what Narayanan leaves out (norms, softmax, loss, optimizer: a few percent here)
  // and the causal halving of attention scores the lowering may apply.
  Scenario s = small_gpt(2, 2, 2, 16);
  s.plan.recompute = Recompute::full;
  const ProgramSet set = lowered(s);
  double flops = 0;
  for (const Program& p : set.ranks) flops += total_flops(p);
  const double model = model_flops_per_step(s.model, 16, 128);
  CHECK(flops / model == rel(1.0, 0.1));
  // Without recompute the layers run three passes instead of four.
  s.plan.recompute = Recompute::none;
  double less = 0;
  for (const Program& p : lowered(s).ranks) less += total_flops(p);
  const double layer_pass = model_flops_per_step(s.model, 16, 128) - 3 * 2.0 * 16 * 128 * 256 * 1024;
  CHECK((flops - less) / (layer_pass / 4) == rel(1.0, 0.1));
}

TEST_CASE("DP buckets reduce every gradient once: fp32 bytes of the rank's parameters (fp16 for an fp16 model)") {
  // Megatron-LM with --fp16 keeps and all-reduces fp16 main gradients (accumulate_allreduce_grads_in_fp32
  // defaults off); bf16 forces fp32.
  for (const DType dtype : {DType::bf16, DType::fp16}) {
    Scenario s = small_gpt(2, 2, 4, 16);
    CAPTURE(to_string(dtype));
    s.model.dtype = dtype;
    s.topology.gpu.peak_flops[DType::fp16] = 1e15;
    const double grad_bytes = dtype == DType::fp16 ? 2 : 4;
    const ProgramSet set = lowered(s);
    for (const Program& p : set.ranks) {
      double bytes = 0;
      int adam = 0;
      for (const Op& op : p.ops) {
        if (op.stream == Stream::dp_comm) {
          CHECK(op.collective.op == CollectiveOp::all_reduce);
          CHECK(op.collective.group.size() == 4);
          bytes += double(op.collective.bytes);
        }
        if (op.kernel.fn == "adam") ++adam;
      }
      const int stage = p.rank / (2 * 4);   // mesh order tp, dp, pp
      PlanSpec plan = s.plan;
      // The lowering's weights are exactly the memory model's (no biases): 4 (or 2) B per parameter.
      CHECK(bytes == rel(grad_bytes * parameters_on_stage(s.model, plan, stage), 1e-6));
      CHECK(adam == 1);
    }
  }
}

TEST_CASE("the distributed optimizer reduce-scatters gradients and all-gathers bf16 parameters") {
  Scenario s = small_gpt(1, 1, 4, 8);
  s.plan.distributed_optimizer = true;
  const ProgramSet set = lowered(s);
  int rs = 0, ag = 0;
  for (const Op& op : set.ranks[0].ops) {
    if (op.stream != Stream::dp_comm) continue;
    rs += op.collective.op == CollectiveOp::reduce_scatter;
    ag += op.collective.op == CollectiveOp::all_gather;
  }
  CHECK(rs >= 1);
  CHECK(ag == 1);
}

TEST_CASE("a bad global batch is rejected with the numbers that do not divide") {
  Scenario s = small_gpt(1, 2, 3, 8);
  CHECK_THROWS_WITH_AS(lowering::lower_training_step(s), doctest::Contains("multiple of micro_batch x dp"),
                       std::invalid_argument);
}

// FP8 training as Transformer Engine runs it (precision_of, spec.hpp): the GEMMs compute in FP8 at
// the FP8 peak and FP8 ceiling, while what travels (TP collectives, pipeline sends, the
// distributed optimizer's parameter all-gather) stays BF16. Against the same step in BF16: every
// collective and send carries the same bytes, every GEMM computes in fp8.




namespace {

struct Traffic {
  std::map<std::string, double> bytes;   // op name -> bytes (rank 0's program)
  int gemms = 0, fp8_gemms = 0;
};

Traffic traffic(const std::string& dtype) {
  const Scenario s = load_scenario({"", "cluster-h100-ndr", "llama3-8b", "",
                                    {{"topology.nodes", "2"},
                                     {"plan.tp", "4"},
                                     {"plan.pp", "2"},
                                     {"plan.dp", "2"},
                                     {"plan.sp", "true"},
                                     {"plan.distributed_optimizer", "true"},
                                     {"model.dtype", dtype},
                                     {"workload.global_batch", "4"},
                                     {"workload.seq", "2048"}}});
  Traffic t;
  // The step the timing runs (layer pieces merged into runs) for the bytes; one layer's own ops,
  // forward and backward, for the GEMMs.
  const ProgramSet step = lowering::lower_training_step(s);   // named: program_of returns into it
  for (const Op& op : program_of(step, 0).ops) {
    if (op.kind == OpKind::collective) t.bytes[op.name] = op.collective.bytes;
    if (op.kind == OpKind::send) t.bytes[op.name] = op.p2p.bytes;
  }
  LowerOptions block;
  block.backward = true;
  const ProgramSet layer = lower(s, block);
  for (const Op& op : program_of(layer, 0).ops)
    if (op.kind == OpKind::gemm) ++t.gemms, t.fp8_gemms += op.dtype == DType::fp8;
  return t;
}

}  // namespace

TEST_CASE("FP8 training: GEMMs in fp8, the same bytes on the wire as BF16 training") {
  const Traffic bf16 = traffic("bf16"), fp8 = traffic("fp8");
  REQUIRE(!bf16.bytes.empty());
  CHECK(fp8.bytes == bf16.bytes);   // TP reduce-scatters / all-gathers, sends, DP collectives
  REQUIRE(fp8.gemms > 0);
  CHECK(fp8.fp8_gemms == fp8.gemms);
  CHECK(bf16.fp8_gemms == 0);
}
