// Kernels, llm.c style: forward and backward side by side, shapes and maths in one line each.
// Shapes: r rows (tokens), c columns (features), T tokens = B sequences x s, d head width.
// Reductions are plain loops in a fixed order (fp32 accumulation) and elementwise maths calls the
// scalar libm functions, so a row or an element computes the same bits whichever shard holds it.
#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

#include "numerics/gemm.hpp"
#include "numerics/kernel_checks.hpp"
#include "numerics/kernels.hpp"
#include "numerics/kernels_cp.hpp"
#include "numerics/kernels_moe.hpp"
#include "numerics/memory.hpp"
#include "numerics/parallel.hpp"

namespace tpsim::numerics {

namespace {

using checks::attr;
using checks::need;

bool accumulates(const Op& op) { return attr(op, "accumulate") != 0; }

void same_shape(const Op& op, const Mat& a, const Mat& b) {
  need(op, a.rows() == b.rows() && a.cols() == b.cols(),
       "shapes differ: [" + std::to_string(a.rows()) + ", " + std::to_string(a.cols()) + "] vs [" +
           std::to_string(b.rows()) + ", " + std::to_string(b.cols()) + "]");
}

// ---------------------------------------------------------------------------------------------
// add: a, b [r, c] -> y = a + b
void add(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  same_shape(op, *in[0], *in[1]);
  same_shape(op, *in[0], *out[0]);
  const float *a = in[0]->data(), *b = in[1]->data();
  float* y = out[0]->data();
  for (Eigen::Index i = 0; i < out[0]->size(); ++i) y[i] = a[i] + b[i];
}

// slice: x [r, c] -> part `part` of `parts` equal blocks along `dim` (the forward split / the
// backward of a gather)
void slice(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const int dim = int(attr(op, "dim")), parts = int(attr(op, "parts", 1)), part = int(attr(op, "part"));
  const Mat& x = *in[0];
  Mat& y = *out[0];
  if (dim == 0) {
    need(op, x.rows() == y.rows() * parts && x.cols() == y.cols(), "slice rows do not fit");
    y = x.middleRows(part * y.rows(), y.rows());
  } else {
    need(op, x.cols() == y.cols() * parts && x.rows() == y.rows(), "slice columns do not fit");
    y = x.middleCols(part * y.cols(), y.cols());
  }
}

// ---------------------------------------------------------------------------------------------
// layernorm: x [r, c], w, b [1, c] -> y = (x - mean) / sqrt(var + eps) * w + b   (per row)
void layernorm(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &x = *in[0], &w = *in[1], &b = *in[2];
  Mat& y = *out[0];
  need(op, w.cols() == x.cols() && b.cols() == x.cols(), "weight width differs from the input's");
  const float eps = float(attr(op, "eps", 1e-5));
  const int64_t c = x.cols();
  for (int64_t i = 0; i < x.rows(); ++i) {
    float mean = 0, var = 0;
    for (int64_t j = 0; j < c; ++j) mean += x(i, j);
    mean /= float(c);
    for (int64_t j = 0; j < c; ++j) var += (x(i, j) - mean) * (x(i, j) - mean);
    const float rstd = 1.0f / std::sqrt(var / float(c) + eps);
    for (int64_t j = 0; j < c; ++j) y(i, j) = (x(i, j) - mean) * rstd * w(0, j) + b(0, j);
  }
}
// layernorm_backward: x, dy [r, c], w [1, c] -> dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w;
// dw (+)= sum_rows dy xhat, db (+)= sum_rows dy
void layernorm_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &x = *in[0], &w = *in[1], &dy = *in[2];
  Mat &dx = *out[0], &dw = *out[1], &db = *out[2];
  same_shape(op, x, dy);
  const float eps = float(attr(op, "eps", 1e-5));
  if (!accumulates(op)) dw.setZero(), db.setZero();
  const int64_t c = x.cols();
  std::vector<float> xhat(c), g(c);
  for (int64_t i = 0; i < x.rows(); ++i) {
    float mean = 0, var = 0;
    for (int64_t j = 0; j < c; ++j) mean += x(i, j);
    mean /= float(c);
    for (int64_t j = 0; j < c; ++j) var += (x(i, j) - mean) * (x(i, j) - mean);
    const float rstd = 1.0f / std::sqrt(var / float(c) + eps);
    float g_mean = 0, gx_mean = 0;
    for (int64_t j = 0; j < c; ++j) {
      xhat[j] = (x(i, j) - mean) * rstd;
      g[j] = dy(i, j) * w(0, j);
      g_mean += g[j];
      gx_mean += g[j] * xhat[j];
      dw(0, j) += dy(i, j) * xhat[j];
      db(0, j) += dy(i, j);
    }
    g_mean /= float(c);
    gx_mean /= float(c);
    for (int64_t j = 0; j < c; ++j) dx(i, j) = rstd * (g[j] - g_mean - xhat[j] * gx_mean);
  }
}

// rmsnorm: x [r, c], w [1, c] -> y = x / sqrt(mean(x^2) + eps) * w   (per row)
void rmsnorm(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &x = *in[0], &w = *in[1];
  Mat& y = *out[0];
  need(op, w.cols() == x.cols(), "weight width differs from the input's");
  const float eps = float(attr(op, "eps", 1e-5));
  for (int64_t i = 0; i < x.rows(); ++i) {
    float ms = 0;
    for (int64_t j = 0; j < x.cols(); ++j) ms += x(i, j) * x(i, j);
    const float rrms = 1.0f / std::sqrt(ms / float(x.cols()) + eps);
    for (int64_t j = 0; j < x.cols(); ++j) y(i, j) = x(i, j) * rrms * w(0, j);
  }
}
// rmsnorm_backward: x, dy [r, c], w [1, c] -> dx = rrms (g - xhat mean(g xhat)), g = dy w; dw (+)= sum_rows dy xhat
void rmsnorm_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &x = *in[0], &w = *in[1], &dy = *in[2];
  Mat &dx = *out[0], &dw = *out[1];
  same_shape(op, x, dy);
  const float eps = float(attr(op, "eps", 1e-5));
  if (!accumulates(op)) dw.setZero();
  const int64_t c = x.cols();
  for (int64_t i = 0; i < x.rows(); ++i) {
    float ms = 0;
    for (int64_t j = 0; j < c; ++j) ms += x(i, j) * x(i, j);
    const float rrms = 1.0f / std::sqrt(ms / float(c) + eps);
    float gx_mean = 0;
    for (int64_t j = 0; j < c; ++j) {
      const float xhat = x(i, j) * rrms;
      gx_mean += dy(i, j) * w(0, j) * xhat;
      dw(0, j) += dy(i, j) * xhat;
    }
    gx_mean /= float(c);
    for (int64_t j = 0; j < c; ++j) dx(i, j) = rrms * (dy(i, j) * w(0, j) - x(i, j) * rrms * gx_mean);
  }
}

