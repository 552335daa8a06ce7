// Context-parallel attention kernels, llm.c style like kernels.cpp: ring attention, where each rank
// holds a part of every sequence, attends its queries to one rank's keys and values at a time (a
// "block") and merges the blocks by their log-sum-exp. Forward and backward side by side, shapes
// and maths in one line. Shapes: H query heads, K kv heads (query head h uses kv head h / (H/K)),
// d head width, B sequences of S tokens, cp ranks, T = B S / cp rows on each rank, L = S / cp.
//
// Causal load balancing (Megatron-LM's get_batch_on_this_cp_rank): a sequence is cut into 2 cp
// chunks of c = S / (2 cp) tokens and rank i holds chunks i and 2 cp - 1 - i, so every rank has the
// same share of the causal work. Local row t is sequence b = t / L at position
// pos = chunk c + r % c, r = t % L, chunk = r < c ? i : 2 cp - 1 - i (cp = 1: pos = r). A query
// may attend a key of the same sequence with pos_k <= pos_q.
//
// A block computes the dense [L, L] scores of a sequence on the numerics GEMM (one FMA chain over d
// per score, as `attention` does) and masks them; the other sums are plain fp32 loops in a fixed
// order, and the backward's dK, dV sum over a kv head's query heads in order.
#include "numerics/kernel_checks.hpp"
#include "numerics/kernels_cp.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "numerics/gemm.hpp"
#include "numerics/memory.hpp"
#include "numerics/parallel.hpp"

namespace tpsim::numerics {

namespace {

using namespace checks;

void need_shape(const Op& op, const Mat& m, const std::string& what, int64_t rows, int64_t cols, const std::string& rule) {
  need(op, m.rows() == rows && m.cols() == cols,
       what + " " + shape(m) + " must be " + rule + " = [" + num(double(rows)) + ", " + num(double(cols)) + "]");
}

// q_rank / kv_rank: an integer in [0, cp), required when cp > 1 (0 when cp = 1 and absent).
int64_t rank_attr(const Op& op, const char* key, int64_t cp) {
  const auto it = op.kernel.attrs.find(key);
  need(op, it != op.kernel.attrs.end() || cp == 1, std::string("attribute ") + key + " is required when cp > 1");
  const double v = it == op.kernel.attrs.end() ? 0 : it->second;
  need(op, v >= 0 && v < double(cp) && v == std::floor(v),
       std::string("attribute ") + key + " must be an integer in [0, cp) = [0, " + num(double(cp)) + "), got " + num(v));
  return int64_t(v);
}

struct HeadCols {
  int64_t H, K, d;
};
HeadCols head_cols(const Op& op) {
  const HeadCols h{count_attr(op, "heads"), count_attr(op, "kv_heads"), count_attr(op, "head_dim")};
  need(op, h.H % h.K == 0, "heads " + num(double(h.H)) + " is not a multiple of kv_heads " + num(double(h.K)));
  return h;
}
const char* kQkvRule = "[rows, (heads + 2 kv_heads) * head_dim]";

// Sequence position of local row r (of L) on rank `rank`; see the header comment.
int64_t position(int64_t r, int64_t rank, int64_t cp, int64_t c) {
  if (cp == 1) return r;
  return (r < c ? rank : 2 * cp - 1 - rank) * c + r % c;
}

// One block's shapes and causal layout: pos_q[r], pos_k[r] are the positions of local row r on
// q_rank and on kv_rank (the same for every sequence).
struct Block {
  HeadCols h;
  int64_t B, S, cp, L, T;
  float scale;
  std::vector<int64_t> pos_q, pos_k;
  bool allowed(int64_t rq, int64_t rk) const { return pos_k[size_t(rk)] <= pos_q[size_t(rq)]; }
};
Block block_of(const Op& op, const Mat& qkv, const Mat& kv) {
  Block k{head_cols(op), count_attr(op, "batch", 1), count_attr(op, "seq"), count_attr(op, "cp", 1), 0, 0, 0, {}, {}};
  need(op, k.cp == 1 || k.S % (2 * k.cp) == 0,
       "seq " + num(double(k.S)) + " is not divisible by 2 cp = " + num(double(2 * k.cp)) +
           " (the load-balanced chunks)");
  const int64_t q_rank = rank_attr(op, "q_rank", k.cp), kv_rank = rank_attr(op, "kv_rank", k.cp);
  k.L = k.S / k.cp;
  k.T = k.B * k.L;
  k.scale = 1.0f / std::sqrt(float(k.h.d));
  need_shape(op, qkv, "qkv", k.T, (k.h.H + 2 * k.h.K) * k.h.d,
             "[batch * seq / cp, (heads + 2 kv_heads) * head_dim]");
  need_shape(op, kv, "kv", k.T, 2 * k.h.K * k.h.d, "[batch * seq / cp, 2 kv_heads * head_dim]");
  const int64_t c = k.S / (2 * k.cp);
  for (int64_t r = 0; r < k.L; ++r) {
    k.pos_q.push_back(position(r, q_rank, k.cp, c));
    k.pos_k.push_back(position(r, kv_rank, k.cp, c));
  }
  return k;
}

// An [L, L] work matrix per thread, kept between calls.
Mat& scratch(int which, int64_t L) {
  thread_local Mat m[2];
  if (m[which].rows() != L || m[which].cols() != L) m[which] = large_matrix(L, L);
  return m[which];
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// attention_kv: qkv [T, (H+2K)d] -> kv [T, 2Kd] = qkv[:, H d:] (k heads, then v heads: what a rank passes round the ring)
void attention_kv(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 1, 1);
  const Mat& qkv = *in[0];
  Mat& kv = *out[0];
  const HeadCols h = head_cols(op);
  need_shape(op, qkv, "qkv", qkv.rows(), (h.H + 2 * h.K) * h.d, kQkvRule);
  need_shape(op, kv, "kv", qkv.rows(), 2 * h.K * h.d, "[qkv rows, 2 kv_heads * head_dim]");
  kv = qkv.rightCols(2 * h.K * h.d);
}
// attention_kv_backward: dq [T, H d], dkv [T, 2Kd] -> dqkv [T, (H+2K)d] = [dq | dkv]
void attention_kv_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 2, 1);
  const Mat &dq = *in[0], &dkv = *in[1];
  Mat& dqkv = *out[0];
  const HeadCols h = head_cols(op);
  need_shape(op, dq, "dq", dq.rows(), h.H * h.d, "[rows, heads * head_dim]");
  need_shape(op, dkv, "dkv", dq.rows(), 2 * h.K * h.d, "[dq rows, 2 kv_heads * head_dim]");
  need_shape(op, dqkv, "dqkv", dq.rows(), (h.H + 2 * h.K) * h.d, "[dq rows, (heads + 2 kv_heads) * head_dim]");
  dqkv.leftCols(h.H * h.d) = dq;
  dqkv.rightCols(2 * h.K * h.d) = dkv;
}

