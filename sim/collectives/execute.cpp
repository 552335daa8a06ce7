// The numerics interpreter of schedules: runs the transfers on real float buffers, round by round,
// with the round-start snapshot semantics of collective.hpp, and the natural-layout wrapper
// (run_collective) that numerics and the tests call.
#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include "collectives/builder.hpp"

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

// buffers: participants x (chunks * e) floats. Per round: snapshot every source chunk, then apply
// the transfers in order: dst = src (copy) or dst = round_fn(dst + src) (reduce, fp32 add).
void run_schedule(const Schedule& s, std::vector<std::vector<float>>& buffers, size_t chunk_elems,
                  float (*round_fn)(float)) {
  const size_t e = chunk_elems, size = static_cast<size_t>(s.chunks) * e;
  if (buffers.size() < static_cast<size_t>(s.participants)) buffers.resize(s.participants);
  for (auto& b : buffers)
    if (b.size() < size) b.resize(size, 0.0f);
  std::vector<float> snapshot;
  for (const Round& round : s.rounds) {
    snapshot.resize(round.transfers.size() * e);
    for (size_t i = 0; i < round.transfers.size(); ++i) {
      const Transfer& t = round.transfers[i];
      check_transfer(s, t);
      const float* src = buffers[t.src].data() + t.src_chunk * e;
      std::copy(src, src + e, snapshot.begin() + i * e);
    }
    for (size_t i = 0; i < round.transfers.size(); ++i) {
      const Transfer& t = round.transfers[i];
      const float* src = snapshot.data() + i * e;
      float* dst = buffers[t.dst].data() + t.dst_chunk * e;
      if (!t.reduce) {
        std::copy(src, src + e, dst);
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

// Writes `data` (segments of `seg` elements, the last ones possibly short) into `chunks` of `buf`:
// each segment fills chunks.size()/segments chunks of e elements, zero-padded.
void scatter(const std::vector<float>& data, size_t seg, int segments, const std::vector<int>& chunks, size_t e,
             std::vector<float>& buf) {
  const size_t per = chunks.size() / segments;
  for (int g = 0; g < segments; ++g)
    for (size_t c = 0; c < per; ++c) {
      const size_t begin = std::min(data.size(), g * seg + c * e);
      const size_t end = std::min({data.size(), g * seg + seg, begin + e});
      float* dst = buf.data() + chunks[g * per + c] * e;
      std::fill(dst, dst + e, 0.0f);
      if (end > begin) std::copy(data.begin() + begin, data.begin() + end, dst);
    }
}

// Reads segment g's first lengths[g] elements back from `chunks` of `buf`.
std::vector<float> gather(const std::vector<size_t>& lengths, const std::vector<int>& chunks, size_t e,
                          const std::vector<float>& buf) {
  std::vector<float> out;
  const size_t per = chunks.size() / lengths.size();
  for (size_t g = 0; g < lengths.size(); ++g)
    for (size_t c = 0; c < per && c * e < lengths[g]; ++c) {
      const float* src = buf.data() + chunks[g * per + c] * e;
      out.insert(out.end(), src, src + std::min(e, lengths[g] - c * e));
    }
  return out;
}

std::string what(const Schedule& s) { return std::string("run_collective ") + to_string(s.op) + ": "; }

}  // namespace

std::vector<std::vector<float>> run_collective(const Schedule& s, const std::vector<std::vector<float>>& inputs,
                                               float (*round_fn)(float)) {
  const int p = s.ranks;
  if (static_cast<int>(inputs.size()) != p)
    throw std::invalid_argument(what(s) + std::to_string(inputs.size()) + " inputs for a group of " +
                                std::to_string(p));
  // n = the natural input length; all ranks that have an input must agree (broadcast: root only).
  size_t n = 0;
  int with_input = -1;
  for (int r = 0; r < p; ++r) {
    if (s.input_chunks[r].empty()) continue;
    if (with_input >= 0 && inputs[r].size() != n)
      throw std::invalid_argument(what(s) + "rank " + std::to_string(r) + " has " + std::to_string(inputs[r].size()) +
                                  " elements, rank " + std::to_string(with_input) + " " + std::to_string(n));
    if (with_input < 0) n = inputs[r].size(), with_input = r;
  }
  const int gin = input_segments(s.op, p), gout = output_segments(s.op, p);
  if (s.op == CollectiveOp::all_to_all && n % p != 0)
    throw std::invalid_argument(what(s) + std::to_string(n) + " elements do not split into " + std::to_string(p) +
                                " equal slots");
  const size_t seg = (n + gin - 1) / gin;   // segment length (reduce-scatter: the last shards may be short)
  const size_t per = with_input >= 0 ? s.input_chunks[with_input].size() / gin : 1;
  const size_t e = std::max<size_t>(1, (seg + per - 1) / per);

  std::vector<std::vector<float>> buffers(s.participants, std::vector<float>(s.chunks * e, 0.0f));
  for (int r = 0; r < p; ++r)
    if (!s.input_chunks[r].empty()) scatter(inputs[r], seg, gin, s.input_chunks[r], e, buffers[r]);
  run_schedule(s, buffers, e, round_fn);

  std::vector<std::vector<float>> outputs(p);
  for (int r = 0; r < p; ++r) {
    if (s.output_chunks[r].empty()) continue;
    std::vector<size_t> lengths(gout, seg);
    if (s.op == CollectiveOp::reduce_scatter)   // rank r's shard: [r*seg, (r+1)*seg) clipped to n
      lengths[0] = std::min(n, (r + 1) * seg) - std::min(n, r * seg);
    outputs[r] = gather(lengths, s.output_chunks[r], e, buffers[r]);
  }
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
// scatter shards, all-to-all slots) follow their rank into the channel's order.
std::vector<std::vector<float>> run_collective(CollectiveOp op, const CollectiveInstance& instance,
                                               const std::vector<std::vector<float>>& inputs, int root,
                                               float (*round_fn)(float), const std::function<void(Schedule&)>& edit) {
  if (!instance.resolved()) throw std::logic_error("run_collective: the collective instance was never resolved");
  const int p = static_cast<int>(inputs.size());
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

  std::vector<std::vector<float>> outputs(p);
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

    std::vector<std::vector<float>> part(p);
    for (int i = 0; i < p; ++i) {
      const std::vector<float>& in = inputs[order[i]];
      if (in.empty()) continue;
      part[i].assign(gin * slice, 0.0f);
      for (int j = 0; j < gin; ++j) {
        const size_t k = gin > 1 ? order[j] : 0;   // the segment addressed to participant j
        const size_t begin = std::min(in.size(), std::min(k * seg + seg, k * seg + c * slice));
        const size_t end = std::min({in.size(), k * seg + seg, begin + slice});
        std::copy(in.begin() + begin, in.begin() + std::max(begin, end), part[i].begin() + j * slice);
      }
    }
    const std::vector<std::vector<float>> done = run_collective(schedule, part, round_fn);

    for (int i = 0; i < p; ++i) {
      const int g = order[i];
      if (done[i].empty()) continue;
      // The natural output: gout segments of `seg` (reduce-scatter: rank g's shard, clipped to n).
      const size_t length = op == CollectiveOp::reduce_scatter ? std::min(n, (g + 1) * seg) - std::min(n, g * seg)
                            : op == CollectiveOp::all_gather   ? p * n
                                                               : n;
      std::vector<float>& out = outputs[g];
      out.resize(length, 0.0f);
      for (int j = 0; j < gout; ++j) {
        const size_t k = gout > 1 ? order[j] : 0;   // participant j's segment is group position order[j]'s
        const size_t seg_len = op == CollectiveOp::all_gather ? n : seg;
        const size_t begin = k * seg_len + c * slice;
        const size_t end = std::min({length, k * seg_len + seg_len, begin + slice});
        for (size_t e = begin; e < end; ++e) out[e] = done[i][j * slice + (e - begin)];
      }
    }
  }
  return outputs;
}

}  // namespace tpsim
