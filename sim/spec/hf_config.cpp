// A Hugging Face `config.json` read as a model (JSON is YAML, so errors keep their line:column).
// The families whose dense decoder blocks tpsim's layer is: Llama / Mistral / Qwen2 (SwiGLU MLP,
// RMSNorm, grouped-query attention) and GPT-2 / GPT-NeoX (GELU MLP, LayerNorm). A config lists
// dozens of keys that change no matmul shape (rope, dropout, token ids, initialisers); only the
// ones below are read, and the ones that would change what is timed are refused by name:
// mixture-of-experts layers (not modelled yet) and unknown architectures. A tpsim key written by
// `--set model.KEY=V` (hidden, ffn, ...) wins over the config's own field for it.
#include <algorithm>
#include <filesystem>

#include "spec/limits.hpp"
#include "spec/loading.hpp"

namespace tpsim::spec_detail {

namespace {

enum class Family { llama, gpt2, gpt_neox };

struct Architecture {
  const char* name;        // config.architectures[0]
  const char* model_type;  // config.model_type
  Family family;
  bool experts;            // a mixture-of-experts model
};

constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama", Family::llama, false},
    {"MistralForCausalLM", "mistral", Family::llama, false},
    {"Qwen2ForCausalLM", "qwen2", Family::llama, false},
    {"GPT2LMHeadModel", "gpt2", Family::gpt2, false},
    {"GPTNeoXForCausalLM", "gpt_neox", Family::gpt_neox, false},
    {"MixtralForCausalLM", "mixtral", Family::llama, true},
    {"Qwen2MoeForCausalLM", "qwen2_moe", Family::llama, true},
};

std::string known_architectures() {
  std::string out;
  for (const Architecture& a : kArchitectures) out += std::string(out.empty() ? "" : ", ") + a.name;
  return out;
}

// The architecture the config names: architectures[0], else model_type.
const Architecture& architecture(const Map& m) {
  if (m.has("architectures")) {
    const YAML::Node list = m.value("architectures");
    if (!list.IsSequence() || list.size() == 0 || !list[0].IsScalar())
      m.fail("architectures", "expected a list of architecture names, e.g. [\"LlamaForCausalLM\"]");
    const std::string name = list[0].Scalar();
    for (const Architecture& a : kArchitectures)
      if (name == a.name) return a;
    m.fail("architectures", "'" + name + "' is not an architecture tpsim reads; known: " + known_architectures());
  }
  if (!m.has("model_type"))
    m.fail_here("a Hugging Face config needs 'architectures' or 'model_type' to say which model family it is");
  const std::string type = m.string("model_type");
  for (const Architecture& a : kArchitectures)
    if (type == a.model_type) return a;
  m.fail("model_type", "'" + type + "' is not a model type tpsim reads; known architectures: " + known_architectures());
}

// The config's field `hf`, unless `--set model.<ours>` wrote tpsim's own key. Checks made after
// loading look values up by tpsim's key, so the config's line is recorded under it too.
int64_t field(const Map& m, const char* ours, const char* hf, int64_t limit, const char* what,
              std::optional<int64_t> fallback = std::nullopt) {
  if (m.has(ours)) return m.integer_up_to(ours, limit, what);
  if (!m.has(hf) && !fallback) m.fail_here(std::string("missing required key '") + hf + "' (" + what + ")");
  const int64_t v = m.integer_up_to(hf, limit, what, fallback);
  if (Locations* where = m.source().locations; where && where->count(m.key_path(hf)))
    (*where)[m.key_path(ours)] = (*where)[m.key_path(hf)];
  return v;
}

// torch_dtype (or a newer config's dtype), or a tpsim dtype written by --set model.dtype.
DType dtype_of(const Map& m) {
  const char* key = m.has("dtype") ? "dtype" : "torch_dtype";
  const std::string d =
      m.choice(key, {"bfloat16", "float16", "float32", "fp32", "tf32", "bf16", "fp16", "fp8"}, "bfloat16");
  if (d == "float32") return DType::fp32;
  if (d == "float16") return DType::fp16;
  if (d == "bfloat16") return DType::bf16;
  for (DType t : {DType::fp32, DType::tf32, DType::bf16, DType::fp16, DType::fp8})
    if (d == to_string(t)) return t;
  return DType::bf16;
}

// "Mixtral-8x7B" for models/Mixtral-8x7B/config.json; the file's stem otherwise.
std::string name_of(const Map& m, const std::string& fallback_name) {
  if (m.has("name")) return m.string("name");
  const std::filesystem::path file(m.source().file);
  const std::string folder = file.parent_path().filename().string();
  return fallback_name == "config" && !folder.empty() && folder != "." ? folder : fallback_name;
}

}  // namespace

