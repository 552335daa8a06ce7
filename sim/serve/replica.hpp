// One model replica under an inference engine: its queues, its KV cache, and the scheduler that
// picks each iteration's batch. The policies differ only in plan(); what an iteration does to its
// sequences (finish()) is the same for all.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "tpsim/serving.hpp"

namespace tpsim::serving {

enum class Policy { static_batching, orca, vllm, sarathi };
Policy policy_of(const std::string& name);

// Under prefill/decode disaggregation a replica only prefills (then hands the request and its KV
// cache on) or only decodes requests another replica prefilled.
enum class Role { both, prefill, decode };

// A request inside a replica. kv is the number of tokens whose keys and values are cached. A
// prefill caches `target` tokens and makes one token; each decode feeds the last token made
// (kv + 1) and makes the next. After a recompute preemption the target is the prompt plus every
// token made so far, so kv = target + made - 1 holds again once it is prefilled.
struct Sequence {
  int64_t id = 0;
  int64_t prompt = 0, output = 0;
  int64_t target = 0;     // tokens to prefill before decoding
  int64_t prefilled = 0;  // of them, cached
  int64_t made = 0;       // output tokens made
  int64_t kv = 0;         // tokens cached
  int64_t blocks = 0;     // paged KV blocks held
  int64_t reserved = 0;   // static / orca: KV tokens reserved for the whole request
  int preemptions = 0;
  bool swapped = false;   // its KV is in host memory (swap preemption)
  bool prefill_done() const { return prefilled >= target; }
  bool done() const { return made >= output; }
};

// One sequence's part in an iteration.
struct Work {
  int64_t seq = 0;        // index into Replica::seqs
  int64_t prefill = 0;    // prompt tokens prefilled now (0: a decode)
};

struct Iteration {
  std::vector<Work> work;
  IterationShape shape;
  int64_t preempted = 0;
  bool empty() const { return work.empty(); }
};

class Replica {
 public:
  Replica(int index, const ServingSpec& spec, const ReplicaCapacity& capacity, Role role = Role::both);

  void admit(const Request& r);          // the router gave it this request
  void admit_prefilled(const Request& r);   // decode role: its prompt's KV cache has arrived
  // Prefill role: the requests whose prefill ended in the last finish(), to go to a decode replica.
  std::vector<Request> take_handoffs();
  Iteration plan();                       // the next iteration's batch (empty: nothing to run)
  // Applies an iteration that ran [start, end); records first tokens and finishes into `out`.
  void finish(const Iteration& it, double start, double end, std::vector<RequestOutcome>& out);

  bool busy() const { return !waiting_.empty() || !running_.empty() || !swapped_.empty(); }
  int64_t outstanding_tokens() const { return outstanding_; }   // prompt + output tokens still to process
  int64_t running() const { return int64_t(running_.size()); }
  int64_t kv_tokens_used() const;
  int64_t id_of(int64_t seq) const { return seqs_[size_t(seq)].id; }

 private:
  bool paged() const { return policy_ == Policy::vllm || policy_ == Policy::sarathi; }
  int64_t blocks_for(int64_t tokens) const { return (tokens + block_ - 1) / block_; }
  bool grow(Sequence& s, int64_t kv_after);    // paged: blocks for kv_after tokens; false if none free
  void release(Sequence& s);
  int64_t preempt_last(Iteration& it);          // LIFO victim; returns its index
  void add_prefill(Iteration& it, int64_t i, int64_t tokens);
  void add_decode(Iteration& it, int64_t i);
  Iteration plan_static();
  Iteration plan_orca();
  Iteration plan_vllm();
  Iteration plan_sarathi();
  Iteration plan_prefill_only();
  Iteration plan_decode_only();
  void admit_prompts(Iteration& it);   // whole prompts up to the token budget (vllm's prefill step)
  void admit_reserved(Iteration& it, int64_t budget);   // static, orca: KV reserved per request
  bool decode_running(Iteration& it, int64_t budget);   // vllm, sarathi: false if a preemption happened
  void swap_in(Iteration& it, int64_t& budget);

  int index_;
  Policy policy_;
  Role role_;
  std::vector<Request> handoffs_;
  bool swap_;
  int64_t max_batch_, budget_, block_;
  int64_t total_blocks_ = 0, free_blocks_ = 0;      // paged
  int64_t kv_capacity_ = 0, reserved_ = 0;          // static, orca: tokens
  double kv_bytes_per_token_ = 0;
  int64_t outstanding_ = 0;
  std::vector<Sequence> seqs_;           // every request this replica was given, by arrival
  std::deque<int64_t> waiting_;          // FIFO; preempted sequences go back to the front
  std::vector<int64_t> running_;         // admission order (the back is preempted first)
  std::deque<int64_t> swapped_;          // swap preemption: KV in host memory, FIFO
  std::vector<int64_t> static_batch_;    // static batching: the batch until its longest request ends
};

}  // namespace tpsim::serving
