// An outside oracle for the numerics kernels. Sharded and unsharded runs share every kernel, so a
// wrong kernel (a norm's backward, the causal softmax's backward, SwiGLU, GELU, the embedding, the
// cross-entropy) passes every sharded-vs-unsharded check. Here `tpsim verify --dump` writes the
// unsharded run of a small GPT-style (LayerNorm, GELU, MHA) and Llama-style (RMSNorm, SwiGLU, GQA)
// stack, and tests/oracle/torch_oracle.py recomputes it with PyTorch in float64 and compares every
// output and gradient. Then each kernel's forward and backward is planted wrong on PyTorch's side:
// the oracle must fail and name the tensor that kernel writes, which shows that every comparison
// is sensitive to it. Needs python3 with torch and numpy (scripts/install-deps.sh --tests): this
// test fails, not skips, without them.
#include <doctest/doctest.h>

#include "cli_runner.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <utility>
#include <vector>

namespace {

// The first interpreter that imports torch and numpy: $TPSIM_PYTHON, python3 on PATH, then Debian's
// (a pyenv or venv python3 on PATH does not see Debian's python3-torch).
std::string python_with_torch() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("TPSIM_PYTHON")) candidates.emplace_back(env);
  candidates.emplace_back("python3");
  candidates.emplace_back("/usr/bin/python3");
  for (const std::string& py : candidates)
    if (run_shell(py + " -c 'import torch, numpy'").status == 0) return py;
  return "";
}

struct TempDir {
  std::string path;
  TempDir() {
    char dir[] = "/tmp/tpsim-oracle-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    path = dir;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// (plant, the tensor that kernel writes, which the oracle must then name as its first mismatch). Two
// layers; the backward runs layer 1 first, and a norm's backward first in final_norm, whose input
// gradient is layer1.mlp.fc2.out.grad; cross-entropy's first forward piece is the target's logit.
using Plants = std::vector<std::pair<std::string, std::string>>;

void check_model(const std::string& model_args, const Plants& plants) {
  const std::string python = python_with_torch();
  if (python.empty())
    FAIL("no python3 that imports torch and numpy (tried $TPSIM_PYTHON, python3, /usr/bin/python3): "
         "run scripts/install-deps.sh --tests");
  TempDir dir;
  const Output dump = run_shell(std::string(TPSIM_BINARY) + " verify " + model_args + " --scope stack --dump " + dir.path);
  INFO(dump.out);
  REQUIRE(dump.status == 0);
  REQUIRE(std::filesystem::exists(dir.path + "/manifest.json"));

  const std::string oracle = python + " tests/oracle/torch_oracle.py " + dir.path + " --quiet";
  const Output clean = run_shell(oracle);
  {
    INFO(clean.out);
    CHECK(clean.status == 0);
    CHECK(clean.out.find("verdict: PASS") != std::string::npos);
  }

  // Every plant in one process (PyTorch's import dominates a run). The manifest lists tensors in
  // program order, so a plant's first mismatch is the earliest tensor it corrupts: the kernel's own.
  std::string list;
  for (const auto& [plant, tensor] : plants) list += (list.empty() ? "" : ",") + plant;
  const Output planted = run_shell(oracle + " --plant " + list);
  INFO(planted.out);
  CHECK(planted.status == 1);
  for (const auto& [plant, tensor] : plants) {
    INFO("plant " << plant << " must fail first at " << tensor);
    CHECK(planted.out.find("plant " + plant + ": FAIL " + tensor + " ") != std::string::npos);
    const std::string verdict = "plant " + plant + ": verdict: MISMATCH: ";
    const size_t at = planted.out.find(verdict);
    REQUIRE(at != std::string::npos);
    const std::string line = planted.out.substr(at, planted.out.find('\n', at) - at);
    CHECK(line.ends_with("first: " + tensor));
  }
}

}  // namespace

TEST_CASE("GPT-style stack (LayerNorm, GELU, MHA) matches PyTorch, and a planted bug in any of its kernels is caught") {
  check_model("-m gpt-1.7b --set model.layers=2 --set plan.tp=4 --set workload.micro_batch=2 --set workload.global_batch=2",
              {{"embedding", "embedding.out"},
               {"embedding_backward", "embedding.grad"},
               {"layernorm", "layer0.norm1.out"},
               {"eps", "layer0.norm1.out"},
               {"layernorm_backward", "layer1.mlp.fc2.out.grad"},
               {"gelu", "layer0.mlp.act.out"},
               {"gelu_backward", "layer1.mlp.fc1.out.grad"},
               {"attention", "layer0.attn.core.out"},
               {"attention_backward", "layer1.attn.qkv.out.grad"},
               {"cross_entropy", "loss.target_logit"},
               {"cross_entropy_backward", "output.out.grad"}});
}

TEST_CASE("Llama-style stack (RMSNorm, SwiGLU, GQA) matches PyTorch, and a planted bug in any of its kernels is caught") {
  // llama3-8b: 4 query heads per kv head (llama2-7b has as many kv heads as query heads).
  check_model("-m llama3-8b --set model.layers=2 --set plan.tp=2 --set workload.micro_batch=2 --set workload.global_batch=2",
              {{"rmsnorm", "layer0.norm1.out"},
               {"eps", "layer0.norm1.out"},
               {"rmsnorm_backward", "layer1.mlp.fc2.out.grad"},
               {"swiglu", "layer0.mlp.act.out"},
               {"swiglu_backward", "layer1.mlp.gate.out.grad"},
               {"attention", "layer0.attn.core.out"},
               {"attention_backward", "layer1.attn.qkv.out.grad"},
               {"gqa", "layer0.attn.core.out"}});
}
