// Writes an unsharded run's tensors to a folder as NumPy .npy files plus manifest.json, so an
// outside implementation (tests/oracle/torch_oracle.py, PyTorch) can recompute the model from the
// same inputs and weights and check every output and gradient tpsim produced.
#pragma once

#include <string>

#include "numerics/dense.hpp"
#include "tpsim/program.hpp"

namespace tpsim::numerics {

// Writes m (fp32, C order, shape [rows, cols]) as an NPY v1.0 file.
void write_npy(const std::string& path, const Mat& m);



}  // namespace tpsim::numerics
