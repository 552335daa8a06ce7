// The numerics interpreter: ranks advance in turn until each is blocked on a collective whose group
// has not all arrived, or on a receive whose send has not happened; a collective runs when its
// whole group is there. Tensors are filled on first read, freed after last use.
#include "numerics/executor.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <map>
#include <stdexcept>
#include <tuple>

#include "numerics/kernels.hpp"
#include "numerics/memory.hpp"

namespace tpsim::numerics {

namespace {

// Adds the scope's wall time to profile[key] when profiling.
struct Timer {
  std::map<std::string, ExecOptions::Spent>* profile;
  std::string key;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  ~Timer() {
    if (!profile) return;
    ExecOptions::Spent& spent = (*profile)[key];
    spent.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++spent.calls;
  }
};

// Profile key of a GEMM: its shape and transposes, so a benchmark can tell which shapes are slow.
std::string gemm_key(const GemmInfo& g) {
  return fmt::format("gemm {}x{}x{}{}{}", g.m, g.n, g.k, g.trans_a ? " A^T" : "", g.trans_b ? " B^T" : "");
}

struct RankState {
  const Program* program = nullptr;
  size_t pc = 0;
  std::map<std::string, Mat> store;
  std::map<std::string, int> last_write, last_use;
};

class Executor {
 public:
  Executor(const ProgramSet& set, const ExecOptions& options) : set_(set), options_(options) {
    states_.resize(set.ranks.size());
    for (size_t r = 0; r < set.ranks.size(); ++r) {
      if (set.ranks[r].rank != int(r)) throw std::invalid_argument("ProgramSet: ranks[r].rank must equal r");
      RankState& s = states_[r];
      s.program = &set.ranks[r];
      ops_total_ += int64_t(s.program->ops.size());
      for (const Op& op : s.program->ops) {
        for (const auto& t : op.inputs) s.last_use[t] = op.id;
        for (const auto& t : op.outputs) s.last_use[t] = s.last_write[t] = op.id;
      }
    }
  }

  void run() {
    for (;;) {
      bool progressed = false, done = true;
      for (size_t r = 0; r < states_.size(); ++r) {
        while (step(int(r))) progressed = true;
        if (states_[r].pc < states_[r].program->ops.size()) done = false;
      }
      if (done) return;
      if (!progressed) throw std::runtime_error(deadlock_message());
    }
  }

 private:
  const TensorDesc& desc(int r, const std::string& t) const {
    auto it = states_[r].program->tensors.find(t);
    if (it == states_[r].program->tensors.end())
      throw std::invalid_argument(fmt::format("rank {}: tensor {} is not declared", r, t));
    return it->second;
  }

  // A tensor read before any op wrote it is an input: filled from its global tensor.
  Mat& read(int r, const std::string& t, const Op& op) {
    RankState& s = states_[r];
    auto it = s.store.find(t);
    if (it != s.store.end()) return it->second;
    if (s.last_write.count(t) && s.last_write.at(t) >= op.id && !is_output(op, t))
      throw std::logic_error(fmt::format("rank {}: op {} reads {} before it is written", r, op.name, t));
    const TensorDesc& d = desc(r, t);
    if (d.global_name.empty() && !d.is_weight)
      throw std::invalid_argument(fmt::format("rank {}: op {} reads {}, which nothing writes and no global tensor names",
                                              r, op.name, t));
    Timer timer{options_.profile, "fill"};
    Mat m = take(d.rows, d.cols);
    fill(d, options_.seed, m);
    if (options_.dtype == DType::bf16) round_bf16(m);
    return s.store.emplace(t, std::move(m)).first->second;
  }
  static bool is_output(const Op& op, const std::string& t) {
    for (const auto& o : op.outputs)
      if (o == t) return true;
    return false;
  }

