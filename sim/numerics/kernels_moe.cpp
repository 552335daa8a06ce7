// Mixture-of-experts kernels, llm.c style like kernels.cpp: routing, dispatch of token rows into
// per-expert capacity slots, the gated combine, and the regrouping of slot rows an expert-parallel
// rank does after its all-to-all. Forward and backward side by side, shapes and maths in one line.
// Shapes: r tokens, h features, E experts, k choices per token (top_k), C slots per expert, G
// expert-parallel groups (source ranks), El experts per rank. Expert ids are stored as float values.
//
// Slots (dispatch, combine and their backward alike): walk t = 0..r-1, j = 0..k-1; choice (t, j) of
// expert e = experts[t, j] takes row e C + (how many earlier choices picked e) when that is below C,
// and is dropped otherwise. So a token's slot depends on the tokens before it (capacity dropping,
// as in GShard and Switch); everything else is per row, with fp32 sums in a fixed order.
#include "numerics/kernel_checks.hpp"
#include "numerics/kernels_moe.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

namespace tpsim::numerics {

namespace {

using namespace checks;

bool normalize_attr(const Op& op) {
  const double v = attr(op, "normalize");
  need(op, v == 0 || v == 1, "attribute normalize must be 0 or 1, got " + num(v));
  return v == 1;
}

// The expert ids of experts [r, k] (checked: integers in [0, E)) and the slot of every choice,
// slot[t k + j] = e C + pos, or -1 when the choice is dropped (see the header comment).
struct Slots {
  int64_t k = 0;
  std::vector<int64_t> expert, slot;
};
Slots slots_of(const Op& op, const Mat& experts, int64_t E, int64_t C) {
  Slots s{experts.cols(), std::vector<int64_t>(size_t(experts.size())), std::vector<int64_t>(size_t(experts.size()))};
  need(op, s.k >= 1, "experts has no columns (top_k choices per token)");
  std::vector<int64_t> used(size_t(E), 0);
  for (int64_t t = 0; t < experts.rows(); ++t)
    for (int64_t j = 0; j < s.k; ++j) {
      const float v = experts(t, j);
      if (!(v >= 0 && v < float(E) && v == std::floor(v)))   // (NaN fails too)
        need(op, false,
             "expert id " + num(v) + " at [" + num(double(t)) + ", " + num(double(j)) + "] is not an integer in [0, " +
                 num(double(E)) + ")");
      const int64_t e = int64_t(v), pos = used[size_t(e)]++;
      s.expert[size_t(t * s.k + j)] = e;
      s.slot[size_t(t * s.k + j)] = pos < C ? e * C + pos : -1;
    }
  return s;
}

void need_slot_rows(const Op& op, const Mat& buf, const char* what, int64_t E, int64_t C) {
  need(op, buf.rows() == E * C,
       std::string(what) + " has " + num(double(buf.rows())) + " rows, expected experts * capacity = " +
           num(double(E)) + " * " + num(double(C)) + " = " + num(double(E * C)));
}

// p [E] = softmax(l [E]): max-subtracted, the sum in index order.
void softmax_row(const float* l, int64_t E, float* p) {
  float m = -INFINITY;
  for (int64_t i = 0; i < E; ++i) m = std::max(m, l[i]);
  float sum = 0;
  for (int64_t i = 0; i < E; ++i) sum += (p[i] = std::exp(l[i] - m));
  for (int64_t i = 0; i < E; ++i) p[i] /= sum;
}

// g [k] = p[e_j], divided by sum_j p[e_j] (j in order) when normalizing; dropped choices included.
void gates_row(const float* p, const int64_t* e, int64_t k, bool normalize, float* g) {
  float sum = 0;
  for (int64_t j = 0; j < k; ++j) sum += (g[j] = p[e[j]]);
  if (normalize)
    for (int64_t j = 0; j < k; ++j) g[j] /= sum;
}

// The checks moe_combine and its backward share: ybuf [E C, h], logits [r, E], experts [r, k].
struct CombineShapes {
  int64_t E, C;
  bool normalize;
};
CombineShapes combine_shapes(const Op& op, const Mat& ybuf, const Mat& logits, const Mat& experts) {
  const CombineShapes s{count_attr(op, "experts"), count_attr(op, "capacity"), normalize_attr(op)};
  need_slot_rows(op, ybuf, "ybuf", s.E, s.C);
  need(op, logits.cols() == s.E,
       "logits " + shape(logits) + " must have one column per expert (" + num(double(s.E)) + ")");
  need(op, experts.rows() == logits.rows(),
       "experts " + shape(experts) + " and logits " + shape(logits) + " differ in rows (tokens)");
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// moe_route: logits [r, E] -> experts [r, k] = ids of the k largest logits of each row, largest first, ties to the lower id
void moe_route(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 1, 1);
  const Mat& l = *in[0];
  Mat& experts = *out[0];
  const int64_t k = count_attr(op, "top_k"), E = l.cols();
  need(op, k <= E, "top_k " + num(double(k)) + " exceeds the number of experts (logits columns) " + num(double(E)));
  need(op, experts.rows() == l.rows() && experts.cols() == k,
       "experts " + shape(experts) + " must be [tokens, top_k] = [" + num(double(l.rows())) + ", " + num(double(k)) + "]");
  std::vector<char> taken(static_cast<size_t>(E));
  for (int64_t t = 0; t < l.rows(); ++t) {
    for (int64_t i = 0; i < E; ++i)   // the message is built only on failure: this runs per element
      if (std::isnan(l(t, i))) need(op, false, "logit [" + num(double(t)) + ", " + num(double(i)) + "] is NaN");
    std::fill(taken.begin(), taken.end(), 0);
    for (int64_t j = 0; j < k; ++j) {   // k passes of selection: strictly greater wins, so the lower id keeps a tie
      int64_t best = -1;
      for (int64_t i = 0; i < E; ++i)
        if (!taken[size_t(i)] && (best < 0 || l(t, i) > l(t, best))) best = i;
      taken[size_t(best)] = 1;
      experts(t, j) = float(best);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// moe_dispatch: x [r, h], experts [r, k] -> buf [E C, h]: buf[slot(t, j)] = x[t] for every kept choice, other rows 0
void moe_dispatch(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 2, 1);
  const Mat &x = *in[0], &experts = *in[1];
  Mat& buf = *out[0];
  const int64_t E = count_attr(op, "experts"), C = count_attr(op, "capacity");
  need(op, experts.rows() == x.rows(), "experts " + shape(experts) + " and x " + shape(x) + " differ in rows (tokens)");
  need_slot_rows(op, buf, "buf", E, C);
  need(op, buf.cols() == x.cols(), "buf " + shape(buf) + " and x " + shape(x) + " differ in columns");
  const Slots s = slots_of(op, experts, E, C);
  buf.setZero();
  for (int64_t t = 0; t < x.rows(); ++t)
    for (int64_t j = 0; j < s.k; ++j)
      if (const int64_t slot = s.slot[size_t(t * s.k + j)]; slot >= 0) buf.row(slot) = x.row(t);
}
// moe_dispatch_backward: dbuf [E C, h], experts [r, k] -> dx [r, h] = sum over kept j (j in order) of dbuf[slot(t, j)]
void moe_dispatch_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 2, 1);
  const Mat &dbuf = *in[0], &experts = *in[1];
  Mat& dx = *out[0];
  const int64_t E = count_attr(op, "experts"), C = count_attr(op, "capacity");
  need_slot_rows(op, dbuf, "dbuf", E, C);
  need(op, dx.rows() == experts.rows() && dx.cols() == dbuf.cols(),
       "dx " + shape(dx) + " must be [tokens, dbuf columns] = [" + num(double(experts.rows())) + ", " +
           num(double(dbuf.cols())) + "]");
  const Slots s = slots_of(op, experts, E, C);
  dx.setZero();
  for (int64_t t = 0; t < dx.rows(); ++t)
    for (int64_t j = 0; j < s.k; ++j)
      if (const int64_t slot = s.slot[size_t(t * s.k + j)]; slot >= 0)
        for (int64_t c = 0; c < dx.cols(); ++c) dx(t, c) += dbuf(slot, c);
}

// ---------------------------------------------------------------------------------------------
// moe_combine: ybuf [E C, h], logits [r, E], experts [r, k] -> y [r, h] = sum over kept j of g_j ybuf[slot(t, j)],
// p = softmax(logits[t]), g_j = p[e_j] (/ sum_j' p[e_j'] when normalize = 1, dropped choices counted there)
void moe_combine(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 3, 1);
  const Mat &ybuf = *in[0], &logits = *in[1], &experts = *in[2];
  Mat& y = *out[0];
  const CombineShapes cs = combine_shapes(op, ybuf, logits, experts);
  need(op, y.rows() == logits.rows() && y.cols() == ybuf.cols(),
       "y " + shape(y) + " must be [tokens, ybuf columns] = [" + num(double(logits.rows())) + ", " +
           num(double(ybuf.cols())) + "]");
  const Slots s = slots_of(op, experts, cs.E, cs.C);
  std::vector<float> p(size_t(cs.E)), g(size_t(s.k));
  y.setZero();
  for (int64_t t = 0; t < y.rows(); ++t) {
    softmax_row(&logits(t, 0), cs.E, p.data());
    gates_row(p.data(), &s.expert[size_t(t * s.k)], s.k, cs.normalize, g.data());
    for (int64_t j = 0; j < s.k; ++j)
      if (const int64_t slot = s.slot[size_t(t * s.k + j)]; slot >= 0)
        for (int64_t c = 0; c < y.cols(); ++c) y(t, c) += g[size_t(j)] * ybuf(slot, c);
  }
}
// moe_combine_backward: dy [r, h], ybuf [E C, h], logits [r, E], experts [r, k] -> dybuf [E C, h]: g_j dy[t] at
// slot(t, j), other rows 0; dlogits [r, E] from dg_j = dy[t] . ybuf[slot(t, j)] (0 when dropped):
// normalize 0: dl_i = p_i (sum_{j: e_j = i} dg_j - sum_j p[e_j] dg_j); normalize 1: dl[e_j] += g_j (dg_j - sum_j' g_j' dg_j')
void moe_combine_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 4, 2);
  const Mat &dy = *in[0], &ybuf = *in[1], &logits = *in[2], &experts = *in[3];
  Mat &dybuf = *out[0], &dlogits = *out[1];
  const CombineShapes cs = combine_shapes(op, ybuf, logits, experts);
  need(op, dy.rows() == logits.rows() && dy.cols() == ybuf.cols(),
       "dy " + shape(dy) + " must be [tokens, ybuf columns] = [" + num(double(logits.rows())) + ", " +
           num(double(ybuf.cols())) + "]");
  need(op, dybuf.rows() == ybuf.rows() && dybuf.cols() == ybuf.cols(),
       "dybuf " + shape(dybuf) + " differs from ybuf " + shape(ybuf));
  need(op, dlogits.rows() == logits.rows() && dlogits.cols() == logits.cols(),
       "dlogits " + shape(dlogits) + " differs from logits " + shape(logits));
  const Slots s = slots_of(op, experts, cs.E, cs.C);
  std::vector<float> p(size_t(cs.E)), g(size_t(s.k)), dg(size_t(s.k)), u(size_t(cs.E));
  dybuf.setZero();
  dlogits.setZero();
  for (int64_t t = 0; t < dy.rows(); ++t) {
    const int64_t* e = &s.expert[size_t(t * s.k)];
    softmax_row(&logits(t, 0), cs.E, p.data());
    gates_row(p.data(), e, s.k, cs.normalize, g.data());
    for (int64_t j = 0; j < s.k; ++j) {
      dg[size_t(j)] = 0;
      const int64_t slot = s.slot[size_t(t * s.k + j)];
      if (slot < 0) continue;
      for (int64_t c = 0; c < dy.cols(); ++c) {
        dybuf(slot, c) = g[size_t(j)] * dy(t, c);
        dg[size_t(j)] += dy(t, c) * ybuf(slot, c);
      }
    }
    if (cs.normalize) {   // g = softmax of the k chosen logits
      float gdg = 0;
      for (int64_t j = 0; j < s.k; ++j) gdg += g[size_t(j)] * dg[size_t(j)];
      for (int64_t j = 0; j < s.k; ++j) dlogits(t, e[j]) += g[size_t(j)] * (dg[size_t(j)] - gdg);
    } else {   // softmax backward with dL/dp_i = u_i = sum_{j: e_j = i} dg_j: dl_i = p_i (u_i - sum_i' p_i' u_i')
      std::fill(u.begin(), u.end(), 0.0f);
      float pdg = 0;
      for (int64_t j = 0; j < s.k; ++j) {
        u[size_t(e[j])] += dg[size_t(j)];
        pdg += p[size_t(e[j])] * dg[size_t(j)];
      }
      for (int64_t i = 0; i < cs.E; ++i) dlogits(t, i) = p[size_t(i)] * (u[size_t(i)] - pdg);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Expert parallelism: after the all-to-all a rank holds buf [G El C, h], source-major (blocks [G][El][C rows]).
namespace {
struct ExpertBlocks {
  int64_t G, El, C, h;
};
ExpertBlocks expert_blocks(const Op& op, const Mat& buf, const std::vector<const Mat*>& per_expert) {
  const int64_t G = count_attr(op, "groups"), El = count_attr(op, "local_experts");
  need(op, int64_t(per_expert.size()) == El,
       "has " + num(double(per_expert.size())) + " per-expert tensors, local_experts is " + num(double(El)));
  need(op, buf.rows() % (G * El) == 0,
       "buf " + shape(buf) + ": rows are not a multiple of groups * local_experts = " + num(double(G * El)));
  const ExpertBlocks b{G, El, buf.rows() / (G * El), buf.cols()};
  for (int64_t le = 0; le < El; ++le)
    need(op, per_expert[size_t(le)]->rows() == G * b.C && per_expert[size_t(le)]->cols() == b.h,
         "expert " + num(double(le)) + "'s tensor " + shape(*per_expert[size_t(le)]) + " must be [groups * capacity, h] = [" +
             num(double(G * b.C)) + ", " + num(double(b.h)) + "]");
  return b;
}
}  // namespace

// moe_split_experts: buf [G El C, h] -> El outputs [G C, h]: block g of output le = block (g, le) of buf (its backward: join)
void moe_split_experts(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  need(op, in.size() == 1, "takes 1 input, got " + num(double(in.size())));
  const Mat& buf = *in[0];
  const ExpertBlocks b = expert_blocks(op, buf, std::vector<const Mat*>(out.begin(), out.end()));
  for (int64_t le = 0; le < b.El; ++le)
    for (int64_t g = 0; g < b.G; ++g) out[size_t(le)]->middleRows(g * b.C, b.C) = buf.middleRows((g * b.El + le) * b.C, b.C);
}
// moe_join_experts: El inputs [G C, h] -> buf [G El C, h]: block (g, le) of buf = block g of input le (its backward: split)
void moe_join_experts(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  need(op, out.size() == 1, "writes 1 output, got " + num(double(out.size())));
  Mat& buf = *out[0];
  const ExpertBlocks b = expert_blocks(op, buf, in);
  for (int64_t le = 0; le < b.El; ++le)
    for (int64_t g = 0; g < b.G; ++g) buf.middleRows((g * b.El + le) * b.C, b.C) = in[size_t(le)]->middleRows(g * b.C, b.C);
}

// ---------------------------------------------------------------------------------------------
// The shared expert's gate (Qwen2-MoE): its output scaled per token by sigmoid(x w_gate).
// sigmoid_scale: y [r, h], g [r, 1] -> out = sigmoid(g) * y (row by row)
void sigmoid_scale(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 2, 1);
  const Mat &y = *in[0], &g = *in[1];
  Mat& o = *out[0];
  need(op, g.rows() == y.rows() && g.cols() == 1, "gate " + shape(g) + " must be [rows of y, 1], y is " + shape(y));
  need(op, o.rows() == y.rows() && o.cols() == y.cols(), "output " + shape(o) + " must be y's " + shape(y));
  for (Eigen::Index i = 0; i < y.rows(); ++i) {
    const float s = 1.0f / (1.0f + std::exp(-g(i, 0)));
    for (Eigen::Index j = 0; j < y.cols(); ++j) o(i, j) = s * y(i, j);
  }
}
// sigmoid_scale_backward: y, g, dout -> dy = sigmoid(g) dout, dg = sigmoid(g) (1 - sigmoid(g)) sum_j dout_j y_j
void sigmoid_scale_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 3, 2);
  const Mat &y = *in[0], &g = *in[1], &dout = *in[2];
  Mat &dy = *out[0], &dg = *out[1];
  need(op, g.rows() == y.rows() && g.cols() == 1, "gate " + shape(g) + " must be [rows of y, 1], y is " + shape(y));
  need(op, dout.rows() == y.rows() && dout.cols() == y.cols(), "dout " + shape(dout) + " must be y's " + shape(y));
  need(op, dy.rows() == y.rows() && dy.cols() == y.cols() && dg.rows() == g.rows() && dg.cols() == 1,
       "outputs must be shaped like y and g");
  for (Eigen::Index i = 0; i < y.rows(); ++i) {
    const float s = 1.0f / (1.0f + std::exp(-g(i, 0)));
    float dot = 0;
    for (Eigen::Index j = 0; j < y.cols(); ++j) {
      dy(i, j) = s * dout(i, j);
      dot += dout(i, j) * y(i, j);
    }
    dg(i, 0) = s * (1.0f - s) * dot;
  }
}

}  // namespace tpsim::numerics
