// InputError and the small DType helpers every stage uses.
#include <fmt/core.h>

#include "tpsim/spec.hpp"

namespace tpsim {

namespace {
// "file:line:col: key: problem", leaving out the parts that are unknown (the CLI prints the same).
std::string format_where(const std::string& file, int line, int column, const std::string& key,
                         const std::string& problem) {
  std::string out = file;
  if (!out.empty() && line > 0) out += fmt::format(":{}:{}", line, column);
  if (!out.empty()) out += ": ";
  if (!key.empty()) out += fmt::format("{}: ", key);
  return out + problem;
}
}  // namespace

InputError::InputError(std::string file_, int line_, int column_, std::string key_, std::string problem_)
    : std::runtime_error(format_where(file_, line_, column_, key_, problem_)),
      file(std::move(file_)),
      line(line_),
      column(column_),
      key(std::move(key_)),
      problem(std::move(problem_)) {}

int dtype_bytes(DType t) {
  switch (t) {
    case DType::fp32: return 4;
    case DType::tf32: return 4;   // tf32 is an fp32 storage format with a shorter mantissa in the MMA
    case DType::bf16: return 2;
    case DType::fp16: return 2;
    case DType::fp8: return 1;
  }
  return 4;
}

const char* to_string(DType t) {
  switch (t) {
    case DType::fp32: return "fp32";
    case DType::tf32: return "tf32";
    case DType::bf16: return "bf16";
    case DType::fp16: return "fp16";
    case DType::fp8: return "fp8";
  }
  return "?";
}

DType gemm_compute_dtype(DType weights, DType activations) {
  return dtype_bytes(weights) > dtype_bytes(activations) ? weights : activations;
}

Precision precision_of(const Scenario& s) {
  const WorkloadSpec& w = s.workload;
  const DType d = s.model.dtype;
  if (w.kind == WorkloadKind::training && d == DType::fp8) return Precision{d, d, DType::bf16, DType::bf16};
  return Precision{w.weights_dtype.value_or(d), w.activations_dtype.value_or(d), w.kv_cache_dtype.value_or(d),
                   w.communication_dtype.value_or(d)};
}

}  // namespace tpsim