// ---------------------------------------------------------------------------------------------
// gelu (tanh form): a [r, c] -> y = a/2 (1 + tanh(k (a + 0.044715 a^3))), k = sqrt(2/pi)
constexpr float kGeluK = 0.7978845608028654f;
void gelu(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  same_shape(op, *in[0], *out[0]);
  const float* a = in[0]->data();
  float* y = out[0]->data();
  for (Eigen::Index i = 0; i < out[0]->size(); ++i)
    y[i] = 0.5f * a[i] * (1.0f + std::tanh(kGeluK * (a[i] + 0.044715f * a[i] * a[i] * a[i])));
}
// gelu_backward: a, dy [r, c] -> da = dy (1/2 (1 + t) + a/2 (1 - t^2) k (1 + 3 0.044715 a^2))
void gelu_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  same_shape(op, *in[0], *in[1]);
  const float *a = in[0]->data(), *dy = in[1]->data();
  float* da = out[0]->data();
  for (Eigen::Index i = 0; i < out[0]->size(); ++i) {
    const float x = a[i], t = std::tanh(kGeluK * (x + 0.044715f * x * x * x));
    da[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluK * (1.0f + 3.0f * 0.044715f * x * x));
  }
}

// swiglu: a (up), g (gate) [r, c] -> y = a silu(g), silu(g) = g sigmoid(g)
void swiglu(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  same_shape(op, *in[0], *in[1]);
  const float *a = in[0]->data(), *g = in[1]->data();
  float* y = out[0]->data();
  for (Eigen::Index i = 0; i < out[0]->size(); ++i) y[i] = a[i] * g[i] / (1.0f + std::exp(-g[i]));
}
// swiglu_backward: a, g, dy [r, c] -> da = dy silu(g), dg = dy a sig(g) (1 + g (1 - sig(g)))
void swiglu_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  same_shape(op, *in[0], *in[2]);
  const float *a = in[0]->data(), *g = in[1]->data(), *dy = in[2]->data();
  float *da = out[0]->data(), *dg = out[1]->data();
  for (Eigen::Index i = 0; i < out[0]->size(); ++i) {
    const float sig = 1.0f / (1.0f + std::exp(-g[i]));
    da[i] = dy[i] * g[i] * sig;
    dg[i] = dy[i] * a[i] * sig * (1.0f + g[i] * (1.0f - sig));
  }
}