  // A new output is zeroed unless the op writes every element (`overwrites`: a non-accumulating
  // GEMM, a receive, a collective), which saves a pass over memory per tensor.
  Mat& output(int r, const std::string& t, bool overwrites = false) {
    RankState& s = states_[r];
    const TensorDesc& d = desc(r, t);
    auto it = s.store.find(t);
    if (it != s.store.end() && it->second.rows() == d.rows && it->second.cols() == d.cols) return it->second;
    Mat m = take(d.rows, d.cols);
    if (!overwrites) m.setZero();
    return s.store.insert_or_assign(t, std::move(m)).first->second;
  }

  // After op: round outputs (bf16), report final values, free what is no longer used.
  void finish(int r, const Op& op) {
    RankState& s = states_[r];
    for (const auto& t : op.outputs) {
      Mat& m = s.store.at(t);
      if (options_.dtype == DType::bf16 && op.kind != OpKind::collective && op.kind != OpKind::recv) round_bf16(m);
      const TensorDesc& d = desc(r, t);
      if (options_.on_final && !d.global_name.empty() && s.last_write.at(t) == op.id) {
        Timer timer{options_.profile, "compare"};
        options_.on_final(r, op, d, m);
      }
    }
    auto release = [&](const std::string& t) {
      auto it = s.last_use.find(t);
      if (it == s.last_use.end() || it->second != op.id) return;
      auto stored = s.store.find(t);
      if (stored == s.store.end()) return;
      const TensorDesc& d = desc(r, t);
      if (options_.keep_finals && d.parts == 1 && d.row_parts == 1 && d.cp_parts == 1 && !d.global_name.empty() && s.last_write.count(t))
        options_.keep_finals->try_emplace(d.global_name, std::move(stored->second));
      else
        give_back(std::move(stored->second));
      s.store.erase(stored);
    };
    for (const auto& t : op.inputs) release(t);
    for (const auto& t : op.outputs) release(t);
    ++s.pc;
    if (options_.progress) options_.progress(++ops_done_, ops_total_);
  }

  void compute(int r, const Op& op) {
    std::vector<const Mat*> in;
    for (const auto& t : op.inputs) in.push_back(&read(r, t, op));
    std::vector<Mat*> out;
    const bool overwrites = op.kind == OpKind::gemm && !op.gemm.accumulate;
    for (const auto& t : op.outputs) out.push_back(&output(r, t, overwrites));
    Timer timer{options_.profile, op.kind == OpKind::gemm ? gemm_key(op.gemm) : op.kernel.fn};
    try {
      if (op.kind == OpKind::gemm) {
        if (in.size() != 2 || out.size() != 1) throw std::invalid_argument("a gemm reads two tensors, writes one");
        gemm(op.gemm, *in[0], *in[1], *out[0]);
      } else {
        KernelFn fn = find_kernel(op.kernel.fn);
        if (!fn) throw std::invalid_argument(fmt::format("no numerics kernel named '{}'", op.kernel.fn));
        fn(op, in, out);
        if (options_.on_decision && op.kernel.fn == "moe_route")
          options_.on_decision(r, op, desc(r, op.outputs.at(0)), in, *out.at(0));
      }
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(fmt::format("rank {}: op {}: {}", r, op.name, e.what()));
    }
  }

  // Advances rank r by one op if it can.
  bool step(int r) {
    RankState& s = states_[r];
    if (s.pc >= s.program->ops.size()) return false;
    const Op& op = s.program->ops[s.pc];
    switch (op.kind) {
      case OpKind::gemm:
      case OpKind::kernel:
        compute(r, op);
        finish(r, op);
        return true;
      case OpKind::send: {
        mailbox_[{r, op.p2p.peer, op.p2p.tag}] = read(r, op.inputs.at(0), op);
        finish(r, op);
        return true;
      }
      case OpKind::recv: {
        auto it = mailbox_.find({op.p2p.peer, r, op.p2p.tag});
        if (it == mailbox_.end()) return false;
        Mat& out = output(r, op.outputs.at(0), true);
        if (out.size() != it->second.size())
          throw std::invalid_argument(fmt::format("rank {}: op {}: received {} elements, expected {}", r, op.name,
                                                  it->second.size(), out.size()));
        out = Eigen::Map<const Mat>(it->second.data(), out.rows(), out.cols());
        mailbox_.erase(it);
        finish(r, op);
        return true;
      }
      case OpKind::collective:
        return try_collective(r, op);
    }
    return false;
  }