bool is_hf_config(const YAML::Node& root) {
  return root.IsMap() && (root["architectures"].IsDefined() || root["model_type"].IsDefined());
}

ModelSpec read_hf_config(const Source& src, const YAML::Node& root, const std::string& fallback_name) {
  const Map m(src, root, "model");
  const Architecture& arch = architecture(m);
  for (const char* key : {"num_local_experts", "num_experts", "n_routed_experts"})
    if (m.has(key) && m.integer_up_to(key, limits::kLayers, "experts") > 1)
      m.fail(key, "mixture-of-experts layers are not modelled yet: tpsim times dense decoder blocks only");
  if (arch.experts) m.fail("architectures", std::string(arch.name) + " is a mixture-of-experts model, not modelled yet");

  ModelSpec model;
  model.name = name_of(m, fallback_name);
  const bool gpt2 = arch.family == Family::gpt2;
  model.hidden = field(m, "hidden", gpt2 ? "n_embd" : "hidden_size", limits::kHidden, "a hidden size");
  model.heads = field(m, "heads", gpt2 ? "n_head" : "num_attention_heads", limits::kHeads, "attention heads");
  model.kv_heads = arch.family == Family::llama
                       ? field(m, "kv_heads", "num_key_value_heads", limits::kHeads, "key/value heads", model.heads)
                       : field(m, "kv_heads", "kv_heads", limits::kHeads, "key/value heads", model.heads);
  model.layers = field(m, "layers", gpt2 ? "n_layer" : "num_hidden_layers", limits::kLayers, "layers");
  model.vocab = field(m, "vocab", "vocab_size", limits::kVocab, "a vocabulary size");
  model.max_seq = field(m, "max_seq", gpt2 ? "n_positions" : "max_position_embeddings", limits::kSequence, "tokens");
  // Mistral's sliding window: attention over at most that many tokens, which is full attention up
  // to the window; longer sequences would be timed as full attention, so the window caps max_seq.
  // (Qwen2 writes a window and turns it off with use_sliding_window: false.)
  const bool windowed = m.has("sliding_window") && (!m.has("use_sliding_window") || m.boolean("use_sliding_window"));
  if (windowed) {
    model.sliding_window = m.integer_up_to("sliding_window", limits::kSequence, "tokens");
    if (!m.has("max_seq")) model.max_seq = std::min(model.max_seq, model.sliding_window);
  }
  if (arch.family == Family::llama) {
    if (m.has("hidden_act") && m.string("hidden_act") != "silu")
      m.fail("hidden_act", "expected \"silu\": tpsim's gated MLP for " + std::string(arch.name) + " is SwiGLU");
    model.activation = Activation::swiglu;
    model.norm = Norm::rmsnorm;
    model.ffn = field(m, "ffn", "intermediate_size", limits::kFfn, "an FFN size");
  } else {
    model.activation = Activation::gelu;
    model.norm = Norm::layernorm;
    model.ffn = field(m, "ffn", gpt2 ? "n_inner" : "intermediate_size", limits::kFfn, "an FFN size", 4 * model.hidden);
  }
  model.dtype = dtype_of(m);
  return model;
}

}  // namespace tpsim::spec_detail