// ---------------------------------------------------------------------------------------------
// Attention over local heads. qkv [T, (H + 2K) d] = [q heads | k heads | v heads], T = B s.
struct Heads {
  int64_t H, K, d, s, B;
  float scale;
};
Heads heads_of(const Op& op, const Mat& qkv) {
  Heads h{int64_t(attr(op, "heads")), int64_t(attr(op, "kv_heads")), int64_t(attr(op, "head_dim")),
          int64_t(attr(op, "seq")), int64_t(attr(op, "batch", 1)), 0};
  need(op, h.H > 0 && h.K > 0 && h.H % h.K == 0 && h.d > 0, "bad head attributes");
  need(op, qkv.cols() == (h.H + 2 * h.K) * h.d,
       "qkv has " + std::to_string(qkv.cols()) + " columns, expected (heads + 2 kv_heads) * head_dim = " +
           std::to_string((h.H + 2 * h.K) * h.d));
  need(op, qkv.rows() == h.B * h.s, "qkv rows differ from batch * seq");
  h.scale = 1.0f / std::sqrt(float(h.d));
  return h;
}

// The causal products run on the numerics GEMM in row blocks of kCausalBlock queries: block
// [r0, r1) needs keys [0, r1) only, so the work above the diagonal is skipped but for the block
// corners (~53% of the dense products at s = 2048). An element's value depends on the block edges
// only through exact zeros (P = 0 above the diagonal), and every shard uses the same edges.
constexpr int64_t kCausalBlock = 128;

// An [s, s] work matrix per thread, kept between calls (a 16 MiB matrix per head would otherwise
// be page-faulted in afresh).
Mat& square_scratch(int which, int64_t s) {
  thread_local Mat scratch[2];
  Mat& m = scratch[which];
  if (m.rows() != s || m.cols() != s) m = large_matrix(s, s);
  return m;
}

// A head's [s, d] block of a [T, c] matrix: rows of sequence b, columns [col, col + d).
const float* head_block(const Mat& x, const Heads& h, int64_t b, int64_t col) { return x.data() + b * h.s * x.cols() + col; }
float* head_block(Mat& x, const Heads& h, int64_t b, int64_t col) { return x.data() + b * h.s * x.cols() + col; }

// P [s, s] = causal softmax(scale Q K^T) for one sequence and head, filled on and below the
// diagonal and zero above it within each row block (beyond the block it is never read).
void causal_probabilities(const Heads& h, const Mat& qkv, int64_t b, int64_t head, Mat& P) {
  const int64_t g = head / (h.H / h.K), ld = qkv.cols();
  const float *Q = head_block(qkv, h, b, head * h.d), *K = head_block(qkv, h, b, (h.H + g) * h.d);
  for (int64_t r0 = 0; r0 < h.s; r0 += kCausalBlock) {
    const int64_t r1 = std::min(h.s, r0 + kCausalBlock);
    // S[r0:r1, 0:r1] = Q[r0:r1] K[0:r1]^T
    gemm(GemmInfo{r1 - r0, r1, h.d, false, true, false}, Q + r0 * ld, ld, K, ld, P.data() + r0 * h.s, h.s);
    for (int64_t t = r0; t < r1; ++t) {
      float* S = P.data() + t * h.s;
      float m = -INFINITY;
      for (int64_t j = 0; j <= t; ++j) m = std::max(m, S[j] * h.scale);
      float l = 0;
      for (int64_t j = 0; j <= t; ++j) l += (S[j] = std::exp(S[j] * h.scale - m));
      for (int64_t j = 0; j <= t; ++j) S[j] /= l;
      for (int64_t j = t + 1; j < r1; ++j) S[j] = 0;
    }
  }
}