  bool try_collective(int r, const Op& op) {
    const std::vector<int>& group = op.collective.group;
    for (int g : group) {
      if (g < 0 || g >= int(states_.size()))
        throw std::invalid_argument(fmt::format("rank {}: op {}: group names rank {}", r, op.name, g));
      const RankState& gs = states_[g];
      if (gs.pc >= gs.program->ops.size()) return false;
      const Op& other = gs.program->ops[gs.pc];
      if (other.kind != OpKind::collective) return false;
      if (other.collective.group != group || other.collective.op != op.collective.op)
        return false;
    }
    run_collective_op(group);
    return true;
  }

  // The collective reads each rank's input tensor and writes its output tensor in place; only a
  // column-split layout (dim 1: p column blocks) or an output that is its own input goes through
  // a staging copy.
  void run_collective_op(const std::vector<int>& group) {
    Timer timer{options_.profile, "collective"};
    const int p = int(group.size());
    const Op& op = states_[group[0]].program->ops[states_[group[0]].pc];
    const CollectiveInfo& c = op.collective;
    if (staging_in_.size() < size_t(p)) staging_in_.resize(p), staging_out_.resize(p);
    std::vector<std::span<const float>> inputs(p);
    for (int i = 0; i < p; ++i) {
      const int g = group[i];
      const Op& mine = states_[g].program->ops[states_[g].pc];
      const Mat& x = read(g, mine.inputs.at(0), mine);
      inputs[i] = std::span<const float>(x.data(), size_t(x.size()));
      if (c.op == CollectiveOp::reduce_scatter && c.dim == 1) {   // [T, c] -> p column blocks, each [T, c/p]
        std::vector<float>& flat = staging_in_[i];
        flat.resize(size_t(x.size()));
        const int64_t w = x.cols() / p;
        for (int q = 0; q < p; ++q)
          for (int64_t t = 0; t < x.rows(); ++t)
            std::copy_n(x.data() + t * x.cols() + q * w, w, flat.data() + (q * x.rows() + t) * w);
        inputs[i] = flat;
      } else if (mine.inputs.at(0) == mine.outputs.at(0)) {
        staging_in_[i].assign(x.data(), x.data() + x.size());
        inputs[i] = staging_in_[i];
      }
    }
    size_t n = 0;
    for (const auto& in : inputs) n = std::max(n, in.size());
    const bool gather_columns = c.op == CollectiveOp::all_gather && c.dim == 1;
    std::vector<std::span<float>> outputs(p);
    for (int i = 0; i < p; ++i) {
      const int g = group[i];
      const Op& mine = states_[g].program->ops[states_[g].pc];
      Mat& out = output(g, mine.outputs.at(0), true);
      const size_t length = p == 1 ? n : collective_output_length(c.op, i, n, p);
      if (int64_t(length) != out.size())
        throw std::invalid_argument(fmt::format("rank {}: op {}: {} produced {} elements, tensor {} holds {}", g, mine.name,
                                                to_string(c.op), length, mine.outputs.at(0), out.size()));
      outputs[i] = std::span<float>(out.data(), size_t(out.size()));
      if (gather_columns) {
        staging_out_[i].resize(length);
        outputs[i] = staging_out_[i];
      }
    }
    if (p == 1) {
      std::copy(inputs[0].begin(), inputs[0].end(), outputs[0].begin());
    } else {
      // The instance the selector resolved (the one the timing engine times); a program that was
      // never resolved (a unit test of the numerics alone) runs the algorithm it asked for, or
      // the default one, as a single channel in group order.
      CollectiveInstance instance = c.instance;
      if (!instance.resolved())
        instance.algorithm = c.algorithm == Algorithm::automatic ? default_algorithm(c.op) : c.algorithm;
      std::function<void(Schedule&)> edit;
      if (options_.schedule_hook) edit = [&](Schedule& s) { options_.schedule_hook(op, s); };
      const std::vector<char> written =
          run_collective(c.op, instance, inputs, outputs, scratch_, c.root,
                         options_.dtype == DType::bf16 ? static_cast<float (*)(float)>(&round_bf16) : nullptr, edit);
      for (int i = 0; i < p; ++i)
        if (!written[i])
          throw std::invalid_argument(fmt::format("rank {}: op {}: {} leaves this rank no output", group[i], op.name,
                                                  to_string(c.op)));
      if (options_.on_collective) options_.on_collective(op, instance);
    }
    if (gather_columns)   // p blocks [T, w] side by side
      for (int i = 0; i < p; ++i) {
        const int g = group[i];
        Mat& out = states_[g].store.at(states_[g].program->ops[states_[g].pc].outputs.at(0));
        const int64_t w = out.cols() / p;
        for (int q = 0; q < p; ++q)
          for (int64_t t = 0; t < out.rows(); ++t)
            std::copy_n(staging_out_[i].data() + (q * out.rows() + t) * w, w, out.data() + t * out.cols() + q * w);
      }
    for (int g : group) finish(g, states_[g].program->ops[states_[g].pc]);
  }

