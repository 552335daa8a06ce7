// Each scheduler against schedules worked out by hand on tiny traces (arrivals, the batch of every
// iteration, first tokens, finishes, preemptions), with a timer whose iterations take a fixed time,
// so every instant below is a sum of whole iterations. Then Little's law on a long run.
#include <doctest/doctest.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "relative.hpp"
#include "serve_fixtures.hpp"
#include "tpsim/serving.hpp"

using namespace tpsim;

namespace {

// a + b per token of the iteration: a stable queue for Little's law.
struct LinearTimer : IterationTimer {
  double a = 0.005, b = 5e-5;
  double seconds(const IterationShape& shape) override { return a + b * double(shape.tokens()); }
  std::string describe() const override { return "linear"; }
};

std::vector<std::vector<int64_t>> members(const ServeResult& r) {
  std::vector<std::vector<int64_t>> out;
  for (IterationRecord it : r.iterations) {
    std::sort(it.members.begin(), it.members.end());
    out.push_back(it.members);
  }
  return out;
}

const ServeOptions kMembers{.record_members = true, .record_iterations = true, .kv_transfer = {}};

// A (t 0, prompt 4, output 3), B and C (t 0.5, prompts 2 and 3, outputs 1 and 2).
const std::vector<Request> kThree = {{0, 0.0, 4, 3}, {1, 0.5, 2, 1}, {2, 0.5, 3, 2}};

}  // namespace

TEST_CASE("static batching: a batch runs until its longest request ends; arrivals wait for the next batch") {
  // [0,1) prefill A; [1,2), [2,3) decode A (done at 3); B and C arrived at 0.5 and waited:
  // [3,4) prefill B, C (B's one token: done at 4); [4,5) decode C, B padded (C done at 5).
  FixedTimer timer;
  const ServeResult r = serve(spec_of("static", 2), kThree, capacity_of(1000), timer, kMembers);
  CHECK(members(r) == std::vector<std::vector<int64_t>>{{0}, {0}, {0}, {1, 2}, {1, 2}});
  CHECK(r.requests[0].first_token == 1.0);
  CHECK(r.requests[0].finished == 3.0);
  CHECK(r.requests[1].first_token == 4.0);
  CHECK(r.requests[1].finished == 4.0);
  CHECK(r.requests[2].first_token == 4.0);
  CHECK(r.requests[2].finished == 5.0);
  CHECK(r.requests[1].ttft() == 3.5);
  CHECK(r.requests[1].queueing() == 2.5);
  // The padded slot still decodes: two decodes in the last iteration, B's and C's.
  CHECK(timer.shapes.back().decodes == 2);
}

TEST_CASE("static batching: the batch holds only the requests whose prompt + output KV fits") {
  // Capacity 9 tokens: A (4 + 3 = 7) alone (B's 2 + 1 would make 10), then B (3) and C (5) together.
  FixedTimer timer;
  const std::vector<Request> all_at_once = {{0, 0.0, 4, 3}, {1, 0.0, 2, 1}, {2, 0.0, 3, 2}};
  const ServeResult r = serve(spec_of("static", 8), all_at_once, capacity_of(9), timer, kMembers);
  CHECK(members(r) == std::vector<std::vector<int64_t>>{{0}, {0}, {0}, {1, 2}, {1, 2}});
}

TEST_CASE("orca: finished requests leave and waiting ones join at every iteration") {
  // [0,1) prefill A; [1,2) decode A + prefill B (B done at 2: one token); [2,3) decode A +
  // prefill C (A done at 3, max_batch 2 kept C out until B left); [3,4) decode C (done at 4).
  FixedTimer timer;
  const ServeResult r = serve(spec_of("orca", 2), kThree, capacity_of(1000), timer, kMembers);
  CHECK(members(r) == std::vector<std::vector<int64_t>>{{0}, {0, 1}, {0, 2}, {2}});
  CHECK(r.requests[0].finished == 3.0);
  CHECK(r.requests[1].first_token == 2.0);
  CHECK(r.requests[1].finished == 2.0);
  CHECK(r.requests[2].first_token == 3.0);
  CHECK(r.requests[2].finished == 4.0);
  // The mixed iteration [1,2): one decode at context kv + 1 = 5 and B's 2-token prompt.
  CHECK(timer.shapes[1].decodes == 1);
  CHECK(timer.shapes[1].decode_context == 5);
  CHECK(timer.shapes[1].prefill_tokens == 2);
  CHECK(timer.shapes[1].prefill_pairs == 3.0);   // 2 x 3 / 2 causal pairs
}

