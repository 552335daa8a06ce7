// A Hugging Face config.json read as a model: each family's fields map onto tpsim's, checked against
// the published parameter counts and against tpsim's own preset of the same model; what tpsim cannot
// time (mixture-of-experts, unknown architectures) is refused at the key. Fixtures: tests/data/hf/.
#include <doctest/doctest.h>

#include <string>

#include "tpsim/spec.hpp"

using namespace tpsim;

namespace {

std::string fixture(const std::string& name) { return std::string(TPSIM_TEST_DATA) + "/hf/" + name + "/config.json"; }

std::string error_of(const std::string& path, const std::vector<Override>& sets = {}) {
  try {
    load_model(path, sets);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("Llama-2-7B's config.json is the llama2-7b preset, named after its folder") {
  const ModelSpec hf = load_model(fixture("Llama-2-7b-hf"));
  const ModelSpec preset = load_model("llama2-7b");
  CHECK(hf.name == "Llama-2-7b-hf");
  CHECK(hf.hidden == preset.hidden);
  CHECK(hf.ffn == preset.ffn);
  CHECK(hf.heads == preset.heads);
  CHECK(hf.kv_heads == preset.kv_heads);
  CHECK(hf.layers == preset.layers);
  CHECK(hf.vocab == preset.vocab);
  CHECK(hf.max_seq == preset.max_seq);
  CHECK(hf.activation == Activation::swiglu);
  CHECK(hf.norm == Norm::rmsnorm);
  CHECK(hf.dtype == DType::fp16);   // torch_dtype: float16
  CHECK(parameter_count(hf) == 6738415616);   // Meta's published count (untied head, no biases)
}

TEST_CASE("Mistral-7B-v0.1: grouped-query attention, and its 4096-token sliding window caps max_seq") {
  const ModelSpec m = load_model(fixture("Mistral-7B-v0.1"));
  CHECK(m.kv_heads == 8);
  CHECK(m.ffn == 14336);
  CHECK(m.max_seq == 4096);   // max_position_embeddings 32768; beyond the window it is not full attention
  CHECK(m.sliding_window == 4096);
  CHECK(parameter_count(m) == 7241732096);   // the checkpoint's parameter count
  // A window the config turns off (Qwen2: use_sliding_window false) leaves max_seq alone.
  CHECK(load_model(fixture("Qwen2-7B")).max_seq == 131072);
  CHECK(load_model(fixture("Qwen2-7B")).kv_heads == 4);
  CHECK(load_model(fixture("Qwen2-7B")).sliding_window == 0);
}

TEST_CASE("GPT-2 and GPT-NeoX: GELU MLP and LayerNorm; GPT-2's n_inner null is 4 x n_embd") {
  const ModelSpec gpt2 = load_model(fixture("gpt2"));
  CHECK(gpt2.hidden == 768);
  CHECK(gpt2.ffn == 3072);
  CHECK(gpt2.layers == 12);
  CHECK(gpt2.heads == 12);
  CHECK(gpt2.max_seq == 1024);
  CHECK(gpt2.activation == Activation::gelu);
  CHECK(gpt2.norm == Norm::layernorm);
  const ModelSpec neox = load_model(fixture("pythia-1b"));
  CHECK(neox.hidden == 2048);
  CHECK(neox.ffn == 8192);
  CHECK(neox.heads == 8);
  CHECK(neox.layers == 16);
  CHECK(neox.vocab == 50304);
  CHECK(neox.activation == Activation::gelu);
}

TEST_CASE("--set model.KEY writes tpsim's key, which wins over the config's field") {
  const ModelSpec m = load_model(fixture("Llama-2-7b-hf"), {{"model.layers", "4"}, {"model.dtype", "fp8"}});
  CHECK(m.layers == 4);
  CHECK(m.dtype == DType::fp8);
}

TEST_CASE("what tpsim cannot time is refused at its key, with the file's line and column") {
  // The bad-input corpus (tests/data/bad/hf-*.yaml) holds more; these read real fixtures' files.
  const std::string gpt2 = fixture("gpt2");
  const std::string wrong = error_of(gpt2, {{"model.architectures", "[FalconForCausalLM]"}});
  CHECK(wrong.find("architectures") != std::string::npos);
  CHECK(wrong.find("'FalconForCausalLM' is not an architecture tpsim reads") != std::string::npos);
  const std::string moe = error_of(fixture("Llama-2-7b-hf"), {{"model.num_local_experts", "8"}});
  CHECK(moe.find("model.num_local_experts") != std::string::npos);
  CHECK(moe.find("mixture-of-experts") != std::string::npos);
}