  std::string deadlock_message() const {
    std::string msg = "numerics: ranks wait on each other:";
    for (size_t r = 0; r < states_.size(); ++r) {
      const RankState& s = states_[r];
      if (s.pc < s.program->ops.size()) msg += fmt::format(" rank {} at {};", r, s.program->ops[s.pc].name);
    }
    return msg;
  }

  // Freed tensors' buffers, reused for new tensors of the same element count: tensors above
  // glibc's mmap threshold (32 MiB) would otherwise be mapped and page-faulted in afresh each time
  // (a seventh of a 7B layer's verify CPU time went to the kernel). The oldest are dropped past a
  // cap, to bound memory.
  static constexpr int64_t kSpareBytes = int64_t(2) << 30;
  Mat take(int64_t rows, int64_t cols) {
    Mat m;
    for (auto it = spare_.rbegin(); it != spare_.rend(); ++it)
      if (it->size() == rows * cols) {
        m = std::move(*it);
        spare_bytes_ -= int64_t(m.size() * sizeof(float));
        spare_.erase(std::next(it).base());
        break;
      }
    if (m.size() == 0) return large_matrix(rows, cols);
    m.resize(rows, cols);
    return m;
  }
  void give_back(Mat&& m) {
    const int64_t bytes = int64_t(m.size() * sizeof(float));
    if (bytes < (int64_t(1) << 20) || bytes > kSpareBytes) return;
    spare_bytes_ += bytes;
    spare_.push_back(std::move(m));
    while (spare_bytes_ > kSpareBytes) {
      spare_bytes_ -= int64_t(spare_.front().size() * sizeof(float));
      spare_.erase(spare_.begin());
    }
  }

  const ProgramSet& set_;
  const ExecOptions& options_;
  std::vector<RankState> states_;
  int64_t ops_total_ = 0, ops_done_ = 0;
  std::vector<Mat> spare_;   // oldest first
  int64_t spare_bytes_ = 0;
  std::map<std::tuple<int, int, int>, Mat> mailbox_;
  // Reused between collectives (their buffers keep their memory): the interpreter's chunks and
  // the staging copies of column-split layouts.
  CollectiveScratch scratch_;
  std::vector<std::vector<float>> staging_in_, staging_out_;
};

}  // namespace

void execute(const ProgramSet& set, const ExecOptions& options) { Executor(set, options).run(); }

}  // namespace tpsim::numerics
