// Writes an unsharded run's tensors to a folder as NumPy .npy files plus manifest.json, so an
// outside implementation (tests/oracle/torch_oracle.py, PyTorch) can recompute the model from the
// same inputs and weights and check every output and gradient tpsim produced.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "numerics/dense.hpp"
#include "tpsim/program.hpp"

namespace tpsim::numerics {

// Writes m (fp32, C order, shape [rows, cols]) as an NPY v1.0 file.
void write_npy(const std::string& path, const Mat& m);

// Executes `reference` (a single-rank, unsharded ProgramSet) with `seed`, fp32, and writes into
// `dir` one .npy per global tensor: every input and weight it reads before writing (filled exactly
// as the executor fills them) and the final value of every tensor it writes. manifest.json holds
// `model` as given, plus "tensors": [{name, file, shape, kind, op, fn, step}] in program order
// (step: the op that wrote it, or first read it) with kind one of input, weight, output (forward),
// gradient (backward); and "kernels": the attributes of each kernel
// fn's first op (eps, loss scale, heads). Returns the number of tensors written.
int dump_reference(const ProgramSet& reference, unsigned seed, nlohmann::json model, const std::string& dir);

}  // namespace tpsim::numerics