// ---------------------------------------------------------------------------------------------
// attention_block: qkv [T, (H+2K)d] (q_rank's queries), kv [T, 2Kd] (kv_rank's keys, values) -> out [T, H d], lse [T, H]:
// out_h = P V_g, P = softmax of s = q_h k_g / sqrt(d) over the allowed keys, lse = log sum_allowed exp s; none allowed: 0, -inf
void attention_block(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 2, 2);
  const Mat &qkv = *in[0], &kv = *in[1];
  Mat &o = *out[0], &lse = *out[1];
  const Block k = block_of(op, qkv, kv);
  const int64_t H = k.h.H, K = k.h.K, d = k.h.d, L = k.L, ldq = qkv.cols(), ldkv = kv.cols(), ldo = o.cols();
  need_shape(op, o, "out", k.T, H * d, "[batch * seq / cp, heads * head_dim]");
  need_shape(op, lse, "lse", k.T, H, "[batch * seq / cp, heads]");
  parallel_for(k.B * H, [&](int64_t begin, int64_t end) {
    Mat& P = scratch(0, L);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, head = bh % H, g = head / (H / K);
      const float *Q = qkv.data() + b * L * ldq + head * d, *Kh = kv.data() + b * L * ldkv + g * d,
                  *V = kv.data() + b * L * ldkv + (K + g) * d;
      gemm(GemmInfo{L, L, d, false, true, false}, Q, ldq, Kh, ldkv, P.data(), L);   // P = Q K^T, then softmax in place
      for (int64_t t = 0; t < L; ++t) {
        float* p = P.data() + t * L;
        bool any = false;
        float m = -INFINITY;
        for (int64_t j = 0; j < L; ++j)
          if (k.allowed(t, j)) any = true, m = std::max(m, p[j] * k.scale);
        float l = 0;
        for (int64_t j = 0; j < L; ++j)
          if (any && k.allowed(t, j)) l += (p[j] = std::exp(p[j] * k.scale - m));
          else p[j] = 0;
        if (any)
          for (int64_t j = 0; j < L; ++j) p[j] /= l;
        lse(b * L + t, head) = any ? m + std::log(l) : -INFINITY;
      }
      gemm(GemmInfo{L, d, L, false, false, false}, P.data(), L, V, ldkv, o.data() + b * L * ldo + head * d, ldo);   // O = P V
    }
  }, 1, 4.0 * double(k.B * L * L * H * d));
}
// attention_block_backward: qkv, kv, out [T, H d] and lse [T, H] (merged over all blocks), dout [T, H d] -> this block's
// dq [T, H d], dkv [T, 2Kd]: P = exp(s - lse) on allowed pairs, D = rowsum(dO O), dS = P (dO V^T - D) / sqrt(d),
// dQ = dS K_g, dK_g = sum_h dS^T Q, dV_g = sum_h P^T dO (h over the query heads of kv head g, in order)
void attention_block_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 5, 2);
  const Mat &qkv = *in[0], &kv = *in[1], &o = *in[2], &lse = *in[3], &dout = *in[4];
  Mat &dq = *out[0], &dkv = *out[1];
  const Block k = block_of(op, qkv, kv);
  const int64_t H = k.h.H, K = k.h.K, d = k.h.d, L = k.L, group = H / K, ldq = qkv.cols(), ldkv = kv.cols(),
                ldo = o.cols();
  need_shape(op, o, "out", k.T, H * d, "[batch * seq / cp, heads * head_dim]");
  need_shape(op, lse, "lse", k.T, H, "[batch * seq / cp, heads]");
  need_shape(op, dout, "dout", k.T, H * d, "[batch * seq / cp, heads * head_dim]");
  need_shape(op, dq, "dq", k.T, H * d, "[batch * seq / cp, heads * head_dim]");
  need_shape(op, dkv, "dkv", k.T, 2 * K * d, "[batch * seq / cp, 2 kv_heads * head_dim]");
  dkv.setZero();
  // One task per (sequence, kv head): its query heads in order, so dK and dV sum in a fixed order.
  parallel_for(k.B * K, [&](int64_t begin, int64_t end) {
    Mat &P = scratch(0, L), &dS = scratch(1, L);
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / K, g = bg % K, row0 = b * L;
      const float *Kh = kv.data() + row0 * ldkv + g * d, *V = kv.data() + row0 * ldkv + (K + g) * d;
      float *dK = dkv.data() + row0 * ldkv + g * d, *dV = dkv.data() + row0 * ldkv + (K + g) * d;
      for (int64_t head = g * group; head < (g + 1) * group; ++head) {
        const float *Q = qkv.data() + row0 * ldq + head * d, *O = o.data() + row0 * ldo + head * d,
                    *dO = dout.data() + row0 * ldo + head * d;
        gemm(GemmInfo{L, L, d, false, true, false}, Q, ldq, Kh, ldkv, P.data(), L);    // S = Q K^T
        gemm(GemmInfo{L, L, d, false, true, false}, dO, ldo, V, ldkv, dS.data(), L);   // dP = dO V^T
        for (int64_t t = 0; t < L; ++t) {
          const float l = lse(row0 + t, head);
          float D = 0;
          for (int64_t j = 0; j < d; ++j) D += dO[t * ldo + j] * O[t * ldo + j];
          float *p = P.data() + t * L, *ds = dS.data() + t * L;
          for (int64_t j = 0; j < L; ++j) {
            const bool on = k.allowed(t, j) && l != -INFINITY;
            p[j] = on ? std::exp(p[j] * k.scale - l) : 0.0f;
            ds[j] = on ? p[j] * (ds[j] - D) * k.scale : 0.0f;
          }
        }
        gemm(GemmInfo{L, d, L, false, false, false}, dS.data(), L, Kh, ldkv, dq.data() + row0 * ldo + head * d, ldo);  // dQ
        gemm(GemmInfo{L, d, L, true, false, true}, P.data(), L, dO, ldo, dV, ldkv);    // dV += P^T dO
        gemm(GemmInfo{L, d, L, true, false, true}, dS.data(), L, Q, ldq, dK, ldkv);    // dK += dS^T Q
      }
    }
  }, 1, 10.0 * double(k.B * L * L * H * d));
}

