// The numerics interpreter of schedules: runs the transfers on real float buffers, round by round,
// with the round-start snapshot semantics of collective.hpp, and the natural-layout wrapper
// (run_collective) that numerics and the tests call.
#include <algorithm>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "collectives/builder.hpp"
#include "collectives/huge_pages.hpp"

namespace tpsim {

namespace {

void check_transfer(const Schedule& s, const Transfer& t) {
  auto bad = [&](const char* what, int v, int limit) {
    throw std::invalid_argument(std::string("schedule ") + to_string(s.op) + "/" + to_string(s.algorithm) + ": " +
                                what + " " + std::to_string(v) + " outside [0, " + std::to_string(limit) + ")");
  };
  if (t.src < 0 || t.src >= s.participants) bad("source participant", t.src, s.participants);
  if (t.dst < 0 || t.dst >= s.participants) bad("destination participant", t.dst, s.participants);
  if (t.src_chunk < 0 || t.src_chunk >= s.chunks) bad("source chunk", t.src_chunk, s.chunks);
  if (t.dst_chunk < 0 || t.dst_chunk >= s.chunks) bad("destination chunk", t.dst_chunk, s.chunks);
}

}  // namespace

// buffers: participants x (chunks * e) floats. Per round, the transfers read their sources as
// they were at the round's start: a source that another transfer of the same round overwrites is
// copied aside first (a ring never needs this: each chunk is read on one rank and written on the
// next), then the transfers apply in order: dst = src (copy) or dst = round_fn(dst + src) (reduce,
// fp32 add).
void run_schedule(const Schedule& s, std::vector<std::vector<float>>& buffers, size_t chunk_elems,
                  float (*round_fn)(float), std::vector<float>* snapshot_memory) {
  const size_t e = chunk_elems, size = static_cast<size_t>(s.chunks) * e;
  if (buffers.size() < static_cast<size_t>(s.participants)) buffers.resize(s.participants);
  for (int q = 0; q < s.participants; ++q)
    if (buffers[q].size() < size) buffers[q].resize(size, 0.0f);
  std::vector<float> own_snapshot;
  std::vector<float>& snapshot = snapshot_memory ? *snapshot_memory : own_snapshot;
  std::vector<int64_t> written;         // (dst, dst_chunk) keys of the round, sorted
  std::vector<const float*> sources;    // per transfer: where its round-start value is
  std::vector<char> overwritten;        // per transfer: the round also writes its source
  const auto key = [&](int who, int chunk) { return int64_t(who) * s.chunks + chunk; };
  for (const Round& round : s.rounds) {
    written.clear();
    for (const Transfer& t : round.transfers) {
      check_transfer(s, t);
      written.push_back(key(t.dst, t.dst_chunk));
    }
    std::sort(written.begin(), written.end());
    overwritten.clear();
    for (const Transfer& t : round.transfers)
      overwritten.push_back(std::binary_search(written.begin(), written.end(), key(t.src, t.src_chunk)));
    grow_huge(snapshot, size_t(std::count(overwritten.begin(), overwritten.end(), 1)) * e);
    sources.clear();
    size_t aside = 0;
    for (size_t i = 0; i < round.transfers.size(); ++i) {
      const Transfer& t = round.transfers[i];
      const float* src = buffers[t.src].data() + t.src_chunk * e;
      if (overwritten[i]) {
        float* copy = snapshot.data() + aside++ * e;
        std::copy(src, src + e, copy);
        src = copy;
      }
      sources.push_back(src);
    }
    for (size_t i = 0; i < round.transfers.size(); ++i) {
      const Transfer& t = round.transfers[i];
      const float* src = sources[i];
      float* dst = buffers[t.dst].data() + t.dst_chunk * e;
      if (!t.reduce) {
        if (dst != src) std::copy(src, src + e, dst);
      } else if (round_fn) {
        for (size_t j = 0; j < e; ++j) dst[j] = round_fn(dst[j] + src[j]);
      } else {
        for (size_t j = 0; j < e; ++j) dst[j] += src[j];
      }
    }
  }
}

namespace {

// How an op's natural buffers split into segments: all-gather's output is p shards, reduce-
// scatter's input p shards, all-to-all's input and output p slots; everything else is one segment.
int input_segments(CollectiveOp op, int p) {
  return op == CollectiveOp::reduce_scatter || op == CollectiveOp::all_to_all ? p : 1;
}
int output_segments(CollectiveOp op, int p) {
  return op == CollectiveOp::all_gather || op == CollectiveOp::all_to_all ? p : 1;
}

std::string what(CollectiveOp op) { return std::string("run_collective ") + to_string(op) + ": "; }

// Runs schedule s with each participant's data seen as segments of `seg` elements:
// in_segment(i, j) is the valid part of participant i's input segment j (zero-padded to seg),
// out_segment(i, j) where the valid part of its output segment j goes. Each segment spreads over
// its share of the participant's chunks; the chunk buffers live in `scratch` and are reused.
// Returns, per participant, whether the schedule gave it an output.
template <class InSegment, class OutSegment>
std::vector<char> run_segments(const Schedule& s, size_t seg, InSegment in_segment, OutSegment out_segment,
                               CollectiveScratch& scratch, float (*round_fn)(float)) {
  const int p = s.ranks, gin = input_segments(s.op, p), gout = output_segments(s.op, p);
  size_t per = 1;
  for (int i = 0; i < p; ++i)
    if (!s.input_chunks[i].empty()) {
      per = s.input_chunks[i].size() / gin;
      break;
    }
  const size_t e = std::max<size_t>(1, (seg + per - 1) / per), size = size_t(s.chunks) * e;
  if (scratch.buffers.size() < size_t(s.participants)) scratch.buffers.resize(s.participants);
  for (int q = 0; q < s.participants; ++q) {
    std::vector<float>& b = scratch.buffers[q];
    grow_huge(b, size);
    std::fill(b.begin(), b.begin() + size, 0.0f);
  }
  for (int i = 0; i < p; ++i) {
    const std::vector<int>& chunks = s.input_chunks[i];
    if (chunks.empty()) continue;
    for (int j = 0; j < gin; ++j) {
      const std::span<const float> data = in_segment(i, j);
      for (size_t c = 0; c < per && c * e < data.size(); ++c)
        std::copy_n(data.data() + c * e, std::min(e, data.size() - c * e), scratch.buffers[i].data() + chunks[j * per + c] * e);
    }
  }
  run_schedule(s, scratch.buffers, e, round_fn, &scratch.snapshot);
  std::vector<char> written(p, 0);
  for (int i = 0; i < p; ++i) {
    const std::vector<int>& chunks = s.output_chunks[i];
    if (chunks.empty()) continue;
    written[i] = 1;
    const size_t out_per = chunks.size() / gout;
    for (int j = 0; j < gout; ++j) {
      const std::span<float> data = out_segment(i, j);
      for (size_t c = 0; c < out_per && c * e < data.size(); ++c)
        std::copy_n(scratch.buffers[i].data() + chunks[j * out_per + c] * e, std::min(e, data.size() - c * e),
                    data.data() + c * e);
    }
  }
  return written;
}

}  // namespace

size_t collective_output_length(CollectiveOp op, int rank, size_t n, int p) {
  const size_t seg = (n + input_segments(op, p) - 1) / input_segments(op, p);
  switch (op) {
    case CollectiveOp::all_gather: return size_t(p) * n;
    case CollectiveOp::reduce_scatter: return std::min(n, (rank + 1) * seg) - std::min(n, rank * seg);
    default: return n;
  }
}

std::vector<std::vector<float>> run_collective(const Schedule& s, const std::vector<std::vector<float>>& inputs,
                                               float (*round_fn)(float)) {
  const int p = s.ranks;
  if (static_cast<int>(inputs.size()) != p)
    throw std::invalid_argument(what(s.op) + std::to_string(inputs.size()) + " inputs for a group of " +
                                std::to_string(p));
  // n = the natural input length; all ranks that have an input must agree (broadcast: root only).
  size_t n = 0;
  int with_input = -1;
  for (int r = 0; r < p; ++r) {
    if (s.input_chunks[r].empty()) continue;
    if (with_input >= 0 && inputs[r].size() != n)
      throw std::invalid_argument(what(s.op) + "rank " + std::to_string(r) + " has " + std::to_string(inputs[r].size()) +
                                  " elements, rank " + std::to_string(with_input) + " " + std::to_string(n));
    if (with_input < 0) n = inputs[r].size(), with_input = r;
  }
  const int gin = input_segments(s.op, p);
  if (s.op == CollectiveOp::all_to_all && n % p != 0)
    throw std::invalid_argument(what(s.op) + std::to_string(n) + " elements do not split into " + std::to_string(p) +
                                " equal slots");
  const size_t seg = (n + gin - 1) / gin;   // segment length (reduce-scatter: the last shards may be short)
  std::vector<std::vector<float>> outputs(p);
  for (int r = 0; r < p; ++r) outputs[r].assign(collective_output_length(s.op, r, n, p), 0.0f);
  const size_t out_seg = s.op == CollectiveOp::all_gather ? n : seg;
  CollectiveScratch scratch;
  const std::vector<char> written = run_segments(
      s, seg,
      [&](int i, int j) {
        const size_t begin = std::min(inputs[i].size(), j * seg), end = std::min(inputs[i].size(), begin + seg);
        return std::span<const float>(inputs[i].data() + begin, end - begin);
      },
      [&](int i, int j) {
        std::vector<float>& out = outputs[i];
        const size_t begin = std::min(out.size(), j * out_seg), end = std::min(out.size(), begin + out_seg);
        return std::span<float>(out.data() + begin, end - begin);
      },
      scratch, round_fn);
  for (int r = 0; r < p; ++r)
    if (!written[r]) outputs[r].clear();
  return outputs;
}

std::vector<std::vector<float>> run_collective(CollectiveOp op, Algorithm algorithm,
                                               const std::vector<std::vector<float>>& inputs,
                                               const CollectiveRunOptions& options) {
  ScheduleRequest request;
  request.op = op;
  request.algorithm = algorithm;
  request.ranks = static_cast<int>(inputs.size());
  request.channels = options.channels;
  request.root = options.root;
  request.ranks_per_node = options.ranks_per_node;
  request.pipeline = options.pipeline;
  return run_collective(make_schedule(request), inputs, options.round_fn);
}

}  // namespace tpsim

