// Dense tensors of the numerics interpreter: row-major fp32 matrices ([tokens, features] like the
// Program's tensors), bf16 storage rounding, and the map from a shard's local indices to the
// global tensor it is a part of.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <cstring>

#include "tpsim/program.hpp"

namespace tpsim::numerics {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Round to the nearest bf16 (ties to even), kept in a float: bf16 storage at op boundaries.
inline float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;   // inf / nan unchanged
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}
inline void round_bf16(Mat& m) {
  float* p = m.data();
  for (Eigen::Index i = 0; i < m.size(); ++i) p[i] = round_bf16(p[i]);
}

// Global row / column of a shard's local row i / column j (TensorDesc split, parts, interleave).
int64_t global_row(const TensorDesc& d, int64_t i);
int64_t global_col(const TensorDesc& d, int64_t j);

// Throws unless `full` has the global shape of the tensor the shard `d` is a part of.
void check_reference_shape(const Mat& full, const TensorDesc& d);

// Deterministic contents of a global tensor, computed element by element from (seed, name, global
// index) so that any shard equals the slice of the full tensor: weights ~ U(-1, 1)/sqrt(rows),
// norm weights 1 + U(-0.1, 0.1), biases U(-0.1, 0.1), the embedding table and activations U(-1, 1),
// token ids uniform in [0, index_range).
Mat fill(const TensorDesc& d, unsigned seed);
// The same into `out`, resized to the shard (its buffer reused when the element count matches).
void fill(const TensorDesc& d, unsigned seed, Mat& out);

}  // namespace tpsim::numerics