TEST_CASE("vllm: prefills first, blocks on demand, the last admitted preempted by recompute") {
  // 8 KV tokens in 2-token blocks: 4 blocks. A (prompt 3, output 4), B (prompt 3, output 3), both at 0.
  //   [0,1) prefill A, B (2 blocks each, none left); first tokens at 1.
  //   [1,2) decode A, B (kv 3 -> 4: no new block).
  //   [2,3) A needs a 3rd block: B (last admitted) preempted, its 2 blocks freed; decode A.
  //   [3,4) B's recompute (3 + 2 made = 5 tokens, 3 blocks) does not fit the 1 free: decode A (done at 4).
  //   [4,5) prefill B's 5 tokens: it makes its 3rd and last token (done at 5).
  ServingSpec spec = spec_of("vllm", 4);
  spec.block_size = 2;
  FixedTimer timer;
  const std::vector<Request> two = {{0, 0.0, 3, 4}, {1, 0.0, 3, 3}};
  const ServeResult r = serve(spec, two, capacity_of(8), timer, kMembers);
  CHECK(members(r) == std::vector<std::vector<int64_t>>{{0, 1}, {0, 1}, {0}, {0}, {1}});
  CHECK(r.iterations[2].preempted == 1);
  CHECK(r.requests[1].preemptions == 1);
  CHECK(r.requests[0].preemptions == 0);
  CHECK(r.requests[0].finished == 4.0);
  CHECK(r.requests[1].first_token == 1.0);
  CHECK(r.requests[1].finished == 5.0);
  CHECK(timer.shapes[4].prefill_tokens == 5);
  CHECK(timer.shapes[4].decodes == 0);
  // Blocks held while each iteration runs: 4, 4, 3 (A's 3 after B left), 3, 3 (B's recompute).
  std::vector<int64_t> kv;
  for (const IterationRecord& it : r.iterations) kv.push_back(it.kv_tokens_used);
  CHECK(kv == std::vector<int64_t>{8, 8, 6, 6, 6});
}

TEST_CASE("vllm with swap: the victim's KV goes to host memory and comes back when blocks free up") {
  //   [2,3) B swapped out (its 4 cached tokens), A decodes; [3,4) A decodes and ends (B's 3 blocks
  //   do not fit the 1 free); [4,5) B swapped in (4 tokens back) and decodes its last token.
  ServingSpec spec = spec_of("vllm", 4);
  spec.block_size = 2;
  spec.preemption = "swap";
  FixedTimer timer;
  const std::vector<Request> two = {{0, 0.0, 3, 4}, {1, 0.0, 3, 3}};
  const ServeResult r = serve(spec, two, capacity_of(8, 1000), timer, kMembers);
  CHECK(members(r) == std::vector<std::vector<int64_t>>{{0, 1}, {0, 1}, {0}, {0}, {1}});
  CHECK(timer.shapes[2].swap_bytes == 4000.0);
  CHECK(timer.shapes[3].swap_bytes == 0.0);
  CHECK(timer.shapes[4].swap_bytes == 4000.0);
  CHECK(timer.shapes[4].decodes == 1);
  CHECK(timer.shapes[4].decode_context == 5);
  CHECK(r.requests[1].finished == 5.0);
  CHECK(r.requests[1].preemptions == 1);
}

TEST_CASE("sarathi: decodes first, then prefill chunks fill the token budget") {
  // Budget 4. A (prompt 6, output 2), B (prompt 3, output 2), both at 0.
  //   [0,1) A's first 4 prompt tokens.
  //   [1,2) A's last 2 (first token at 2) + B's first 2.
  //   [2,3) decode A (done at 3) + B's last prompt token (first token at 3).
  //   [3,4) decode B (done at 4).
  ServingSpec spec = spec_of("sarathi", 4);
  spec.token_budget = 4;
  FixedTimer timer;
  const std::vector<Request> two = {{0, 0.0, 6, 2}, {1, 0.0, 3, 2}};
  const ServeResult r = serve(spec, two, capacity_of(1000), timer, kMembers);
  CHECK(members(r) == std::vector<std::vector<int64_t>>{{0}, {0, 1}, {0, 1}, {1}});
  CHECK(r.requests[0].first_token == 2.0);
  CHECK(r.requests[0].finished == 3.0);
  CHECK(r.requests[1].first_token == 3.0);
  CHECK(r.requests[1].finished == 4.0);
  CHECK(timer.shapes[0].prefill_tokens == 4);
  CHECK(timer.shapes[0].prefill_pairs == 10.0);          // 4 x 5 / 2
  CHECK(timer.shapes[1].prefill_tokens == 4);
  CHECK(timer.shapes[1].prefill_pairs == 8.0 + 3 + 3);   // A: 2 x 4 cached + 3; B: 3
  CHECK(timer.shapes[1].prefill_kv_read == 4);
  CHECK(timer.shapes[1].sampled == 1);                   // A's last chunk makes its first token
  CHECK(timer.shapes[2].decodes == 1);
  CHECK(timer.shapes[2].decode_context == 7);            // A: 6 cached + the token fed
  CHECK(timer.shapes[2].prefill_pairs == 2.0 + 1);       // B: 1 x 2 cached + 1
}