// ---------------------------------------------------------------------------------------------
// attention_merge: out_a [T, H d], lse_a [T, H], out_b, lse_b -> out, lse: lse = log(e^lse_a + e^lse_b)
// = hi + log1p(e^(lo - hi)), out = e^(lse_a - lse) out_a + e^(lse_b - lse) out_b per head; both -inf: out 0,
// lse -inf (out may be out_a and lse lse_a: merged in place)
void attention_merge(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  arity(op, in, out, 4, 2);
  const Mat &oa = *in[0], &la = *in[1], &ob = *in[2], &lb = *in[3];
  Mat &o = *out[0], &l = *out[1];
  const int64_t T = la.rows(), H = la.cols();
  need(op, H >= 1 && oa.cols() % H == 0,
       "out_a " + shape(oa) + ": columns are not a multiple of lse_a's " + shape(la) + " (heads)");
  const std::string rule = "[rows of lse_a, heads * head_dim]";
  need_shape(op, oa, "out_a", T, oa.cols(), rule);
  need_shape(op, ob, "out_b", T, oa.cols(), rule);
  need_shape(op, o, "out", T, oa.cols(), rule);
  need_shape(op, lb, "lse_b", T, H, "[rows, heads] like lse_a");
  need_shape(op, l, "lse", T, H, "[rows, heads] like lse_a");
  const int64_t d = oa.cols() / H;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const float a = la(t, h), b = lb(t, h), hi = std::max(a, b), lo = std::min(a, b);
      if (hi == -INFINITY) {
        for (int64_t j = h * d; j < (h + 1) * d; ++j) o(t, j) = 0;
        l(t, h) = -INFINITY;
        continue;
      }
      const float m = hi + std::log1p(std::exp(lo - hi)), wa = std::exp(a - m), wb = std::exp(b - m);
      for (int64_t j = h * d; j < (h + 1) * d; ++j) o(t, j) = wa * oa(t, j) + wb * ob(t, j);
      l(t, h) = m;
    }
}

}  // namespace tpsim::numerics
