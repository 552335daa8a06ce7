// Shard geometry and deterministic tensor contents.
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "numerics/dense.hpp"
#include "numerics/parallel.hpp"

namespace tpsim::numerics {

int64_t global_row(const TensorDesc& d, int64_t i) {
  int64_t row = d.split_dim == 0 && d.parts > 1 ? d.part * d.rows + i : i;
  if (d.cp_parts > 1) {   // row of this rank's two chunks of each sequence -> row of the sequence
    const int64_t local = d.cp_seq / d.cp_parts, chunk = local / 2, b = row / local, r = row % local;
    const int64_t which = r < chunk ? d.cp_part : 2 * d.cp_parts - 1 - d.cp_part;
    row = b * d.cp_seq + which * chunk + r % chunk;
  }
  return d.row_parts > 1 ? d.row_part * (d.global_rows / d.row_parts) + row : row;
}

int64_t global_col(const TensorDesc& d, int64_t j) {
  if (d.split_dim != 1 || d.parts <= 1) return j;
  if (d.interleave <= 1 && d.interleave_cols.empty()) return d.part * d.cols + j;
  // Strided shard: this part's slice of each column group, groups laid side by side.
  const int groups = d.interleave_cols.empty() ? d.interleave : static_cast<int>(d.interleave_cols.size());
  int64_t group_start = 0;
  for (int g = 0; g < groups; ++g) {
    const int64_t width = d.interleave_cols.empty() ? d.global_cols / groups : d.interleave_cols[g];
    const int64_t local = width / d.parts;
    if (j < local) return group_start + d.part * local + j;
    j -= local;
    group_start += width;
  }
  throw std::out_of_range("column outside the interleaved shard of " + d.name);
}

void check_reference_shape(const Mat& full, const TensorDesc& d) {
  if (full.rows() != (d.global_rows ? d.global_rows : d.rows) || full.cols() != (d.global_cols ? d.global_cols : d.cols))
    throw std::invalid_argument("tensor " + d.name + ": reference " + d.global_name + " has shape [" +
                                std::to_string(full.rows()) + ", " + std::to_string(full.cols()) + "], expected [" +
                                std::to_string(d.global_rows) + ", " + std::to_string(d.global_cols) + "]");
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

Mat fill(const TensorDesc& d, unsigned seed) {
  Mat m;
  fill(d, seed, m);
  return m;
}

void fill(const TensorDesc& d, unsigned seed, Mat& m) {
  const std::string& name = d.global_name.empty() ? d.name : d.global_name;
  const int64_t grows = d.global_rows ? d.global_rows : d.rows, gcols = d.global_cols ? d.global_cols : d.cols;
  const uint64_t key = splitmix64(fnv1a(name) ^ (uint64_t(seed) << 32));
  const bool bias = name.size() > 5 && name.ends_with(".bias");
  float scale = 1.0f, offset = 0.0f;
  if (d.is_weight && grows == 1) {   // norm weight or bias [1, h]
    scale = 0.1f;
    offset = bias ? 0.0f : 1.0f;
  } else if (d.is_weight && name != "embedding") {
    scale = 1.0f / std::sqrt(float(grows));
  }
  m.resize(d.rows, d.cols);   // keeps m's buffer when the element count is the same
  std::vector<int64_t> gj(d.cols);
  for (int64_t j = 0; j < d.cols; ++j) gj[j] = global_col(d, j);
  parallel_for(d.rows, [&](int64_t i0, int64_t i1) {
    // Two loops, so the common one (values, not ids) has no branch and vectorises.
    for (int64_t i = i0; i < i1; ++i) {
      const uint64_t row_key = key + uint64_t(global_row(d, i) * gcols);
      float* out = m.data() + i * d.cols;
      if (d.index_range > 0) {
        for (int64_t j = 0; j < d.cols; ++j) {
          const double u01 = double(splitmix64(row_key + uint64_t(gj[j])) >> 11) * 0x1.0p-53;   // [0, 1)
          out[j] = float(std::floor(u01 * double(d.index_range)));
        }
      } else {
        for (int64_t j = 0; j < d.cols; ++j) {
          const double u01 = double(splitmix64(row_key + uint64_t(gj[j])) >> 11) * 0x1.0p-53;
          out[j] = offset + scale * float(2.0 * u01 - 1.0);
        }
      }
    }
  }, 1, 10.0 * double(d.rows) * d.cols);
}

}  // namespace tpsim::numerics