// attention: qkv [T, (H+2K)d] -> out [T, H d], out_h = P_h V_g, P_h = causal softmax(q_h k_g^T / sqrt(d)), g = h / (H/K)
void attention(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat& qkv = *in[0];
  const Heads h = heads_of(op, qkv);
  Mat& o = *out[0];
  need(op, o.cols() == h.H * h.d && o.rows() == qkv.rows(), "output shape");
  const int64_t ld = qkv.cols();
  parallel_for(h.B * h.H, [&](int64_t begin, int64_t end) {
    Mat& P = square_scratch(0, h.s);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / h.H, head = bh % h.H, g = head / (h.H / h.K);
      causal_probabilities(h, qkv, b, head, P);
      const float* V = head_block(qkv, h, b, (h.H + h.K + g) * h.d);
      float* O = head_block(o, h, b, head * h.d);
      for (int64_t r0 = 0; r0 < h.s; r0 += kCausalBlock) {   // O[r0:r1] = P[r0:r1, 0:r1] V[0:r1]
        const int64_t r1 = std::min(h.s, r0 + kCausalBlock);
        gemm(GemmInfo{r1 - r0, h.d, r1, false, false, false}, P.data() + r0 * h.s, h.s, V, ld, O + r0 * o.cols(), o.cols());
      }
    }
  }, 1, 4.0 * h.B * h.s * h.s * h.H * h.d);
}
// attention_backward: qkv [T, (H+2K)d], dout [T, H d] -> dqkv: dV_g += P^T dO, dP = dO V^T,
// dS = P (dP - rowsum(P dP)) / sqrt(d), dQ = dS K_g, dK_g += dS^T Q   (P recomputed)
void attention_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &qkv = *in[0], &dout = *in[1];
  const Heads h = heads_of(op, qkv);
  Mat& dqkv = *out[0];
  need(op, dout.cols() == h.H * h.d && dqkv.cols() == qkv.cols() && dqkv.rows() == qkv.rows() &&
               dout.rows() == qkv.rows(), "gradient shapes");
  dqkv.setZero();
  const int64_t group = h.H / h.K, ld = qkv.cols(), ldo = dout.cols(), s = h.s, R = kCausalBlock;
  // One task per (sequence, kv head): its query heads in order, so dK and dV sum in a fixed order.
  parallel_for(h.B * h.K, [&](int64_t begin, int64_t end) {
    Mat &P = square_scratch(0, s), &dS = square_scratch(1, s);
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / h.K, g = bg % h.K;
      const float *K = head_block(qkv, h, b, (h.H + g) * h.d), *V = head_block(qkv, h, b, (h.H + h.K + g) * h.d);
      float *dK = head_block(dqkv, h, b, (h.H + g) * h.d), *dV = head_block(dqkv, h, b, (h.H + h.K + g) * h.d);
      for (int64_t head = g * group; head < (g + 1) * group; ++head) {
        causal_probabilities(h, qkv, b, head, P);
        const float *dO = head_block(dout, h, b, head * h.d), *Q = head_block(qkv, h, b, head * h.d);
        float* dQ = head_block(dqkv, h, b, head * h.d);
        for (int64_t r0 = 0; r0 < s; r0 += R) {
          const int64_t r1 = std::min(s, r0 + R);
          // dP[r0:r1, 0:r1] = dO[r0:r1] V[0:r1]^T, then dS in place
          gemm(GemmInfo{r1 - r0, r1, h.d, false, true, false}, dO + r0 * ldo, ldo, V, ld, dS.data() + r0 * s, s);
          for (int64_t t = r0; t < r1; ++t) {
            const float* p = P.data() + t * s;
            float* ds = dS.data() + t * s;
            float D = 0;
            for (int64_t j = 0; j <= t; ++j) D += p[j] * ds[j];
            for (int64_t j = 0; j < r1; ++j) ds[j] = j <= t ? p[j] * (ds[j] - D) * h.scale : 0.0f;
          }
          // dQ[r0:r1] = dS[r0:r1, 0:r1] K[0:r1]
          gemm(GemmInfo{r1 - r0, h.d, r1, false, false, false}, dS.data() + r0 * s, s, K, ld, dQ + r0 * ld, ld);
        }
        // Key block [c0, c1) is seen by queries [c0, s): dV[c0:c1] += P[c0:s, c0:c1]^T dO[c0:s],
        // dK[c0:c1] += dS[c0:s, c0:c1]^T Q[c0:s]
        for (int64_t c0 = 0; c0 < s; c0 += R) {
          const int64_t c1 = std::min(s, c0 + R);
          const GemmInfo acc{c1 - c0, h.d, s - c0, true, false, true};
          gemm(acc, P.data() + c0 * s + c0, s, dO + c0 * ldo, ldo, dV + c0 * ld, ld);
          gemm(acc, dS.data() + c0 * s + c0, s, Q + c0 * ld, ld, dK + c0 * ld, ld);
        }
      }
    }
  }, 1, 10.0 * h.B * h.s * h.s * h.H * h.d);
}

