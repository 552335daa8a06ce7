// The schedulers, each a few lines of policy over the same replica state:
//   static   a batch is formed when the last one has ended; its slots stay taken (padded) until
//            its longest request ends (FasterTransformer-style serving).
//   orca     iteration-level batching (Yu et al., OSDI 2022): finished requests leave and waiting
//            ones join at every iteration, whole prompts prefilled beside the decodes; each request
//            reserves KV for its prompt and output when admitted.
//   vllm     paged KV (Kwon et al., SOSP 2023, vLLM v0's default scheduler): blocks allocated as
//            sequences grow; prefills go first and an iteration with prefills runs no decodes; when
//            a decode finds no free block the last admitted sequence is preempted, by recompute
//            (back to the front of the queue, its prompt and output so far prefilled again) or by
//            swap (its blocks copied to host memory and back over PCIe).
//   sarathi  chunked prefill (Agrawal et al., OSDI 2024; vLLM v1): every iteration decodes the
//            running sequences first, then fills the rest of its token budget with prefill chunks,
//            so a long prompt never stalls the decodes for a whole prefill.
#include "serve/replica.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <utility>

namespace tpsim::serving {

Policy policy_of(const std::string& name) {
  if (name == "static") return Policy::static_batching;
  if (name == "orca") return Policy::orca;
  if (name == "vllm") return Policy::vllm;
  if (name == "sarathi") return Policy::sarathi;
  throw std::invalid_argument("unknown scheduler '" + name + "'");
}

Replica::Replica(int index, const ServingSpec& spec, const ReplicaCapacity& capacity, Role role)
    : index_(index),
      policy_(policy_of(spec.scheduler)),
      role_(role),
      swap_(spec.preemption == "swap"),
      max_batch_(spec.max_batch),
      budget_(token_budget_of(spec)),
      block_(spec.block_size),
      kv_capacity_(capacity.kv_tokens),
      kv_bytes_per_token_(capacity.kv_bytes_per_token) {
  total_blocks_ = free_blocks_ = capacity.kv_tokens / block_;
}

void Replica::admit(const Request& r) {
  Sequence s;
  s.id = r.id;
  s.prompt = r.prompt;
  s.output = r.output;
  s.target = r.prompt;
  waiting_.push_back(int64_t(seqs_.size()));
  seqs_.push_back(s);
  outstanding_ += r.prompt + r.output;
}

void Replica::admit_prefilled(const Request& r) {
  Sequence s;
  s.id = r.id;
  s.prompt = r.prompt;
  s.output = r.output;
  s.target = s.prefilled = s.kv = r.prompt;
  s.made = 1;
  waiting_.push_back(int64_t(seqs_.size()));
  seqs_.push_back(s);
  outstanding_ += r.output - 1;
}

std::vector<Request> Replica::take_handoffs() { return std::exchange(handoffs_, {}); }

int64_t Replica::kv_tokens_used() const { return paged() ? (total_blocks_ - free_blocks_) * block_ : reserved_; }

bool Replica::grow(Sequence& s, int64_t kv_after) {
  const int64_t need = blocks_for(kv_after) - s.blocks;
  if (need <= 0) return true;
  if (need > free_blocks_) return false;
  free_blocks_ -= need;
  s.blocks += need;
  return true;
}

void Replica::release(Sequence& s) {
  free_blocks_ += s.blocks;
  s.blocks = 0;
  reserved_ -= s.reserved;
  s.reserved = 0;
}

// Chunk of c tokens after k cached ones: its queries see the k cached keys and, causally, the chunk's own.
void Replica::add_prefill(Iteration& it, int64_t i, int64_t tokens) {
  const Sequence& s = seqs_[size_t(i)];
  const double c = double(tokens), k = double(s.prefilled);
  it.work.push_back({i, tokens});
  it.shape.prefill_tokens += tokens;
  it.shape.prefill_sequences += 1;
  it.shape.prefill_pairs += c * k + c * (c + 1) / 2;
  it.shape.prefill_kv_read += s.prefilled;
  if (s.prefilled + tokens >= s.target) it.shape.sampled += 1;   // the chunk that ends the prompt makes a token
}

// A decode feeds the last token made: it reads kv + 1 keys (the cache and its own).
void Replica::add_decode(Iteration& it, int64_t i) {
  it.work.push_back({i, 0});
  it.shape.decodes += 1;
  it.shape.sampled += 1;
  it.shape.decode_context += seqs_[size_t(i)].kv + 1;
}

int64_t Replica::preempt_last(Iteration& it) {
  const int64_t victim = running_.back();
  running_.pop_back();
  Sequence& s = seqs_[size_t(victim)];
  s.preemptions += 1;
  it.preempted += 1;
  if (swap_ && s.prefill_done()) {
    // Its blocks go to host memory; it keeps their count to take the same number back.
    it.shape.swap_bytes += double(s.kv) * kv_bytes_per_token_;
    free_blocks_ += s.blocks;
    s.swapped = true;
    swapped_.push_back(victim);
    return victim;
  }
  // Recompute: everything it has (prompt and output so far) is prefilled again when readmitted.
  const int64_t left_before = s.target - s.prefilled;
  release(s);
  s.target = s.prompt + s.made;
  s.prefilled = 0;
  s.kv = 0;
  outstanding_ += s.target - left_before;
  waiting_.push_front(victim);
  return victim;
}

// Decodes every running sequence that has finished its prefill (at most `budget` of them); a
// sequence that needs a block when none is free preempts the last admitted (itself, if last).
bool Replica::decode_running(Iteration& it, int64_t budget) {
  bool clean = true;
  for (size_t r = 0; r < running_.size(); ++r) {
    const int64_t i = running_[r];
    Sequence& s = seqs_[size_t(i)];
    if (!s.prefill_done()) continue;
    if (it.shape.decodes >= budget) break;
    bool self_preempted = false;
    while (!grow(s, s.kv + 1)) {
      clean = false;
      if (preempt_last(it) == i) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    add_decode(it, i);
  }
  return clean;
}

// Swapped sequences come back (FIFO) when their blocks are free, and decode at once.
void Replica::swap_in(Iteration& it, int64_t& budget) {
  while (!swapped_.empty() && int64_t(running_.size()) < max_batch_ && budget > 0) {
    const int64_t i = swapped_.front();
    Sequence& s = seqs_[size_t(i)];
    const int64_t need = blocks_for(s.kv + 1);
    if (need > free_blocks_) break;
    swapped_.pop_front();
    s.swapped = false;
    free_blocks_ -= need;
    s.blocks = need;
    it.shape.swap_bytes += double(s.kv) * kv_bytes_per_token_;
    running_.push_back(i);
    add_decode(it, i);
    budget -= 1;
  }
}

Iteration Replica::plan_static() {
  Iteration it;
  if (!running_.empty()) {   // the batch goes on, finished requests padded, until its longest ends
    for (int64_t i : running_) add_decode(it, i);
    return it;
  }
  admit_reserved(it, 0);
  return it;
}

Iteration Replica::plan_orca() {
  Iteration it;
  for (int64_t i : running_) add_decode(it, i);
  admit_reserved(it, budget_);
  return it;
}

// Static and Orca: waiting requests in order, each whole prompt prefilled now and KV reserved for
// its prompt and output, while the reservation and max_batch allow (and the prompts fit `budget`
// tokens, when it is not 0).
void Replica::admit_reserved(Iteration& it, int64_t budget) {
  while (!waiting_.empty() && int64_t(running_.size()) < max_batch_) {
    Sequence& s = seqs_[size_t(waiting_.front())];
    const int64_t need = s.prompt + s.output;
    if (reserved_ + need > kv_capacity_) break;
    if (budget > 0 && it.shape.prefill_tokens > 0 && it.shape.prefill_tokens + s.target > budget) break;
    s.reserved = need;
    reserved_ += need;
    running_.push_back(waiting_.front());
    waiting_.pop_front();
    add_prefill(it, running_.back(), s.target);
  }
}

// Whole prompts up to the token budget (one longer prompt alone), none while swapped sequences
// wait to come back.
void Replica::admit_prompts(Iteration& it) {
  while (swapped_.empty() && !waiting_.empty() && int64_t(running_.size()) < max_batch_) {
    Sequence& s = seqs_[size_t(waiting_.front())];
    if (s.prefill_done()) break;   // a decode replica's arrival, admitted by plan_decode_only
    if (it.shape.prefill_tokens > 0 && it.shape.prefill_tokens + s.target > budget_) break;
    if (!grow(s, s.target)) break;
    running_.push_back(waiting_.front());
    waiting_.pop_front();
    add_prefill(it, running_.back(), s.target);
  }
}

Iteration Replica::plan_vllm() {
  Iteration it;
  admit_prompts(it);   // prefills first
  if (!it.empty()) return it;
  int64_t budget = std::numeric_limits<int64_t>::max();
  if (decode_running(it, budget)) swap_in(it, budget);
  return it;
}

Iteration Replica::plan_sarathi() {
  Iteration it;
  int64_t budget = budget_;
  const bool clean = decode_running(it, budget);
  budget -= it.shape.decodes;
  for (int64_t i : running_) {   // prefills under way, oldest first
    Sequence& s = seqs_[size_t(i)];
    if (s.prefill_done() || budget <= 0) continue;
    const int64_t chunk = std::min(s.target - s.prefilled, budget);
    if (!grow(s, s.prefilled + chunk)) break;
    add_prefill(it, i, chunk);
    budget -= chunk;
  }
  if (clean) swap_in(it, budget);
  while (swapped_.empty() && !waiting_.empty() && int64_t(running_.size()) < max_batch_ && budget > 0) {
    Sequence& s = seqs_[size_t(waiting_.front())];
    const int64_t chunk = std::min(s.target, budget);
    if (!grow(s, chunk)) break;
    running_.push_back(waiting_.front());
    waiting_.pop_front();
    add_prefill(it, running_.back(), chunk);
    budget -= chunk;
  }
  return it;
}

Iteration Replica::plan_prefill_only() {
  Iteration it;
  admit_prompts(it);
  return it;
}

// Arrivals whose KV came over the network join the decoding batch when their blocks fit; a
// sequence preempted here is prefilled again here (recompute), before the decodes, as vLLM does.
Iteration Replica::plan_decode_only() {
  Iteration it;
  while (swapped_.empty() && !waiting_.empty() && int64_t(running_.size()) < max_batch_) {
    Sequence& s = seqs_[size_t(waiting_.front())];
    if (!s.prefill_done() || !grow(s, s.kv)) break;
    running_.push_back(waiting_.front());
    waiting_.pop_front();
  }
  admit_prompts(it);
  if (!it.empty()) return it;
  int64_t budget = std::numeric_limits<int64_t>::max();
  if (decode_running(it, budget)) swap_in(it, budget);
  return it;
}

Iteration Replica::plan() {
  if (role_ == Role::prefill) return plan_prefill_only();
  if (role_ == Role::decode) return plan_decode_only();
  switch (policy_) {
    case Policy::static_batching: return plan_static();
    case Policy::orca: return plan_orca();
    case Policy::vllm: return plan_vllm();
    case Policy::sarathi: return plan_sarathi();
  }
  return {};
}

void Replica::finish(const Iteration& it, double start, double end, std::vector<RequestOutcome>& out) {
  for (const Work& w : it.work) {
    Sequence& s = seqs_[size_t(w.seq)];
    RequestOutcome& o = out[size_t(s.id)];
    if (o.first_scheduled < 0) o.first_scheduled = start;
    if (s.done()) continue;   // a static batch's padding
    if (w.prefill > 0) {
      s.prefilled += w.prefill;
      s.kv = s.prefilled;
      outstanding_ -= w.prefill;
      if (!s.prefill_done()) continue;
    } else {
      s.kv += 1;
    }
    s.made += 1;
    outstanding_ -= 1;
    if (o.first_token < 0) o.first_token = end;
    if (s.done()) {
      o.finished = end;
      o.preemptions = s.preemptions;
    }
  }
  if (policy_ == Policy::static_batching) {
    // The batch's slots and reservations are given back only when all of it is done.
    const bool all_done = std::all_of(running_.begin(), running_.end(), [&](int64_t i) { return seqs_[size_t(i)].done(); });
    if (all_done) {
      for (int64_t i : running_) release(seqs_[size_t(i)]);
      running_.clear();
    }
    return;
  }
  std::erase_if(running_, [&](int64_t i) {
    Sequence& s = seqs_[size_t(i)];
    const bool handed_on = role_ == Role::prefill && s.prefill_done() && !s.done();
    if (!s.done() && !handed_on) return false;
    release(s);
    if (handed_on) {
      handoffs_.push_back(Request{s.id, 0, s.prompt, s.output});
      outstanding_ -= s.output - 1;
    }
    return true;
  });
}

}  // namespace tpsim::serving