namespace tpsim {

namespace {

// Positions 0..p-1 in order: one channel that keeps the group's ring order.
std::vector<std::vector<int>> channel_orders_of(const CollectiveInstance& instance, int p) {
  std::vector<std::vector<int>> orders = instance.channel_orders;
  if (orders.empty()) {
    orders.emplace_back(p);
    for (int i = 0; i < p; ++i) orders[0][i] = i;
  }
  for (const std::vector<int>& order : orders) {
    std::vector<char> seen(p, 0);
    bool ok = static_cast<int>(order.size()) == p;
    for (int i : order) ok = ok && i >= 0 && i < p && !std::exchange(seen[i], 1);
    if (!ok) throw std::invalid_argument("run_collective: a channel order is not a permutation of the group's positions");
  }
  return orders;
}

}  // namespace

// Channel c carries slice c of every segment (a contiguous 1/C of it, as NCCL splits a buffer over
// channels) with participant i = group position order[i]; segments addressed to a rank (reduce-
// scatter shards, all-to-all slots) follow their rank into the channel's order. Reads the inputs
// and writes the outputs in place: no copy of either is made.
std::vector<char> run_collective(CollectiveOp op, const CollectiveInstance& instance,
                                 const std::vector<std::span<const float>>& inputs,
                                 const std::vector<std::span<float>>& outputs, CollectiveScratch& scratch, int root,
                                 float (*round_fn)(float), const std::function<void(Schedule&)>& edit) {
  if (!instance.resolved()) throw std::logic_error("run_collective: the collective instance was never resolved");
  const int p = static_cast<int>(inputs.size());
  if (static_cast<int>(outputs.size()) != p)
    throw std::invalid_argument(what(op) + std::to_string(outputs.size()) + " outputs for a group of " + std::to_string(p));
  const std::vector<std::vector<int>> orders = channel_orders_of(instance, p);
  const int channels = static_cast<int>(orders.size());
  if (op == CollectiveOp::send_recv)   // rank r sends to r+1: reordering would change what it means
    for (const std::vector<int>& order : orders)
      for (int i = 0; i < p; ++i)
        if (order[i] != i) throw std::invalid_argument("run_collective: send_recv runs in the group's own order");
  size_t n = 0;
  for (const auto& in : inputs) n = std::max(n, in.size());
  const int gin = input_segments(op, p), gout = output_segments(op, p);
  const size_t seg = (n + gin - 1) / gin;                // a segment of the natural buffers
  const size_t slice = (seg + channels - 1) / channels;  // one channel's part of a segment
  const size_t out_seg = op == CollectiveOp::all_gather ? n : seg;
  for (int g = 0; g < p; ++g)
    if (outputs[g].size() != collective_output_length(op, g, n, p))
      throw std::invalid_argument(what(op) + "rank " + std::to_string(g) + "'s output holds " +
                                  std::to_string(outputs[g].size()) + " elements, the collective writes " +
                                  std::to_string(collective_output_length(op, g, n, p)));

  std::vector<char> written(p, 0);
  std::map<int, Schedule> schedules;   // by the root's position: channels differ only in it
  for (int c = 0; c < channels; ++c) {
    const std::vector<int>& order = orders[c];
    const ScheduleRequest request = channel_request(op, instance, p, order, root);
    auto [it, fresh] = schedules.try_emplace(request.root);
    if (fresh) {
      it->second = make_schedule(request);
      if (edit) edit(it->second);
    }
    const Schedule& schedule = it->second;
    // Participant i's segment j: channel c's slice of natural segment k, where k is participant
    // j's group position when segments are addressed to ranks, else 0.
    const auto natural = [&](size_t size, int j, int segments, size_t length) {
      const size_t k = segments > 1 ? size_t(order[j]) : 0;
      const size_t begin = std::min(size, std::min(k * length + length, k * length + c * slice));
      const size_t end = std::min({size, k * length + length, begin + slice});
      return std::pair<size_t, size_t>(begin, std::max(begin, end));
    };
    const std::vector<char> done = run_segments(
        schedule, slice,
        [&](int i, int j) {
          const std::span<const float> in = inputs[order[i]];
          const auto [begin, end] = natural(in.size(), j, gin, seg);
          return in.subspan(begin, end - begin);
        },
        [&](int i, int j) {
          const std::span<float> out = outputs[order[i]];
          const auto [begin, end] = natural(out.size(), j, gout, out_seg);
          return out.subspan(begin, end - begin);
        },
        scratch, round_fn);
    for (int i = 0; i < p; ++i) written[order[i]] |= done[i];
  }
  return written;
}

std::vector<std::vector<float>> run_collective(CollectiveOp op, const CollectiveInstance& instance,
                                               const std::vector<std::vector<float>>& inputs, int root,
                                               float (*round_fn)(float), const std::function<void(Schedule&)>& edit) {
  const int p = static_cast<int>(inputs.size());
  size_t n = 0;
  for (const auto& in : inputs) n = std::max(n, in.size());
  std::vector<std::vector<float>> outputs(p);
  std::vector<std::span<const float>> in(inputs.begin(), inputs.end());
  std::vector<std::span<float>> out(p);
  for (int g = 0; g < p; ++g) {
    outputs[g].assign(collective_output_length(op, g, n, p), 0.0f);
    out[g] = outputs[g];
  }
  CollectiveScratch scratch;
  const std::vector<char> written = run_collective(op, instance, in, out, scratch, root, round_fn, edit);
  for (int g = 0; g < p; ++g)
    if (!written[g]) outputs[g].clear();
  return outputs;
}

}  // namespace tpsim