// ---------------------------------------------------------------------------------------------
// embedding: ids [T, 1], table [V_local, c] -> y[t] = table[id_t - vocab_start] (0 when another rank holds id_t)
void embedding(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &ids = *in[0], &table = *in[1];
  Mat& y = *out[0];
  need(op, y.rows() == ids.rows() && y.cols() == table.cols(), "output shape");
  const int64_t start = int64_t(attr(op, "vocab_start"));
  for (int64_t t = 0; t < ids.rows(); ++t) {
    const int64_t row = int64_t(ids(t, 0)) - start;
    if (row >= 0 && row < table.rows()) y.row(t) = table.row(row);
    else y.row(t).setZero();
  }
}
// embedding_backward: ids [T, 1], dy [T, c] -> dtable [V_local, c] (+)= scatter-add of dy rows, in token order
void embedding_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &ids = *in[0], &dy = *in[1];
  Mat& dtable = *out[0];
  need(op, dy.cols() == dtable.cols(), "gradient width");
  if (!accumulates(op)) dtable.setZero();
  const int64_t start = int64_t(attr(op, "vocab_start"));
  for (int64_t t = 0; t < ids.rows(); ++t) {
    const int64_t row = int64_t(ids(t, 0)) - start;
    if (row >= 0 && row < dtable.rows()) dtable.row(row) += dy.row(t);
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy pieces (vocab-parallel: the [T, 1] statistics are reduced over the group between them)
// row_max: x [T, c] -> m [T, 1] = max_j x_tj
void row_max(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat& x = *in[0];
  need(op, out[0]->rows() == x.rows(), "rows");
  for (int64_t t = 0; t < x.rows(); ++t) {
    float m = -INFINITY;
    for (int64_t j = 0; j < x.cols(); ++j) m = std::max(m, x(t, j));
    (*out[0])(t, 0) = m;
  }
}
// sum_exp: l [T, V_local], m [T, 1] -> s [T, 1] = sum_j exp(l_tj - m_t)
void sum_exp(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &l = *in[0], &m = *in[1];
  need(op, m.rows() == l.rows(), "rows");
  for (int64_t t = 0; t < l.rows(); ++t) {
    float s = 0;
    for (int64_t j = 0; j < l.cols(); ++j) s += std::exp(l(t, j) - m(t, 0));
    (*out[0])(t, 0) = s;
  }
}
// target_logit: l [T, V_local], targets [T, 1] -> z [T, 1] = l[t, target_t - vocab_start] (0 off-shard)
void target_logit(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &l = *in[0], &targets = *in[1];
  const int64_t start = int64_t(attr(op, "vocab_start"));
  for (int64_t t = 0; t < l.rows(); ++t) {
    const int64_t j = int64_t(targets(t, 0)) - start;
    (*out[0])(t, 0) = j >= 0 && j < l.cols() ? l(t, j) : 0.0f;
  }
}
// cross_entropy: m, s, z [T, 1] -> loss [T, 1] = log s + m - z
void cross_entropy(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &m = *in[0], &s = *in[1], &z = *in[2];
  need(op, s.rows() == m.rows() && z.rows() == m.rows(), "rows");
  for (int64_t t = 0; t < m.rows(); ++t) (*out[0])(t, 0) = std::log(s(t, 0)) + m(t, 0) - z(t, 0);
}
// cross_entropy_backward: l [T, V_local], m, s, targets [T, 1] -> dl = scale (exp(l - m) / s - onehot(target))
void cross_entropy_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out) {
  const Mat &l = *in[0], &m = *in[1], &s = *in[2], &targets = *in[3];
  Mat& dl = *out[0];
  same_shape(op, l, dl);
  const int64_t start = int64_t(attr(op, "vocab_start"));
  const float scale = float(attr(op, "scale", 1.0));
  for (int64_t t = 0; t < l.rows(); ++t) {
    const int64_t target = int64_t(targets(t, 0)) - start;
    for (int64_t j = 0; j < l.cols(); ++j)
      dl(t, j) = scale * (std::exp(l(t, j) - m(t, 0)) / s(t, 0) - (j == target ? 1.0f : 0.0f));
  }
}