TEST_CASE("the least-outstanding-tokens router sends a request where the least work is left") {
  // Two replicas; A (1000 tokens of work) goes to replica 0, B (20) to 1, C to 1 (20 < 1000).
  ServingSpec spec = spec_of("orca", 4);
  spec.replicas = 2;
  spec.router = "least_tokens";
  FixedTimer timer;
  const std::vector<Request> three = {{0, 0.0, 900, 100}, {1, 0.1, 10, 10}, {2, 0.2, 10, 10}};
  const ServeResult r = serve(spec, three, capacity_of(100000), timer);
  CHECK(r.requests[0].replica == 0);
  CHECK(r.requests[1].replica == 1);
  CHECK(r.requests[2].replica == 1);
  spec.router = "round_robin";
  const ServeResult rr = serve(spec, three, capacity_of(100000), timer);
  CHECK(rr.requests[2].replica == 0);
}

TEST_CASE("a request that can never fit a replica's KV cache is refused before the run") {
  FixedTimer timer;
  const std::vector<Request> big = {{0, 0.0, 600, 500}};
  CHECK_THROWS_AS(serve(spec_of("vllm", 4), big, capacity_of(1000), timer), std::invalid_argument);
  CHECK(timer.shapes.empty());
}

TEST_CASE("Little's law on a long run: time-average requests in the system = arrival rate x mean latency") {
  // 20,000 Poisson arrivals at 10/s; L measured by sweeping arrivals and finishes over the middle
  // of the run (away from the empty start and the drain), against lambda = the spec's rate times
  // W = the mean latency of the requests that arrived in that window. The sampling error of W at
  // this size is ~1%; 3% is the bound.
  ServingSpec spec = spec_of("sarathi", 64);
  spec.token_budget = 512;
  spec.rate = 10;
  spec.requests = 20000;
  spec.prompt = LengthDistribution{"uniform", 0, 0, 50, 400, ""};
  spec.output = LengthDistribution{"uniform", 0, 0, 10, 100, ""};
  const std::vector<Request> requests = make_requests(spec);
  LinearTimer timer;
  const ServeResult r = serve(spec, requests, capacity_of(1 << 20), timer, {.record_members = false, .record_iterations = false, .kv_transfer = {}});
  const double t1 = 200, t2 = requests.back().arrival - 200;
  std::vector<std::pair<double, int>> events;
  double latency = 0;
  int in_window = 0;
  for (const RequestOutcome& o : r.requests) {
    events.push_back({o.arrival, +1});
    events.push_back({o.finished, -1});
    if (o.arrival >= t1 && o.arrival < t2) {
      latency += o.latency();
      ++in_window;
    }
  }
  std::sort(events.begin(), events.end());
  double area = 0, last = t1;
  int n = 0;
  for (const auto& [t, d] : events) {
    if (t > t1) area += double(n) * (std::min(t, t2) - last);
    last = std::max(t1, std::min(t, t2));
    n += d;
  }
  const double L = area / (t2 - t1), W = latency / in_window;
  CHECK(W > 0.1);   // a queue that holds requests for a while, not an empty one
  CHECK(L == rel(spec.rate * W, 0.03));
}

TEST_CASE("prefill/decode disaggregation: a prefill replica hands each request's KV cache to a decode replica") {
  // 1 prefill + 1 decode replica, 1 s iterations, 0.5 s per KV transfer. A (t 0, prompt 4, output 3),
  // B (t 0.5, prompt 2, output 2).
  //   replica 0: [0,1) prefill A (first token at 1, KV arrives at 1.5); [1,2) prefill B (KV at 2.5).
  //   replica 1: [1.5,2.5) decode A; [2.5,3.5) decode A (done) and B (done), B joined as its KV arrived.
  ServingSpec spec = spec_of("vllm", 8);
  spec.prefill_replicas = 1;
  spec.replicas = 1;
  FixedTimer timer;
  ServeOptions options = kMembers;
  std::vector<std::tuple<int, int, int64_t>> moved;
  options.kv_transfer = [&](int from, int to, int64_t tokens) {
    moved.emplace_back(from, to, tokens);
    return 0.5;
  };
  const std::vector<Request> two = {{0, 0.0, 4, 3}, {1, 0.5, 2, 2}};
  const ServeResult r = serve(spec, two, capacity_of(1000), timer, options);
  CHECK(members(r) == std::vector<std::vector<int64_t>>{{0}, {1}, {0}, {0, 1}});
  std::vector<int> where;
  for (const IterationRecord& it : r.iterations) where.push_back(it.replica);
  CHECK(where == std::vector<int>{0, 0, 1, 1});
  CHECK(moved == std::vector<std::tuple<int, int, int64_t>>{{0, 1, 4}, {0, 1, 2}});
  CHECK(r.requests[0].first_token == 1.0);
  CHECK(r.requests[1].first_token == 2.0);
  CHECK(r.requests[0].finished == 3.5);
  CHECK(r.requests[1].finished == 3.5);
  CHECK(r.requests[0].decode_replica == 1);
  CHECK(r.requests[1].kv_transfer == 0.5);
  CHECK(r.iterations[2].start == 1.5);
  // The decode replica's first iteration decodes A at context kv + 1 = 5, prefilling nothing.
  CHECK(timer.shapes[2].prefill_tokens == 0);
  CHECK(timer.shapes[2].decode_context == 5);
}