const std::map<std::string, KernelFn>& registry() {
  static const std::map<std::string, KernelFn> r{
      {"add", add},
      {"slice", slice},
      {"layernorm", layernorm},
      {"layernorm_backward", layernorm_backward},
      {"rmsnorm", rmsnorm},
      {"rmsnorm_backward", rmsnorm_backward},
      {"gelu", gelu},
      {"gelu_backward", gelu_backward},
      {"swiglu", swiglu},
      {"swiglu_backward", swiglu_backward},
      {"attention", attention},
      {"attention_backward", attention_backward},
      {"attention_kv", attention_kv},
      {"attention_kv_backward", attention_kv_backward},
      {"attention_block", attention_block},
      {"attention_block_backward", attention_block_backward},
      {"attention_merge", attention_merge},
      {"embedding", embedding},
      {"embedding_backward", embedding_backward},
      {"row_max", row_max},
      {"sum_exp", sum_exp},
      {"target_logit", target_logit},
      {"cross_entropy", cross_entropy},
      {"cross_entropy_backward", cross_entropy_backward},
      {"moe_route", moe_route},
      {"moe_dispatch", moe_dispatch},
      {"moe_dispatch_backward", moe_dispatch_backward},
      {"moe_combine", moe_combine},
      {"moe_combine_backward", moe_combine_backward},
      {"moe_split_experts", moe_split_experts},
      {"moe_join_experts", moe_join_experts},
      {"sigmoid_scale", sigmoid_scale},
      {"sigmoid_scale_backward", sigmoid_scale_backward},
  };
  return r;
}

}  // namespace

// GEMM on matrices: shapes checked here, the work in gemm.cpp.
void gemm(const GemmInfo& g, const Mat& a, const Mat& b, Mat& out) {
  const int64_t m = g.trans_a ? a.cols() : a.rows(), k = g.trans_a ? a.rows() : a.cols();
  const int64_t kb = g.trans_b ? b.cols() : b.rows(), n = g.trans_b ? b.rows() : b.cols();
  if (k != kb || out.rows() != m || out.cols() != n)
    throw std::invalid_argument("gemm shapes do not fit: [" + std::to_string(m) + ", " + std::to_string(k) + "] x [" +
                                std::to_string(kb) + ", " + std::to_string(n) + "] -> [" + std::to_string(out.rows()) +
                                ", " + std::to_string(out.cols()) + "]");
  gemm(GemmInfo{m, n, k, g.trans_a, g.trans_b, g.accumulate}, a.data(), a.cols(), b.data(), b.cols(), out.data(), n);
}

KernelFn find_kernel(const std::string& fn) {
  auto it = registry().find(fn);
  return it == registry().end() ? nullptr : it->second;
}

std::vector<std::string> kernel_names() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : registry()) names.push_back(name);
  return names;
}

}  // namespace tpsim::numerics
